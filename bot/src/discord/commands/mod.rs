//! The bot's commands, as prefix commands (`!chat ...`) and the same as slash commands (poise):
//! `chat`, `model`, `models`, `reset`, `remember` ([`conversation`]); `tools`, `help`, `status`
//! ([`info`]); for admins `trigger`, `allow`, `deny`, `setmodel`, `persona` ([`admin`]). One
//! function per command; its doc comment is its description. Here: the context type, the checks,
//! the usage text and the central error handler.

mod admin;
mod conversation;
mod info;

use std::sync::Arc;

use super::access::Who;
use super::admission::{Refusal, check_access, refuse};
use super::bot::Bot;
use super::reply;
use super::rest::{RestError, Target};
use super::session::Place;
use crate::conversation::TurnError;
use crate::conversation::remember::RememberError;
use crate::store::StoreError;

pub type Ctx<'a> = poise::Context<'a, Arc<Bot>, CommandError>;
type Command = poise::Command<Arc<Bot>, CommandError>;

/// A command failure; its text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Discord(#[from] RestError),
    #[error("{0}")]
    Turn(#[from] TurnError),
    #[error("{0}")]
    Remember(#[from] RememberError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "only the bot's admins can use this command (discord.access.admin_users / admin_roles)"
    )]
    NotAdmin,
    /// Admission said no (access lists, direct messages off).
    #[error("{}", .0.message(""))]
    Refused(Refusal),
    #[error("{0}")]
    Usage(String),
}

/// The commands, in help order.
pub fn all() -> Vec<Command> {
    vec![
        conversation::chat(),
        conversation::model(),
        conversation::models(),
        info::tools(),
        conversation::reset(),
        conversation::remember(),
        info::help(),
        admin::trigger(),
        admin::allow(),
        admin::deny(),
        admin::setmodel(),
        admin::persona(),
        info::status(),
    ]
}

/// Where the command's answer goes: a reply to the command message, or the interaction.
fn target_of(ctx: Ctx<'_>) -> Target {
    match ctx {
        poise::Context::Prefix(p) => Target::Channel {
            channel: p.msg.channel_id.get(),
            reply_to: Some(p.msg.id.get()),
        },
        poise::Context::Application(a) => Target::Interaction {
            id: a.interaction.id.get(),
            token: a.interaction.token.clone(),
        },
    }
}

/// Replies to the command (see [`reply::say`]).
async fn say(ctx: Ctx<'_>, text: &str) -> Result<(), CommandError> {
    Ok(reply::say(ctx.data(), &target_of(ctx), text).await?)
}

/// Shows "thinking…" for a slash command that may take a while.
async fn defer(ctx: Ctx<'_>) {
    reply::defer(ctx.data(), &target_of(ctx)).await;
}

/// Where the command was used, as the conversation sees it.
async fn place_of(ctx: Ctx<'_>) -> Place {
    ctx.data()
        .place(
            ctx.guild_id().map(|g| g.get()),
            ctx.channel_id().get(),
            ctx.author().id.get(),
        )
        .await
}

fn roles_of(ctx: Ctx<'_>) -> Vec<u64> {
    let member = match ctx {
        poise::Context::Prefix(p) => p.msg.member.as_ref().map(|m| &m.roles),
        poise::Context::Application(a) => a.interaction.member.as_ref().map(|m| &m.roles),
    };
    member
        .map(|roles| roles.iter().map(|r| r.get()).collect())
        .unwrap_or_default()
}

async fn who_of(ctx: Ctx<'_>) -> (Who, Place) {
    let place = place_of(ctx).await;
    let who = ctx.data().who(
        ctx.guild_id().map(|g| g.get()),
        ctx.channel_id().get(),
        ctx.author().id.get(),
        roles_of(ctx),
        place,
    );
    (who, place)
}

fn guild(ctx: Ctx<'_>) -> Result<u64, CommandError> {
    ctx.guild_id()
        .map(|g| g.get())
        .ok_or_else(|| CommandError::Usage("this command works only in a server".into()))
}

/// Access for every command: deny lists, allow lists, DMs. Admins pass allow lists.
pub async fn command_check(ctx: Ctx<'_>) -> Result<bool, CommandError> {
    let bot = ctx.data();
    if ctx.guild_id().is_none() && !bot.config.discord.allow_dms {
        return Err(CommandError::Refused(Refusal::Denied(
            "direct messages are switched off for this bot",
        )));
    }
    let (who, _) = who_of(ctx).await;
    check_access(bot, &who)
        .await
        .map_err(CommandError::Refused)?;
    Ok(true)
}

async fn admin_check(ctx: Ctx<'_>) -> Result<bool, CommandError> {
    let (who, _) = who_of(ctx).await;
    if ctx.data().lists.is_admin(&who) {
        Ok(true)
    } else {
        Err(CommandError::NotAdmin)
    }
}

/// `!name <required> [optional]` for a command without subcommands, `!name a|b` with them.
fn usage(prefix: &str, c: &Command) -> String {
    if !c.subcommands.is_empty() {
        let subs: Vec<&str> = c.subcommands.iter().map(|s| s.name.as_ref()).collect();
        return format!("{prefix}{} {}", c.qualified_name, subs.join("|"));
    }
    let mut text = format!("{prefix}{}", c.qualified_name);
    for x in &c.parameters {
        if x.required {
            text.push_str(&format!(" <{}>", x.name));
        } else {
            text.push_str(&format!(" [{}]", x.name));
        }
    }
    text
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
                let what = input.map(|i| format!(" `{i}`")).unwrap_or_default();
                say(
                    ctx,
                    &format!(
                        "⚠️ I could not read the arguments{what}: {error}. Usage: `{}`",
                        usage(p, ctx.command())
                    ),
                )
                .await
            }
            poise::FrameworkError::CommandCheckFailed { error, ctx, .. } => match error {
                Some(CommandError::Refused(refusal)) => {
                    refuse(ctx.data(), &target_of(ctx), refusal).await;
                    Ok(())
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
                reply::say(framework.user_data, &target, &text)
                    .await
                    .map_err(CommandError::from)
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
