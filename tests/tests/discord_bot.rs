//! End to end through the built `ollama-mcp-bot run`: the Discord double plays a guild, the
//! Ollama double plays the model, real MCP servers serve tools.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod discord_support;

use discord_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mention_gets_a_streamed_reply_that_pings_only_the_asker() {
    let h = Harness::start(echo_model().await, |_, _| {}).await;
    let p = h.p;
    let asked = h.discord.user_says(p.alice, p.general, &h.mention("hello there, how are you today?"));
    let reply = h.reply_eq(asked, "echo: hello there, how are you today?").await;
    assert_eq!(reply.allowed_mentions[0], Some(json!({"parse": [], "replied_user": true})));
    assert_eq!(reply.pinged_users, vec![p.alice]);
    // The model saw the question without the mention.
    let seen = h.ollama.chat_requests();
    assert_eq!(seen.last().unwrap().last_user_message(), Some("hello there, how are you today?"));
}
