//! Commands that show things: `tools`, `help`, and for admins `status`.

use std::fmt::Write as _;

use super::{CommandError, Ctx, admin_check, defer, say, usage};
use crate::mcp::{ServerState, namespaced};
use crate::metrics::metrics;

/// Show the MCP servers, their tools and health.
#[poise::command(prefix_command, slash_command)]
pub async fn tools(ctx: Ctx<'_>) -> Result<(), CommandError> {
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

/// How to talk to this bot, and its commands.
#[poise::command(prefix_command, slash_command)]
pub async fn help(ctx: Ctx<'_>) -> Result<(), CommandError> {
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
    text.push_str("• In a thread, the whole thread is one conversation; elsewhere each person has their own (replying to my answer to someone else brings what you see into yours).\n");
    let _ = writeln!(text, "\n**Commands** (`{p}name` or `/name`)");
    for c in &ctx.framework().options().commands {
        let desc = c.description.as_deref().unwrap_or("");
        let _ = writeln!(text, "• `{}` — {desc}", usage(p, c));
    }
    say(ctx, &text).await
}

/// Admin: uptime, model latency, MCP health and queue.
#[poise::command(prefix_command, slash_command, check = "admin_check")]
pub async fn status(ctx: Ctx<'_>) -> Result<(), CommandError> {
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
