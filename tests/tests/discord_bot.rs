//! End to end through the built `ollama-mcp-bot run`: the Discord double plays a guild, the
//! Ollama double plays the model, the real memory MCP server serves tools.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod discord_support;

use std::time::Duration;

use discord_support::*;
use ollama_mcp_bot::llm::Role;
use ollama_mcp_tests::discord_double::{DoubleConfig, Limit, Message, World};
use ollama_mcp_tests::ollama_double::{OllamaDouble, Reply};
use ollama_mcp_tests::servers;
use serde_json::json;

/// The interaction's response message once its content satisfies `done`.
async fn interaction_reply(h: &Harness, interaction: u64, done: impl Fn(&str) -> bool) -> String {
    h.discord
        .wait_for("the interaction's response", WAIT, |w: &World| {
            w.messages
                .values()
                .find(|m| m.interaction_id == Some(interaction) && done(&m.content))
                .map(|m| m.content.clone())
        })
        .await
}

/// The second of two streamed answers was posted only after the first was complete.
fn assert_one_after_another(answers: &mut [Message]) {
    answers.sort_by_key(|r| r.created_at);
    let first_done = *answers[0]
        .edited_at
        .last()
        .unwrap_or(&answers[0].created_at);
    assert!(
        answers[1].created_at >= first_done,
        "the second turn started before the first finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mention_gets_a_reply_that_pings_only_the_asker() {
    let h = Harness::start(echo_model().await, |_, _| {}).await;
    let p = h.p;
    let asked = h.discord.user_says(
        p.alice,
        p.general,
        &h.mention("hello there, how are you today?"),
    );
    let reply = h
        .reply_eq(asked, "echo: hello there, how are you today?")
        .await;
    assert_eq!(
        reply.allowed_mentions[0],
        Some(json!({"parse": [], "replied_user": true}))
    );
    assert_eq!(reply.pinged_users, vec![p.alice]);
    // The model saw the question without the mention.
    let seen = h.ollama.chat_requests();
    assert_eq!(
        seen.last().unwrap().last_user_message(),
        Some("hello there, how are you today?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_output_never_pings_everyone_roles_or_others() {
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |_, _| {}).await;
    let p = h.p;
    let loud = format!("@everyone @here <@{}> <@&{}> listen up", p.bob, p.mods);
    h.ollama.push_reply(Reply::text(loud.clone()));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("say something loud"));
    h.reply_eq(asked, &loud).await;
    h.discord.with(|w| {
        for m in w.bot_messages() {
            assert!(!m.pinged_everyone, "pinged @everyone: {m:?}");
            assert!(m.pinged_roles.is_empty(), "pinged a role: {m:?}");
            assert!(
                m.pinged_users.iter().all(|u| *u == p.alice),
                "pinged someone else: {m:?}"
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_replies_stream_by_paced_edits_and_split_at_2000_without_breaking_code() {
    let mut double = DoubleConfig::new(TOKEN);
    // A tight edit bucket: the bot must pace itself by the headers, never run into a 429.
    double
        .limits
        .insert("edit_message", Limit::new(3, Duration::from_secs(2)));
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let mut h = Harness::prepare(double, ollama, |_, _| {}).await;
    h.start_bot().await;
    let p = h.p;
    let code: Vec<String> = (0..220)
        .map(|i| format!("    let value_{i} = compute({i});"))
        .collect();
    let text = format!(
        "Here is the code:\n```rust\nfn main() {{\n{}\n}}\n```\nThat is all.",
        code.join("\n")
    );
    h.ollama.push_reply(Reply::Slow {
        per_chunk: Duration::from_millis(3),
        text: text.clone(),
    });
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("write a long program"));
    let last = h
        .discord
        .wait_for("the whole reply", WAIT, |w: &World| {
            let pieces: Vec<_> = w.bot_messages_in(p.general);
            pieces
                .last()
                .filter(|m| m.content.ends_with("That is all."))
                .map(|_| pieces.len())
        })
        .await;
    assert!(
        last >= 3,
        "a {}-character reply needs at least 3 messages",
        text.len()
    );
    h.discord.with(|w| {
        let pieces = w.bot_messages_in(p.general);
        assert_eq!(pieces[0].reply_to, Some(asked));
        for m in &pieces {
            assert!(m.content.encode_utf16().count() <= 2000);
            let fences = m
                .content
                .lines()
                .filter(|l| l.trim_start().starts_with("```"))
                .count();
            assert_eq!(
                fences % 2,
                0,
                "a message breaks a code block:\n{}",
                m.content
            );
        }
        assert!(
            pieces[1].content.starts_with("```rust\n"),
            "the block reopens in the next message"
        );
        assert!(
            pieces.iter().map(|m| m.edits.len()).sum::<usize>() >= 2,
            "the reply was streamed by edits"
        );
        assert!(
            w.exceeded().is_empty(),
            "the bot ran into rate limits: {:?}",
            w.exceeded()
        );
        // Every line of the model's text arrived, in order.
        let shown: Vec<&str> = pieces
            .iter()
            .flat_map(|m| m.content.lines())
            .filter(|l| !l.starts_with("```"))
            .collect();
        let wanted: Vec<&str> = text.lines().filter(|l| !l.starts_with("```")).collect();
        assert_eq!(shown, wanted);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_user_per_channel_threads_shared_replies_of_others_see_only_the_channel() {
    let h = Harness::start(echo_model().await, |c, _| {
        c.discord.allow_dms = true;
        c.discord.rate_limit.messages = 100;
    })
    .await;
    let p = h.p;
    let request_for = |question: &str| {
        h.ollama
            .chat_requests()
            .into_iter()
            .rev()
            .find(|r| r.last_user_message().is_some_and(|m| m.ends_with(question)))
            .unwrap()
    };
    let history_of = |question: &str| -> Vec<String> {
        request_for(question)
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .collect()
    };
    let first = h
        .ask(p.alice, p.general, "alice one", "echo: alice one")
        .await;
    h.ask(p.alice, p.general, "alice two", "echo: alice two")
        .await;
    assert_eq!(history_of("alice two"), ["alice one", "alice two"]);
    // Bob in the same channel has his own conversation.
    h.ask(p.bob, p.general, "bob one", "echo: bob one").await;
    assert_eq!(history_of("bob one"), ["bob one"]);
    // Bob replying to the bot's answer to Alice (no mention needed) continues in his own
    // conversation, from what the channel shows him: the chain of replied-to messages. Alice's
    // history (her later turn, any tool results) never reaches his prompt.
    let answer = h.discord.with(|w| w.replies_to(first)[0].id);
    let reply = h
        .discord
        .user_replies(p.bob, p.general, answer, "bob joins");
    h.reply_containing(reply, "bob joins").await;
    assert_eq!(
        history_of("bob joins"),
        [
            "bob one",
            "[bob is replying to these messages in the channel, oldest first:]\nalice: alice one\nyou: echo: alice one\n[bob writes:]\nbob joins"
        ]
    );
    assert!(
        !request_for("bob joins")
            .messages
            .iter()
            .any(|m| m.content.contains("alice two")),
        "Alice's history stays hers"
    );
    // And Bob's text did not land in Alice's conversation.
    h.ask(p.alice, p.general, "alice three", "echo: alice three")
        .await;
    assert_eq!(
        history_of("alice three"),
        ["alice one", "alice two", "alice three"]
    );
    // Alice replying to an answer of her own conversation just continues it.
    let again = h
        .discord
        .user_replies(p.alice, p.general, answer, "alice again");
    h.reply_eq(again, "echo: alice again").await;
    assert_eq!(
        history_of("alice again"),
        ["alice one", "alice two", "alice three", "alice again"]
    );
    // In a thread, everyone shares one conversation.
    let thread = h.discord.add_thread(p.guild, p.general, "topic");
    h.ask(p.alice, thread, "thread alice", "echo: thread alice")
        .await;
    h.ask(p.bob, thread, "thread bob", "echo: thread bob").await;
    assert_eq!(history_of("thread bob"), ["thread alice", "thread bob"]);
    // DMs (allowed here) need no mention and are their own conversation.
    let dm = h.discord.dm_channel(p.alice);
    let said = h.discord.user_says(p.alice, dm, "private question");
    h.reply_eq(said, "echo: private question").await;
    assert_eq!(history_of("private question"), ["private question"]);
}

/// A thread is one conversation that several people write to: their turns take turns, each
/// seeing the one before, even though the guild could run several turns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_turns_of_one_thread_never_run_at_once() {
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .responder(|r| Reply::Slow {
            per_chunk: Duration::from_millis(200),
            text: format!(
                "slow answer to {}",
                r.last_user_message().unwrap_or_default()
            ),
        })
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |c, _| {
        c.discord.rate_limit.max_concurrent_per_guild = 4;
    })
    .await;
    let p = h.p;
    let thread = h.discord.add_thread(p.guild, p.general, "topic");
    let asked = [
        h.discord
            .user_says(p.alice, thread, &h.mention("from alice")),
        h.discord.user_says(p.bob, thread, &h.mention("from bob")),
    ];
    let mut answers = h
        .discord
        .wait_for("both answers", WAIT, |w: &World| {
            let done: Vec<_> = asked
                .iter()
                .filter_map(|m| {
                    w.replies_to(*m)
                        .into_iter()
                        .find(|r| r.content.starts_with("slow answer to from"))
                        .cloned()
                })
                .collect();
            (done.len() == 2).then_some(done)
        })
        .await;
    assert_one_after_another(&mut answers);
    let last = h.ollama.chat_requests().last().unwrap().clone();
    assert_eq!(
        last.messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count(),
        2,
        "the second turn sees the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_answered_dms_off_bots_ignored_empty_and_long_messages() {
    let h = Harness::start(echo_model().await, |_, _| {}).await;
    let p = h.p;
    // Not addressed: silence.
    let chatter = h
        .discord
        .user_says(p.alice, p.general, "just chatting with friends");
    h.assert_no_reply(chatter, p.general).await;
    // DMs are off by default.
    let dm = h.discord.dm_channel(p.alice);
    let private = h.discord.user_says(p.alice, dm, "hello?");
    h.assert_no_reply(private, p.general).await;
    // Other bots are ignored, even when they mention the bot.
    let other = h.discord.add_other_bot("otherbot");
    h.discord.add_member(p.guild, other, &[]);
    let from_bot = h
        .discord
        .user_says(other, p.general, &h.mention("hi fellow bot"));
    h.assert_no_reply(from_bot, p.general).await;
    // Only a mention: a hint, not a model call.
    let before = h.ollama.chat_requests().len();
    let bare = h
        .discord
        .user_says(p.alice, p.general, &format!("<@{}>", h.discord.bot_id()));
    h.reply_containing(bare, "without a question").await;
    // 10,000 characters: a clear refusal.
    let long = h
        .discord
        .user_says(p.alice, p.general, &h.mention(&"x".repeat(10_000)));
    h.reply_containing(long, "characters long").await;
    assert_eq!(
        h.ollama.chat_requests().len(),
        before,
        "no model time for empty or oversized messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_never_answers_itself() {
    // A reply containing the trigger word and a mention of the bot would loop if the bot read
    // its own messages.
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |c, _| c.discord.triggers = vec!["hey bot".into()]).await;
    let p = h.p;
    let loop_bait = format!("hey bot, <@{}> talk to yourself", h.discord.bot_id());
    h.ollama.push_reply(Reply::text(loop_bait.clone()));
    let asked = h.discord.user_says(p.alice, p.general, "hey bot start");
    h.reply_eq(asked, &loop_bait).await;
    let probe = h.discord.user_says(p.alice, p.general, "hey bot probe");
    h.reply_eq(probe, "echo: hey bot probe").await;
    assert_eq!(
        h.discord.with(|w| w.bot_messages().len()),
        2,
        "{}",
        h.discord.summary()
    );
    assert_eq!(h.ollama.chat_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_admin_only_and_survive_a_restart() {
    let mut h = Harness::start(echo_model().await, |_, _| {}).await;
    let p = h.p;
    let hey = h
        .discord
        .user_says(p.alice, p.general, "hey bot, are you there?");
    h.assert_no_reply(hey, p.general).await;
    let denied = h
        .discord
        .user_says(p.bob, p.general, "!trigger add hey bot");
    h.reply_containing(denied, "only the bot's admins").await;
    let added = h
        .discord
        .user_says(p.admin, p.general, "!trigger add Hey Bot");
    h.reply_containing(added, "“hey bot”").await;
    let asked = h
        .discord
        .user_says(p.alice, p.general, "Hey bot, what's up?");
    h.reply_eq(asked, "echo: Hey bot, what's up?").await;

    h.stop_bot().await;
    h.start_bot().await;
    let again = h
        .discord
        .user_says(p.alice, p.general, "hey bot, still there?");
    h.reply_eq(again, "echo: hey bot, still there?").await;
    let list = h.discord.user_says(p.admin, p.general, "!trigger list");
    h.reply_containing(list, "“hey bot”").await;
    let removed = h
        .discord
        .user_says(p.admin, p.general, "!trigger remove hey bot");
    h.reply_containing(removed, "Removed").await;
    let after = h.discord.user_says(p.alice, p.general, "hey bot, gone?");
    h.assert_no_reply(after, p.general).await;
    let missing = h.discord.user_says(p.admin, p.general, "!trigger");
    h.reply_containing(missing, "needs one of: add, remove, list")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_deny_wins_and_admin_commands_change_them() {
    let h = Harness::start(echo_model().await, |c, p| {
        c.discord.access.denied_users = vec![p.bob]
    })
    .await;
    let p = h.p;
    let refused = h
        .discord
        .user_says(p.bob, p.general, &h.mention("let me in"));
    h.reply_containing(refused, "deny list").await;
    let cmd = h.discord.user_says(p.bob, p.general, "!models");
    h.reply_containing(cmd, "deny list").await;
    // Deny a role: Alice is fine until she gets it.
    let deny_role = h
        .discord
        .user_says(p.admin, p.general, &format!("!deny role <@&{}>", p.mods));
    h.reply_containing(deny_role, "Denied role").await;
    h.ask(p.alice, p.general, "before", "echo: before").await;
    h.discord.set_roles(p.guild, p.alice, &[p.mods]);
    let with_role = h.discord.user_says(p.alice, p.general, &h.mention("after"));
    h.reply_containing(with_role, "roles is on this bot's deny list")
        .await;
    h.discord.set_roles(p.guild, p.alice, &[]);
    // An allow list of channels: #random is now off.
    let allow = h.discord.user_says(
        p.admin,
        p.general,
        &format!("!allow channel <#{}>", p.general),
    );
    h.reply_containing(allow, "Allowed channel").await;
    let elsewhere = h
        .discord
        .user_says(p.alice, p.random, &h.mention("over here"));
    h.reply_containing(elsewhere, "not enabled in this channel")
        .await;
    h.ask(p.alice, p.general, "in general", "echo: in general")
        .await;
    // Deny a user by mention; allow undoes it; deny wins over an allow of the same user.
    let deny = h
        .discord
        .user_says(p.admin, p.general, &format!("!deny user <@{}>", p.alice));
    h.reply_containing(deny, "Denied user").await;
    let blocked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("blocked?"));
    h.reply_containing(blocked, "deny list").await;
    let allow_user = h
        .discord
        .user_says(p.admin, p.general, &format!("!allow user {}", p.alice));
    h.reply_containing(allow_user, "Allowed user").await;
    h.ask(p.alice, p.general, "back", "echo: back").await;
    // Wrong arguments get a usage line.
    let bad = h.discord.user_says(p.admin, p.general, "!deny user nobody");
    h.reply_containing(bad, "Usage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_rate_limit_says_when_to_retry() {
    let h = Harness::start(echo_model().await, |c, _| {
        c.discord.rate_limit.messages = 2;
        c.discord.rate_limit.per_seconds = 3600;
    })
    .await;
    let p = h.p;
    h.ask(p.alice, p.general, "one", "echo: one").await;
    h.ask(p.alice, p.general, "two", "echo: two").await;
    let third = h.discord.user_says(p.alice, p.general, &h.mention("three"));
    let m = h.reply_containing(third, "try again in").await;
    assert!(m.content.contains("min"), "{}", m.content);
    h.ask(p.bob, p.general, "bob is fine", "echo: bob is fine")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_as_prefix_and_slash() {
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .model("qwen3", &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let memory = servers::memory(dir.path());
    let h = Harness::start(ollama, |c, _| {
        c.ollama.models = vec![MODEL.into(), "qwen3".into()];
        c.mcp.servers = vec![memory];
    })
    .await;
    let p = h.p;
    let say = |text: &str| h.discord.user_says(p.alice, p.general, text);

    let help = say("!help");
    h.reply_containing(help, "`!chat <text>`").await;
    let tools = say("!tools");
    let t = h.reply_containing(tools, "memory").await;
    assert!(
        t.content.contains("memory__create_entities") && t.content.contains("ready"),
        "{}",
        t.content
    );
    let models = say("!models");
    let m = h.reply_containing(models, "qwen3").await;
    assert!(
        m.content
            .contains(&format!("`{MODEL}` ← this conversation")),
        "{}",
        m.content
    );
    let chat = say("!chat what is up");
    h.reply_eq(chat, "echo: what is up").await;
    let switch = say("!model qwen3");
    h.reply_containing(switch, "now uses `qwen3`").await;
    h.ask(p.alice, p.general, "which model", "echo: which model")
        .await;
    assert_eq!(
        h.ollama.chat_requests().last().unwrap().model.as_deref(),
        Some("qwen3")
    );
    let show = say("!model");
    h.reply_containing(show, "uses `qwen3`").await;
    let bad_model = say("!model gpt-5");
    h.reply_containing(bad_model, "not one of the allowed models")
        .await;
    let reset = say("!reset");
    h.reply_containing(reset, "forgot").await;
    h.ask(p.alice, p.general, "fresh start", "echo: fresh start")
        .await;
    let last = h.ollama.chat_requests().last().unwrap().clone();
    assert_eq!(
        last.messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count(),
        1,
        "history was reset"
    );
    let remember = say("!remember I like green tea");
    h.reply_containing(remember, "Remembered").await;
    let graph = std::fs::read_to_string(dir.path().join("memory.json")).unwrap();
    assert!(
        graph.contains("I like green tea") && graph.contains("alice"),
        "{graph}"
    );
    let unknown = say("!frobnicate now");
    h.reply_containing(unknown, "Unknown command `!frobnicate`")
        .await;
    let no_args = say("!chat");
    h.reply_containing(no_args, "Usage").await;
    let not_admin = say("!status");
    h.reply_containing(not_admin, "only the bot's admins").await;
    let status = h.discord.user_says(p.admin, p.general, "!status");
    let s = h.reply_containing(status, "Uptime").await;
    assert!(
        s.content.contains("Ollama: 🟢") && s.content.contains("MCP **memory**"),
        "{}",
        s.content
    );

    // The same as slash commands: registered with Discord, answered through the interaction.
    let names: Vec<String> = h
        .discord
        .with(|w| w.commands[&None].keys().cloned().collect());
    for c in [
        "chat", "model", "models", "tools", "reset", "remember", "help", "trigger", "allow",
        "deny", "setmodel", "persona", "status",
    ] {
        assert!(
            names.iter().any(|n| n == c),
            "/{c} is not registered: {names:?}"
        );
    }
    let i = h
        .discord
        .slash(p.bob, p.general, &["chat"], json!({"text": "slash hello"}));
    interaction_reply(&h, i, |c| c == "echo: slash hello").await;
    let i = h.discord.slash(p.bob, p.general, &["help"], json!({}));
    interaction_reply(&h, i, |c| c.contains("**Commands**")).await;
    let i = h.discord.slash(p.bob, p.general, &["models"], json!({}));
    interaction_reply(&h, i, |c| c.contains("qwen3")).await;
    let i = h.discord.slash(
        p.admin,
        p.general,
        &["trigger", "add"],
        json!({"word": "ask ai"}),
    );
    interaction_reply(&h, i, |c| c.contains("“ask ai”")).await;
    let i = h.discord.slash(
        p.admin,
        p.general,
        &["deny", "user"],
        json!({"user": p.bob.to_string()}),
    );
    interaction_reply(&h, i, |c| c.contains("Denied user")).await;
    let i = h
        .discord
        .slash(p.bob, p.general, &["chat"], json!({"text": "still me"}));
    interaction_reply(&h, i, |c| c.contains("deny list")).await;
    let i = h
        .discord
        .slash(p.admin, p.general, &["setmodel"], json!({"name": "qwen3"}));
    interaction_reply(&h, i, |c| c.contains("default model")).await;
    let i = h.discord.slash(
        p.admin,
        p.general,
        &["persona", "set"],
        json!({"level": "server", "text": "You are a pirate."}),
    );
    interaction_reply(&h, i, |c| c.contains("Persona for this server set")).await;
    h.ask(p.admin, p.general, "ahoy", "echo: ahoy").await;
    let req = h.ollama.chat_requests().last().unwrap().clone();
    assert_eq!(
        req.model.as_deref(),
        Some("qwen3"),
        "the guild's default model"
    );
    assert_eq!(req.messages[0].content, "You are a pirate.");
    h.discord.with(|w| {
        for i in w.interactions.values() {
            assert!(
                i.callbacks.len() <= 1,
                "an interaction was answered twice: {i:?}"
            );
        }
        assert!(
            w.rejected.is_empty(),
            "Discord refused requests: {:?}",
            w.rejected
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_approval_buttons_approve_deny_and_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = servers::memory(dir.path());
    memory.tools.require_approval = vec!["create_entities".into()];
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |c, _| {
        c.mcp.servers = vec![memory];
        c.discord.approval_timeout_secs = 6;
    })
    .await;
    let p = h.p;
    let create = |name: &str| {
        Reply::tool_call(
            "memory__create_entities",
            json!({"entities": [{"name": name, "entityType": "thing", "observations": ["o"]}]}),
        )
    };
    /// The open approval question (one at a time here).
    async fn question(h: &Harness) -> (u64, Vec<String>) {
        h.discord
            .wait_for("the approval question", WAIT, |w: &World| {
                w.bot_messages()
                    .into_iter()
                    .find(|m| !m.button_ids().is_empty())
                    .map(|m| (m.id, m.button_ids()))
            })
            .await
    }
    let tool_result = |h: &Harness| {
        let req = h
            .ollama
            .chat_requests()
            .into_iter()
            .rev()
            .find(|r| !r.tool_results().is_empty())
            .unwrap();
        req.tool_results().last().unwrap().content.clone()
    };

    // Approve: only the asker may; the tool then runs.
    h.ollama.push_reply(create("apple"));
    h.ollama.push_reply(Reply::text("stored"));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("store apple"));
    let (q, buttons) = question(&h).await;
    h.discord.with(|w| {
        assert_eq!(
            w.messages[&q].reply_to,
            Some(asked),
            "the question replies to the asker"
        );
        assert_eq!(
            w.messages[&q].pinged_users,
            vec![p.alice],
            "and notifies only them"
        );
    });
    assert!(
        h.discord
            .with(|w| w.messages[&q].content.contains("memory__create_entities"))
    );
    let approve = buttons
        .iter()
        .find(|b| b.contains("approve"))
        .unwrap()
        .clone();
    h.discord.press_button(p.bob, q, &approve);
    h.discord
        .wait_for("an ephemeral refusal for Bob", WAIT, |w| {
            w.messages
                .values()
                .find(|m| m.flags & 64 != 0 && m.content.contains("can answer"))
                .map(|_| ())
        })
        .await;
    h.discord.press_button(p.alice, q, &approve);
    h.reply_eq(asked, "🔧 memory__create_entities\nstored")
        .await;
    h.discord.with(|w| {
        assert!(
            w.messages[&q].content.contains("approved"),
            "{}",
            w.messages[&q].content
        );
        assert!(
            w.messages[&q].button_ids().is_empty(),
            "buttons removed once answered"
        );
    });
    assert!(!tool_result(&h).contains("refused"), "{}", tool_result(&h));
    assert!(
        std::fs::read_to_string(dir.path().join("memory.json"))
            .unwrap()
            .contains("apple")
    );

    // Deny: the model is told.
    h.ollama.push_reply(create("banana"));
    h.ollama.push_reply(Reply::text("not stored"));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("store banana"));
    let (q, buttons) = question(&h).await;
    h.discord.press_button(
        p.alice,
        q,
        buttons.iter().find(|b| b.contains("deny")).unwrap(),
    );
    h.reply_eq(asked, "🔧 memory__create_entities\nnot stored")
        .await;
    assert!(
        tool_result(&h).contains("did not approve"),
        "{}",
        tool_result(&h)
    );

    // No answer in time: refused, and the question says so.
    h.ollama.push_reply(create("cherry"));
    h.ollama.push_reply(Reply::text("gave up"));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("store cherry"));
    let (q, _) = question(&h).await;
    h.reply_eq(asked, "🔧 memory__create_entities\ngave up")
        .await;
    h.discord.with(|w| {
        assert!(
            w.messages[&q].content.contains("No answer within 6 s"),
            "{}",
            w.messages[&q].content
        )
    });
    assert!(
        !std::fs::read_to_string(dir.path().join("memory.json"))
            .unwrap()
            .contains("cherry")
    );
}

/// `remember` calls tools: it goes through the same approval and admission (access, rate limit,
/// concurrency) as a chat message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_asks_for_approval_and_counts_against_the_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = servers::memory(dir.path());
    memory.tools.require_approval = vec!["create_entities".into()];
    let h = Harness::start(echo_model().await, |c, _| {
        c.mcp.servers = vec![memory];
        c.discord.rate_limit.messages = 2;
        c.discord.rate_limit.per_seconds = 3600;
    })
    .await;
    let p = h.p;
    let graph = || std::fs::read_to_string(dir.path().join("memory.json")).unwrap_or_default();
    let question = |after: u64| {
        h.discord
            .wait_for("the approval question", WAIT, move |w: &World| {
                w.bot_messages()
                    .into_iter()
                    .find(|m| m.reply_to == Some(after) && !m.button_ids().is_empty())
                    .map(|m| (m.id, m.button_ids()))
            })
    };

    let denied = h
        .discord
        .user_says(p.alice, p.general, "!remember I like tea");
    let (q, buttons) = question(denied).await;
    assert!(
        h.discord
            .with(|w| w.messages[&q].content.contains("memory__create_entities"))
    );
    h.discord.press_button(
        p.alice,
        q,
        buttons.iter().find(|b| b.contains("deny")).unwrap(),
    );
    h.reply_containing(denied, "was not approved").await;
    assert!(!graph().contains("tea"), "{}", graph());

    let approved = h
        .discord
        .user_says(p.alice, p.general, "!remember I like coffee");
    let (q, buttons) = question(approved).await;
    h.discord.press_button(
        p.alice,
        q,
        buttons.iter().find(|b| b.contains("approve")).unwrap(),
    );
    h.reply_containing(approved, "Remembered").await;
    assert!(graph().contains("I like coffee"), "{}", graph());

    // Two questions per hour here: the third is refused before any tool runs.
    let third = h
        .discord
        .user_says(p.alice, p.general, "!remember I like water");
    h.reply_containing(third, "try again in").await;
    assert!(!graph().contains("water"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_down_gets_a_clear_reply() {
    let mut ollama = echo_model().await;
    let h_ollama_port = ollama.port();
    ollama.shutdown().await;
    let h = Harness::start(ollama, |c, _| c.ollama.request_timeout_secs = 10).await;
    let p = h.p;
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("anyone home?"));
    let m = h.reply_containing(asked, "⚠️").await;
    assert!(
        m.content.contains("cannot reach Ollama") && m.content.contains(&h_ollama_port.to_string()),
        "{}",
        m.content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_lines_can_be_hidden_and_typing_shows_while_tools_run() {
    let dir = tempfile::tempdir().unwrap();
    let memory = servers::memory(dir.path());
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |c, _| {
        c.mcp.servers = vec![memory];
        c.discord.show_tool_calls = false;
    })
    .await;
    let p = h.p;
    h.ollama
        .push_reply(Reply::tool_call("memory__read_graph", json!({})));
    h.ollama.push_reply(Reply::text("The graph is empty."));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("what do you know?"));
    h.reply_eq(asked, "The graph is empty.").await;
    h.discord.with(|w| {
        assert!(
            w.typing.iter().any(|(c, _)| *c == p.general),
            "typing while the tool ran"
        );
        assert!(
            w.bot_messages().iter().all(|m| !m.content.contains("🔧")),
            "tool lines hidden"
        );
    });
    let result = h.ollama.chat_requests().last().unwrap().tool_results()[0]
        .content
        .clone();
    assert!(
        result.contains("entities"),
        "the real memory server answered: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_guild_runs_one_turn_at_a_time_and_refuses_beyond_the_queue() {
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .responder(|_| Reply::Slow {
            per_chunk: Duration::from_millis(150),
            text: "a slow answer arrives".into(),
        })
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |c, _| {
        c.discord.rate_limit.max_concurrent_per_guild = 1;
        c.discord.max_queue = 2;
    })
    .await;
    let p = h.p;
    let asked: Vec<u64> = [p.alice, p.bob, p.admin]
        .iter()
        .map(|u| h.discord.user_says(*u, p.general, &h.mention("question")))
        .collect();
    let outcome = h
        .discord
        .wait_for("two answers and one refusal", WAIT, |w: &World| {
            let replies: Vec<_> = asked
                .iter()
                .filter_map(|m| w.replies_to(*m).first().map(|r| (*r).clone()))
                .collect();
            let answered = replies
                .iter()
                .filter(|r| r.content == "a slow answer arrives")
                .count();
            let busy = replies
                .iter()
                .filter(|r| r.content.contains("busy"))
                .count();
            (answered == 2 && busy == 1).then_some(replies)
        })
        .await;
    let mut answers: Vec<_> = outcome
        .into_iter()
        .filter(|r| r.content == "a slow answer arrives")
        .collect();
    assert_one_after_another(&mut answers);
}

/// Discord allows a bot 50 requests a second over all routes. A burst of questions, each answer
/// streamed in several pieces, gets every answer complete without a global 429 and without more
/// than 50 requests in any second: under pressure a reply is edited less often (or posted once,
/// whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_questions_stays_inside_discords_global_limit() {
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .responder(|r| Reply::Slow {
            per_chunk: Duration::from_millis(40),
            text: format!(
                "answer to {} with a few more words to stream",
                r.last_user_message().unwrap_or_default()
            ),
        })
        .start()
        .await
        .unwrap();
    // Per-route limits relaxed (many channels at once); the global limit stays Discord's.
    let mut double = DoubleConfig::new(TOKEN);
    for route in ["create_message", "edit_message", "typing"] {
        double
            .limits
            .insert(route, Limit::new(1000, Duration::from_secs(1)));
    }
    let mut h = Harness::prepare(double, ollama, |c, _| {
        c.discord.rate_limit.messages = 1000;
        c.discord.rate_limit.max_concurrent_per_guild = 100;
    })
    .await;
    let p = h.p;
    let channels: Vec<u64> = (0..20)
        .map(|i| h.discord.add_text_channel(p.guild, &format!("c{i}")))
        .collect();
    h.start_bot().await;
    let started = std::time::Instant::now();
    let mut asked = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        for u in [p.alice, p.bob, p.admin] {
            let text = format!("q{i}u{u}");
            asked.push((h.discord.user_says(u, *c, &h.mention(&text)), text));
        }
    }
    h.discord
        .wait_for("every answer, complete", WAIT, |w: &World| {
            asked
                .iter()
                .all(|(m, text)| {
                    w.replies_to(*m).iter().any(|r| {
                        r.content == format!("answer to {text} with a few more words to stream")
                    })
                })
                .then_some(())
        })
        .await;
    h.discord.with(|w| {
        let global: Vec<_> = w.rate_limited.iter().filter(|r| r.global).collect();
        assert!(global.is_empty(), "global 429s: {global:?}");
        // Interaction callbacks and webhooks do not count toward the global limit.
        let counted: Vec<std::time::Instant> = w
            .rest_calls
            .iter()
            .filter(|c| c.at >= started && !matches!(c.route, "interaction_callback" | "webhook"))
            .map(|c| c.at)
            .collect();
        let busiest = counted
            .iter()
            .map(|t| {
                counted
                    .iter()
                    .filter(|u| **u >= *t && **u < *t + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert!(busiest <= 50, "{busiest} requests in one second");
    });
}

/// What the engine tells besides the reply (here: the model cannot use the configured tools) is
/// a footer line under the reply, once per conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_use_tools_is_said_once_in_a_footer() {
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion"])
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let memory = servers::memory(dir.path());
    let h = Harness::start(ollama, |c, _| c.mcp.servers = vec![memory]).await;
    let p = h.p;
    let first = h.discord.user_says(p.alice, p.general, &h.mention("hello"));
    let m = h.reply_containing(first, "cannot use tools").await;
    assert!(
        m.content
            .starts_with("echo: hello\n\n-# ⚠️ model llama3.2 cannot use tools"),
        "{}",
        m.content
    );
    h.ask(p.alice, p.general, "again", "echo: again").await;
}

/// An empty answer is a failed turn with a clear message, never an empty (or placeholder) reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_is_a_failed_turn_that_says_so() {
    let h = Harness::start(echo_model().await, |_, _| {}).await;
    let p = h.p;
    h.ollama.push_reply(Reply::text(""));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("say nothing"));
    let m = h.reply_containing(asked, "empty answer").await;
    assert!(
        m.content.starts_with("⚠️ model `llama3.2`"),
        "{}",
        m.content
    );
    // Nothing was saved: the next turn does not see the failed one.
    h.ask(p.alice, p.general, "next", "echo: next").await;
    let last = h.ollama.chat_requests().last().unwrap().clone();
    assert_eq!(
        last.messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_can_be_silent() {
    let h = Harness::start(echo_model().await, |c, p| {
        c.discord.reply_when_refused = false;
        c.discord.access.allowed_users = vec![p.alice, p.admin];
    })
    .await;
    let p = h.p;
    let refused = h.discord.user_says(p.bob, p.general, &h.mention("may I?"));
    h.assert_no_reply(refused, p.general).await;
    h.ask(p.alice, p.general, "and me?", "echo: and me?").await;
    assert_eq!(
        h.ollama.chat_requests().len(),
        2,
        "no model time for the refused user"
    );
}
