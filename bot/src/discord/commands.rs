//! The bot's commands, as prefix commands (`!chat ...`) and the same as slash commands (poise):
//! `chat`, `model`, `models`, `tools`, `reset`, `remember`, `help`; for admins `trigger`, `allow`,
//! `deny`, `setmodel`, `persona`, `status`. One function per command; its doc comment is its
//! description. Every reply goes through the bot's paced REST client with mentions disabled.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use poise::serenity_prelude as serenity;
use serde_json::json;

use poise::ChoiceParameter as _;

use super::Bot;
use super::access::{Decision, Subject, Who, lists_for, set_access};
use super::handler::{Ask, answer};
use super::rest::{RestError, Target, allowed_mentions};
use super::session::{Place, session_of_message};
use super::settings::{self, PersonaScope};
use super::split::{DISCORD_LIMIT, split_message};
use crate::conversation::TurnError;
use crate::mcp::{ServerState, namespaced};
use crate::metrics::metrics;
use crate::store::StoreError;

pub type Ctx<'a> = poise::Context<'a, Arc<Bot>, CommandError>;

/// A command failure; its text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Discord(#[from] RestError),
    #[error("{0}")]
    Turn(#[from] TurnError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "only the bot's admins can use this command (discord.access.admin_users / admin_roles)"
    )]
    NotAdmin,
    #[error("{0}")]
    NotAllowed(&'static str),
    #[error("{0}")]
    Usage(String),
}

/// The commands, in help order.
pub fn all() -> Vec<poise::Command<Arc<Bot>, CommandError>> {
    vec![
        chat(),
        model(),
        models(),
        tools(),
        reset(),
        remember(),
        help(),
        trigger(),
        allow(),
        deny(),
        setmodel(),
        persona(),
        status(),
    ]
}

/// Where the command was used, as the conversation sees it.
async fn place_of(ctx: Ctx<'_>) -> Place {
    ctx.data()
        .place(
            &ctx.serenity_context().http,
            ctx.guild_id().map(|g| g.get()),
            ctx.channel_id(),
            ctx.author().id.get(),
        )
        .await
}

fn roles_of(ctx: Ctx<'_>) -> Vec<u64> {
    match ctx {
        poise::Context::Prefix(p) => p
            .msg
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
        poise::Context::Application(a) => a
            .interaction
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
    }
}

async fn who_of(ctx: Ctx<'_>) -> (Who, Place) {
    let place = place_of(ctx).await;
    let roles = roles_of(ctx);
    let bot = ctx.data();
    let who = bot.who(
        ctx.guild_id().map(|g| g.get()),
        ctx.channel_id().get(),
        ctx.author().id.get(),
        None,
        place,
    );
    (Who { roles, ..who }, place)
}

/// Replies to the command: to the command message (prefix) or the interaction (slash), split at
/// 2000 characters, pinging nobody.
pub async fn say(ctx: Ctx<'_>, text: &str) -> Result<(), CommandError> {
    let bot = ctx.data();
    let pieces = split_message(text, DISCORD_LIMIT);
    match ctx {
        poise::Context::Prefix(p) => {
            let target = Target::Channel {
                channel: p.msg.channel_id.get(),
                reply_to: Some(p.msg.id.get()),
            };
            for (i, piece) in pieces.iter().enumerate() {
                bot.rest.post(&target, i == 0, piece, None).await?;
            }
        }
        poise::Context::Application(a) => {
            let id = a.interaction.id.get();
            let token = &a.interaction.token;
            for piece in &pieces {
                let body = json!({"content": piece, "allowed_mentions": allowed_mentions(false)});
                if !a.has_sent_initial_response.swap(true, Ordering::AcqRel) {
                    bot.rest
                        .interaction_callback(id, token, 4, Some(body))
                        .await?;
                    bot.mark_original_filled(id);
                } else if bot.take_original_unfilled(id) {
                    bot.rest.edit_original(token, &body).await?;
                } else {
                    bot.rest.followup(token, &body).await?;
                }
            }
        }
    }
    Ok(())
}

/// Slash commands answer within Discord's 3 s by deferring first ("thinking…"); the reply then
/// fills the deferred message.
pub async fn defer(ctx: Ctx<'_>) {
    if let poise::Context::Application(a) = ctx {
        if a.has_sent_initial_response.swap(true, Ordering::AcqRel) {
            return;
        }
        let bot = ctx.data();
        bot.mark_original_unfilled(a.interaction.id.get());
        if let Err(e) = bot
            .rest
            .interaction_callback(a.interaction.id.get(), &a.interaction.token, 5, None)
            .await
        {
            tracing::warn!(error = %e, "deferring the interaction failed");
        }
    }
}

/// Access for every command: deny lists, allow lists, DMs. Admins pass allow lists.
pub async fn command_check(ctx: Ctx<'_>) -> Result<bool, CommandError> {
    let bot = ctx.data();
    if ctx.guild_id().is_none() && !bot.config.discord.allow_dms {
        return Err(CommandError::NotAllowed(
            "direct messages are switched off for this bot",
        ));
    }
    let (who, _) = who_of(ctx).await;
    let lists = lists_for(&bot.settings, &bot.lists, who.guild).await?;
    match lists.decide(&who) {
        Decision::Allowed => Ok(true),
        Decision::Denied(reason) => Err(CommandError::NotAllowed(reason)),
    }
}

async fn admin_check(ctx: Ctx<'_>) -> Result<bool, CommandError> {
    let (who, _) = who_of(ctx).await;
    if ctx.data().lists.is_admin(&who) {
        Ok(true)
    } else {
        Err(CommandError::NotAdmin)
    }
}

/// Ask the model something (same as mentioning the bot).
#[poise::command(prefix_command, slash_command)]
async fn chat(
    ctx: Ctx<'_>,
    #[description = "What to say"]
    #[rest]
    text: String,
) -> Result<(), CommandError> {
    let bot = ctx.data().clone();
    let (who, place) = who_of(ctx).await;
    metrics().messages_received.inc();
    let (target, continues) = match ctx {
        poise::Context::Prefix(p) => {
            let bot_id = bot.bot_id();
            let continues = match p.msg.referenced_message.as_deref() {
                Some(r) if r.author.id.get() == bot_id => {
                    session_of_message(bot.engine.store(), r.id.get()).await?
                }
                _ => None,
            };
            (
                Target::Channel {
                    channel: p.msg.channel_id.get(),
                    reply_to: Some(p.msg.id.get()),
                },
                continues,
            )
        }
        poise::Context::Application(a) => {
            defer(ctx).await;
            // The streamed answer fills the deferred message itself.
            bot.take_original_unfilled(a.interaction.id.get());
            (
                Target::Interaction {
                    token: a.interaction.token.clone(),
                },
                None,
            )
        }
    };
    answer(
        &bot,
        Ask {
            who,
            text,
            place,
            continues,
            target,
        },
    )
    .await;
    Ok(())
}

/// Show this conversation's model, or switch it to another allowed model.
#[poise::command(prefix_command, slash_command)]
async fn model(
    ctx: Ctx<'_>,
    #[description = "Model to switch to"] name: Option<String>,
) -> Result<(), CommandError> {
    defer(ctx).await;
    let bot = ctx.data();
    let place = place_of(ctx).await;
    let session = place.session();
    match name {
        Some(name) => {
            bot.engine.set_session_model(&session, name.trim()).await?;
            say(
                ctx,
                &format!("🔁 This conversation now uses `{}`.", name.trim()),
            )
            .await
        }
        None => {
            let guild_default = match ctx.guild_id() {
                Some(g) => settings::guild_model(&bot.settings, g.get()).await?,
                None => None,
            };
            let current = bot
                .engine
                .session_model(&session, guild_default.as_deref())
                .await?;
            let prefix = &bot.config.discord.command_prefix;
            say(ctx, &format!("🧠 This conversation uses `{current}`. Switch with `{prefix}model <name>`; see `{prefix}models`.")).await
        }
    }
}

/// List the models you can switch to.
#[poise::command(prefix_command, slash_command)]
async fn models(ctx: Ctx<'_>) -> Result<(), CommandError> {
    defer(ctx).await;
    let bot = ctx.data();
    let session = place_of(ctx).await.session();
    let guild_default = match ctx.guild_id() {
        Some(g) => settings::guild_model(&bot.settings, g.get()).await?,
        None => None,
    };
    let current = bot
        .engine
        .session_model(&session, guild_default.as_deref())
        .await?;
    let available = bot.engine.available_models().await?;
    if available.is_empty() {
        return say(ctx, "No allowed model is available on the Ollama server; pull one with `ollama pull <model>`.").await;
    }
    let mut text = String::from("**Models**\n");
    for m in &available {
        let mark = if crate::conversation::same_model(m, &current) {
            " ← this conversation"
        } else {
            ""
        };
        let _ = writeln!(text, "• `{m}`{mark}");
    }
    say(ctx, &text).await
}

/// Show the MCP servers, their tools and health.
#[poise::command(prefix_command, slash_command)]
async fn tools(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let status = ctx.data().hub.status();
    if status.is_empty() {
        return say(
            ctx,
            "No MCP servers are configured (see `[[mcp.servers]]` in the configuration).",
        )
        .await;
    }
    let mut text = String::from("**Tools**\n");
    for s in status {
        let _ = writeln!(
            text,
            "• **{}** ({}) — {} — {} tools",
            s.name,
            s.transport,
            state_text(&s.state),
            s.tools.len()
        );
        if !s.tools.is_empty() {
            let names: Vec<String> = s
                .tools
                .iter()
                .map(|t| format!("`{}`", namespaced(&s.name, t)))
                .collect();
            let _ = writeln!(text, "  {}", names.join(", "));
        }
    }
    say(ctx, &text).await
}

fn state_text(state: &ServerState) -> String {
    match state {
        ServerState::Starting => "🟡 starting".into(),
        ServerState::Ready => "🟢 ready".into(),
        ServerState::Restarting { attempt, reason } => {
            format!("🟠 restarting (attempt {attempt}: {reason})")
        }
        ServerState::Failed { reason } => format!("🔴 failed: {reason}"),
    }
}

/// Forget this conversation.
#[poise::command(prefix_command, slash_command)]
async fn reset(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let session = place_of(ctx).await.session();
    ctx.data().engine.reset(&session).await?;
    say(ctx, "🧹 I forgot this conversation.").await
}

/// Remember something about you (stored by the memory MCP server).
#[poise::command(prefix_command, slash_command)]
async fn remember(
    ctx: Ctx<'_>,
    #[description = "What to remember"]
    #[rest]
    text: String,
) -> Result<(), CommandError> {
    defer(ctx).await;
    let bot = ctx.data();
    let text = text.trim();
    if text.is_empty() {
        return Err(CommandError::Usage(
            "write what to remember after the command".into(),
        ));
    }
    let memory = bot.hub.status().into_iter().find(|s| {
        s.state == ServerState::Ready
            && s.tools.iter().any(|t| t == "create_entities")
            && s.tools.iter().any(|t| t == "add_observations")
    });
    let Some(server) = memory else {
        return say(ctx, "🧠 No memory server is configured or ready. Add the memory MCP server under `[[mcp.servers]]` (see the README).").await;
    };
    let entity = format!(
        "{} (Discord user {})",
        ctx.author().name,
        ctx.author().id.get()
    );
    let tools = bot.engine.tools();
    let created = tools
        .call(
            &namespaced(&server.name, "create_entities"),
            json!({"entities": [{"name": entity, "entityType": "person", "observations": []}]}),
        )
        .await;
    if created.is_error() {
        return say(
            ctx,
            &format!("⚠️ The memory server refused: {}", created.content),
        )
        .await;
    }
    let added = tools
        .call(
            &namespaced(&server.name, "add_observations"),
            json!({"observations": [{"entityName": entity, "contents": [text]}]}),
        )
        .await;
    if added.is_error() {
        return say(
            ctx,
            &format!("⚠️ The memory server refused: {}", added.content),
        )
        .await;
    }
    say(ctx, &format!("🧠 Remembered: “{text}”")).await
}

/// How to talk to this bot, and its commands.
#[poise::command(prefix_command, slash_command)]
async fn help(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let bot = ctx.data();
    let d = &bot.config.discord;
    let p = &d.command_prefix;
    let mut text = String::from("**How to talk to me**\n");
    if d.respond_to_mentions {
        text.push_str(
            "• Mention me with your question, or reply to one of my messages to continue.\n",
        );
    } else {
        text.push_str("• Reply to one of my messages to continue a conversation.\n");
    }
    let triggers = bot
        .triggers(ctx.guild_id().map(|g| g.get()))
        .await
        .unwrap_or_default();
    if !triggers.is_empty() {
        let list: Vec<String> = triggers.iter().map(|t| format!("“{t}”")).collect();
        let _ = writeln!(text, "• Or say a trigger word: {}.", list.join(", "));
    }
    if d.allow_dms {
        text.push_str("• Or send me a direct message.\n");
    }
    text.push_str("• In a thread, the whole thread is one conversation; elsewhere each person has their own.\n");
    let _ = writeln!(text, "\n**Commands** (`{p}name` or `/name`)");
    for c in &ctx.framework().options().commands {
        let desc = c.description.as_deref().unwrap_or("");
        if c.subcommands.is_empty() {
            let params: Vec<String> = c
                .parameters
                .iter()
                .map(|x| {
                    if x.required {
                        format!("<{}>", x.name)
                    } else {
                        format!("[{}]", x.name)
                    }
                })
                .collect();
            let _ = writeln!(
                text,
                "• `{p}{}{}{}` — {desc}",
                c.name,
                if params.is_empty() { "" } else { " " },
                params.join(" ")
            );
        } else {
            let subs: Vec<&str> = c.subcommands.iter().map(|s| s.name.as_ref()).collect();
            let _ = writeln!(text, "• `{p}{} {}` — {desc}", c.name, subs.join("|"));
        }
    }
    say(ctx, &text).await
}

/// Admin: manage this server's trigger words.
#[poise::command(
    prefix_command,
    slash_command,
    guild_only,
    check = "admin_check",
    subcommands("trigger_add", "trigger_remove", "trigger_list"),
    subcommand_required
)]
async fn trigger(_ctx: Ctx<'_>) -> Result<(), CommandError> {
    Ok(())
}

fn guild(ctx: Ctx<'_>) -> Result<u64, CommandError> {
    ctx.guild_id()
        .map(|g| g.get())
        .ok_or_else(|| CommandError::Usage("this command works only in a server".into()))
}

/// Add a trigger word or phrase.
#[poise::command(prefix_command, slash_command, rename = "add")]
async fn trigger_add(
    ctx: Ctx<'_>,
    #[description = "Word or phrase"]
    #[rest]
    word: String,
) -> Result<(), CommandError> {
    let g = guild(ctx)?;
    let word = settings::normalize_trigger(&word).ok_or_else(|| {
        CommandError::Usage(format!(
            "a trigger is 1 to {} characters",
            settings::MAX_TRIGGER_CHARS
        ))
    })?;
    if settings::add_trigger(&ctx.data().settings, g, &word).await? {
        say(
            ctx,
            &format!("✅ I will answer messages containing “{word}”."),
        )
        .await
    } else {
        say(ctx, &format!("“{word}” is already a trigger.")).await
    }
}

/// Remove a trigger word or phrase.
#[poise::command(prefix_command, slash_command, rename = "remove")]
async fn trigger_remove(
    ctx: Ctx<'_>,
    #[description = "Word or phrase"]
    #[rest]
    word: String,
) -> Result<(), CommandError> {
    let g = guild(ctx)?;
    let word = settings::normalize_trigger(&word).unwrap_or_default();
    if settings::remove_trigger(&ctx.data().settings, g, &word).await? {
        say(ctx, &format!("🗑️ Removed the trigger “{word}”.")).await
    } else if ctx
        .data()
        .config
        .discord
        .triggers
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&word))
    {
        say(
            ctx,
            &format!(
                "“{word}” comes from the configuration file (discord.triggers); remove it there."
            ),
        )
        .await
    } else {
        say(ctx, &format!("“{word}” is not a trigger here.")).await
    }
}

/// List the trigger words.
#[poise::command(prefix_command, slash_command, rename = "list")]
async fn trigger_list(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let g = guild(ctx)?;
    let bot = ctx.data();
    let own = settings::guild_triggers(&bot.settings, g).await?;
    let configured = &bot.config.discord.triggers;
    if own.is_empty() && configured.is_empty() {
        return say(ctx, "No trigger words. Add one with `trigger add <word>`.").await;
    }
    let mut text = String::from("**Trigger words**\n");
    for t in configured {
        let _ = writeln!(text, "• “{t}” (configuration)");
    }
    for t in &own {
        let _ = writeln!(text, "• “{t}”");
    }
    say(ctx, &text).await
}

/// Admin: let a user, role or channel use the bot.
#[poise::command(
    prefix_command,
    slash_command,
    guild_only,
    check = "admin_check",
    subcommands("allow_user", "allow_role", "allow_channel"),
    subcommand_required
)]
async fn allow(_ctx: Ctx<'_>) -> Result<(), CommandError> {
    Ok(())
}

/// Admin: stop a user, role or channel from using the bot (deny wins over allow).
#[poise::command(
    prefix_command,
    slash_command,
    guild_only,
    check = "admin_check",
    subcommands("deny_user", "deny_role", "deny_channel"),
    subcommand_required
)]
async fn deny(_ctx: Ctx<'_>) -> Result<(), CommandError> {
    Ok(())
}

async fn set_and_say(
    ctx: Ctx<'_>,
    subject: Subject,
    id: u64,
    mention: String,
    allow: bool,
) -> Result<(), CommandError> {
    let g = guild(ctx)?;
    let restricted = set_access(&ctx.data().settings, g, subject, id, allow).await?;
    let noun = subject.noun();
    let text = if allow {
        let note = if restricted {
            format!(" Only allowed {noun}s may use the bot here now (admins always may).")
        } else {
            String::new()
        };
        format!("✅ Allowed {noun} {mention}.{note}")
    } else {
        format!("🚫 Denied {noun} {mention}.")
    };
    say(ctx, &text).await
}

/// Allow a user.
#[poise::command(prefix_command, slash_command, rename = "user")]
async fn allow_user(
    ctx: Ctx<'_>,
    #[description = "User"] user: serenity::UserId,
) -> Result<(), CommandError> {
    set_and_say(ctx, Subject::User, user.get(), format!("<@{user}>"), true).await
}

/// Allow a role.
#[poise::command(prefix_command, slash_command, rename = "role")]
async fn allow_role(
    ctx: Ctx<'_>,
    #[description = "Role"] role: serenity::RoleId,
) -> Result<(), CommandError> {
    set_and_say(ctx, Subject::Role, role.get(), format!("<@&{role}>"), true).await
}

/// Allow a channel.
#[poise::command(prefix_command, slash_command, rename = "channel")]
async fn allow_channel(
    ctx: Ctx<'_>,
    #[description = "Channel"] channel: serenity::ChannelId,
) -> Result<(), CommandError> {
    set_and_say(
        ctx,
        Subject::Channel,
        channel.get(),
        format!("<#{channel}>"),
        true,
    )
    .await
}

/// Deny a user.
#[poise::command(prefix_command, slash_command, rename = "user")]
async fn deny_user(
    ctx: Ctx<'_>,
    #[description = "User"] user: serenity::UserId,
) -> Result<(), CommandError> {
    set_and_say(ctx, Subject::User, user.get(), format!("<@{user}>"), false).await
}

/// Deny a role.
#[poise::command(prefix_command, slash_command, rename = "role")]
async fn deny_role(
    ctx: Ctx<'_>,
    #[description = "Role"] role: serenity::RoleId,
) -> Result<(), CommandError> {
    set_and_say(ctx, Subject::Role, role.get(), format!("<@&{role}>"), false).await
}

/// Deny a channel.
#[poise::command(prefix_command, slash_command, rename = "channel")]
async fn deny_channel(
    ctx: Ctx<'_>,
    #[description = "Channel"] channel: serenity::ChannelId,
) -> Result<(), CommandError> {
    set_and_say(
        ctx,
        Subject::Channel,
        channel.get(),
        format!("<#{channel}>"),
        false,
    )
    .await
}

/// Admin: set this server's default model.
#[poise::command(prefix_command, slash_command, guild_only, check = "admin_check")]
async fn setmodel(
    ctx: Ctx<'_>,
    #[description = "Model name"] name: String,
) -> Result<(), CommandError> {
    defer(ctx).await;
    let g = guild(ctx)?;
    let bot = ctx.data();
    let name = name.trim().to_string();
    bot.engine.check_model_allowed(&name)?;
    let available = bot.engine.available_models().await?;
    if !available
        .iter()
        .any(|m| crate::conversation::same_model(m, &name))
    {
        return Err(TurnError::Model(crate::llm::LlmError::ModelNotFound { model: name }).into());
    }
    settings::set_guild_model(&bot.settings, g, &name).await?;
    say(ctx, &format!("🧠 `{name}` is now this server's default model (a conversation's own `model` choice still wins).")).await
}

/// Where a persona applies.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum Level {
    #[name = "server"]
    Server,
    #[name = "channel"]
    Channel,
}

/// Admin: set, show or clear the persona (system prompt) of this server or channel.
#[poise::command(
    prefix_command,
    slash_command,
    guild_only,
    check = "admin_check",
    subcommands("persona_set", "persona_show", "persona_clear"),
    subcommand_required
)]
async fn persona(_ctx: Ctx<'_>) -> Result<(), CommandError> {
    Ok(())
}

fn persona_scope(ctx: Ctx<'_>, level: Level) -> Result<PersonaScope, CommandError> {
    Ok(match level {
        Level::Server => PersonaScope::Guild(guild(ctx)?),
        Level::Channel => PersonaScope::Channel(ctx.channel_id().get()),
    })
}

/// Set the persona of this server or channel.
#[poise::command(prefix_command, slash_command, rename = "set")]
async fn persona_set(
    ctx: Ctx<'_>,
    #[description = "server or channel"] level: Level,
    #[description = "The system prompt"]
    #[rest]
    text: String,
) -> Result<(), CommandError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CommandError::Usage(
            "write the persona after the level, e.g. `persona set server You are a pirate.`".into(),
        ));
    }
    settings::set_persona(&ctx.data().settings, persona_scope(ctx, level)?, text).await?;
    say(ctx, &format!("🎭 Persona for this {} set.", level.name())).await
}

/// Show the persona in effect here.
#[poise::command(prefix_command, slash_command, rename = "show")]
async fn persona_show(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let bot = ctx.data();
    let store = &bot.settings;
    let channel =
        settings::persona_at(store, PersonaScope::Channel(ctx.channel_id().get())).await?;
    let server = settings::persona_at(store, PersonaScope::Guild(guild(ctx)?)).await?;
    let text = match (channel, server) {
        (Some(c), _) => format!("🎭 This channel's persona:\n> {c}"),
        (None, Some(s)) => format!("🎭 This server's persona:\n> {s}"),
        (None, None) => format!(
            "🎭 No persona here; the configured system prompt applies:\n> {}",
            bot.config.chat.system_prompt
        ),
    };
    say(ctx, &text).await
}

/// Clear the persona of this server or channel.
#[poise::command(prefix_command, slash_command, rename = "clear")]
async fn persona_clear(
    ctx: Ctx<'_>,
    #[description = "server or channel"] level: Level,
) -> Result<(), CommandError> {
    let cleared = settings::clear_persona(&ctx.data().settings, persona_scope(ctx, level)?).await?;
    say(
        ctx,
        if cleared {
            "🎭 Persona cleared."
        } else {
            "There was no persona to clear."
        },
    )
    .await
}

/// Admin: uptime, model latency, MCP health and queue.
#[poise::command(prefix_command, slash_command, check = "admin_check")]
async fn status(ctx: Ctx<'_>) -> Result<(), CommandError> {
    defer(ctx).await;
    let bot = ctx.data();
    let uptime = bot.started.elapsed();
    let mut text = String::from("**Status**\n");
    let _ = writeln!(
        text,
        "• Uptime: {}",
        humantime::format_duration(std::time::Duration::from_secs(uptime.as_secs()))
    );
    let started = std::time::Instant::now();
    match bot.engine.chat_model().list_models().await {
        Ok(models) => {
            let _ = writeln!(
                text,
                "• Ollama: 🟢 answered in {} ms ({} models)",
                started.elapsed().as_millis(),
                models.len()
            );
        }
        Err(e) => {
            let _ = writeln!(text, "• Ollama: 🔴 {e}");
        }
    }
    let latency = metrics().gateway_latency_seconds.get();
    if latency > 0.0 {
        let _ = writeln!(
            text,
            "• Discord gateway latency: {} ms",
            (latency * 1000.0).round()
        );
    }
    let _ = writeln!(
        text,
        "• Queue: {} waiting, {} in progress (limit {})",
        bot.gate.waiting(),
        bot.gate.pending().saturating_sub(bot.gate.waiting()),
        bot.gate.max_pending()
    );
    let servers = bot.hub.status();
    if servers.is_empty() {
        text.push_str("• MCP servers: none configured\n");
    }
    for s in servers {
        let _ = writeln!(
            text,
            "• MCP **{}**: {} ({} tools)",
            s.name,
            state_text(&s.state),
            s.tools.len()
        );
    }
    say(ctx, &text).await
}

/// Central error handling: every failure becomes a short reply saying what to do.
pub fn on_error(
    error: poise::FrameworkError<'_, Arc<Bot>, CommandError>,
) -> poise::BoxFuture<'_, ()> {
    Box::pin(async move {
        let result = match error {
            poise::FrameworkError::Command { error, ctx, .. } => {
                tracing::info!(command = %ctx.command().qualified_name, error = %error, "command failed");
                say(ctx, &format!("⚠️ {error}")).await
            }
            poise::FrameworkError::ArgumentParse {
                error, input, ctx, ..
            } => {
                let p = &ctx.data().config.discord.command_prefix;
                let c = ctx.command();
                let usage: Vec<String> = c
                    .parameters
                    .iter()
                    .map(|x| {
                        if x.required {
                            format!("<{}>", x.name)
                        } else {
                            format!("[{}]", x.name)
                        }
                    })
                    .collect();
                let what = input.map(|i| format!(" `{i}`")).unwrap_or_default();
                say(
                    ctx,
                    &format!(
                        "⚠️ I could not read the arguments{what}: {error}. Usage: `{p}{} {}`",
                        c.qualified_name,
                        usage.join(" ")
                    ),
                )
                .await
            }
            poise::FrameworkError::CommandCheckFailed { error, ctx, .. } => match error {
                Some(CommandError::NotAllowed(reason)) => {
                    metrics().record_message("refused");
                    if ctx.data().config.discord.reply_when_refused {
                        say(ctx, &format!("🚫 Sorry, {reason}.")).await
                    } else {
                        Ok(())
                    }
                }
                Some(e) => say(ctx, &format!("🚫 {e}")).await,
                None => say(ctx, "🚫 You cannot use this command here.").await,
            },
            poise::FrameworkError::GuildOnly { ctx, .. } => {
                say(ctx, "This command works only in a server.").await
            }
            poise::FrameworkError::SubcommandRequired { ctx } => {
                let p = &ctx.data().config.discord.command_prefix;
                let c = ctx.command();
                let subs: Vec<&str> = c.subcommands.iter().map(|s| s.name.as_ref()).collect();
                say(
                    ctx,
                    &format!(
                        "⚠️ `{p}{}` needs one of: {}.",
                        c.qualified_name,
                        subs.join(", ")
                    ),
                )
                .await
            }
            poise::FrameworkError::UnknownCommand {
                msg,
                content_start,
                framework,
                ..
            } => {
                let start = usize::from(content_start).min(msg.content.len());
                let prefix = msg.content.get(..start).unwrap_or("");
                let name = msg
                    .content
                    .get(start..)
                    .unwrap_or("")
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                let target = Target::Channel {
                    channel: msg.channel_id.get(),
                    reply_to: Some(msg.id.get()),
                };
                let text = if name.is_empty() {
                    format!("That is just the command prefix; see `{prefix}help`.")
                } else {
                    format!("❓ Unknown command `{prefix}{name}`; see `{prefix}help`.")
                };
                framework.user_data.say(&target, &text).await;
                Ok(())
            }
            poise::FrameworkError::EventHandler { error, event, .. } => {
                tracing::warn!(error = %error, event = event.snake_case_name(), "event handler failed");
                Ok(())
            }
            other => {
                tracing::warn!(error = %other, "unhandled command framework error");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "replying with the error failed");
        }
    })
}
