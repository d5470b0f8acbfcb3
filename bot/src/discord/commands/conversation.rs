//! Commands about the conversation: `chat`, `model`, `models`, `reset`, `remember`. The ones that
//! reach the model or a tool (`chat`, `remember`) go through the same admission as a message.

use std::fmt::Write as _;

use serde_json::Value;

use super::{CommandError, Ctx, defer, place_of, required_text, say, target_of, who_of};
use crate::conversation::{TurnObserver, same_model};
use crate::discord::admission::{Ask, Outcome, admit, record, refuse};
use crate::discord::bot::Bot;
use crate::discord::handler::{answer, visible};
use crate::discord::rest::Target;

/// Ask the model something (same as mentioning the bot).
#[poise::command(prefix_command, slash_command)]
pub async fn chat(
    ctx: Ctx<'_>,
    #[description = "What to say"]
    #[rest]
    text: String,
) -> Result<(), CommandError> {
    let bot = ctx.data();
    let (who, place) = who_of(ctx).await;
    crate::metrics::metrics().messages_received.inc();
    let replied = match ctx {
        poise::Context::Prefix(p) => p.msg.referenced_message.as_deref().map(visible),
        poise::Context::Application(_) => None,
    };
    let ask = Ask {
        who,
        author: ctx.author().name.clone(),
        text,
        place,
        replied,
        target: target_of(ctx),
    };
    answer(bot, ask).await;
    Ok(())
}

/// Show this conversation's model, or switch it to another allowed model.
#[poise::command(prefix_command, slash_command)]
pub async fn model(
    ctx: Ctx<'_>,
    #[description = "Model to switch to"] name: Option<String>,
) -> Result<(), CommandError> {
    defer(ctx).await;
    let bot = ctx.data();
    let session = place_of(ctx).await.session();
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
            let current = current_model(ctx, &session).await?;
            let prefix = &bot.config.discord.command_prefix;
            say(ctx, &format!("🧠 This conversation uses `{current}`. Switch with `{prefix}model <name>`; see `{prefix}models`.")).await
        }
    }
}

/// The session's model: its own choice, else the guild's default, else the configured one.
async fn current_model(ctx: Ctx<'_>, session: &str) -> Result<String, CommandError> {
    let bot = ctx.data();
    let guild_default = match ctx.guild_id() {
        Some(g) => bot.settings.guild_model(g.get()).await?,
        None => None,
    };
    Ok(bot
        .engine
        .session_model(session, guild_default.as_deref())
        .await?)
}

/// List the models you can switch to.
#[poise::command(prefix_command, slash_command)]
pub async fn models(ctx: Ctx<'_>) -> Result<(), CommandError> {
    defer(ctx).await;
    let bot = ctx.data();
    let session = place_of(ctx).await.session();
    let current = current_model(ctx, &session).await?;
    let available = bot.engine.available_models().await?;
    if available.is_empty() {
        return say(ctx, "No allowed model is available on the Ollama server; pull one with `ollama pull <model>`.").await;
    }
    let mut text = String::from("**Models**\n");
    for m in &available {
        let mark = if same_model(m, &current) {
            " ← this conversation"
        } else {
            ""
        };
        let _ = writeln!(text, "• `{m}`{mark}");
    }
    say(ctx, &text).await
}

/// Forget this conversation.
#[poise::command(prefix_command, slash_command)]
pub async fn reset(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let session = place_of(ctx).await.session();
    ctx.data().engine.reset(&session).await?;
    say(ctx, "🧹 I forgot this conversation.").await
}

/// Remember something about you (stored by the memory MCP server).
#[poise::command(prefix_command, slash_command)]
pub async fn remember(
    ctx: Ctx<'_>,
    #[description = "What to remember"]
    #[rest]
    text: String,
) -> Result<(), CommandError> {
    let text = required_text(&text, "write what to remember after the command")?;
    defer(ctx).await;
    let bot = ctx.data();
    let target = target_of(ctx);
    let (who, place) = who_of(ctx).await;
    let user = who.user;
    let ask = Ask {
        who,
        author: ctx.author().name.clone(),
        text: text.to_string(),
        place,
        replied: None,
        target: target.clone(),
    };
    // Held until the tools are done: a conversation's turns and its `remember` never overlap.
    let _admitted = match admit(bot, &ask).await {
        Ok(a) => a,
        Err(refusal) => {
            refuse(bot, &target, refusal).await;
            return Ok(());
        }
    };
    let about = format!("{} (Discord user {user})", ctx.author().name);
    let approver = Approving {
        bot,
        target: &target,
        user,
    };
    let result = bot.engine.remember(&about, text, &approver).await;
    record(&match result {
        Ok(()) => Outcome::Answered,
        Err(_) => Outcome::Failed,
    });
    result?;
    say(ctx, &format!("🧠 Remembered: “{text}”")).await
}

/// Asks the person who used the command to approve tools that need it, with buttons.
struct Approving<'a> {
    bot: &'a Bot,
    target: &'a Target,
    user: u64,
}

#[async_trait::async_trait]
impl TurnObserver for Approving<'_> {
    async fn approve_tool(&self, name: &str, arguments: &Value) -> bool {
        self.bot
            .approvals
            .ask(&self.bot.rest, self.target, self.user, name, arguments)
            .await
    }
}
