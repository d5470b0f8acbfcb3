//! Admin commands: `trigger`, `allow`, `deny`, `setmodel`, `persona`. They change the guild's
//! settings (`settings.rs`), each change one store transaction.

use std::fmt::Write as _;

use poise::ChoiceParameter as _;
use poise::serenity_prelude as serenity;

use super::{CommandError, Ctx, admin_check, defer, guild, required_text, say};
use crate::conversation::{TurnError, same_model};
use crate::discord::access::Subject;
use crate::discord::settings::{MAX_TRIGGER_CHARS, PersonaScope, normalize_trigger};
use crate::llm::LlmError;

/// Admin: manage this server's trigger words.
#[poise::command(
    prefix_command,
    slash_command,
    guild_only,
    check = "admin_check",
    subcommands("trigger_add", "trigger_remove", "trigger_list"),
    subcommand_required
)]
pub async fn trigger(_ctx: Ctx<'_>) -> Result<(), CommandError> {
    Ok(())
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
    let word = normalize_trigger(&word).ok_or_else(|| {
        CommandError::Usage(format!(
            "a trigger is 1 to {} characters",
            MAX_TRIGGER_CHARS
        ))
    })?;
    if ctx.data().settings.add_trigger(g, &word).await? {
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
    let word = normalize_trigger(&word).unwrap_or_default();
    if ctx.data().settings.remove_trigger(g, &word).await? {
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
    let own = bot.settings.triggers(g).await?;
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
pub async fn allow(_ctx: Ctx<'_>) -> Result<(), CommandError> {
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
pub async fn deny(_ctx: Ctx<'_>) -> Result<(), CommandError> {
    Ok(())
}

async fn set_and_say(
    ctx: Ctx<'_>,
    subject: Subject,
    id: u64,
    allow: bool,
) -> Result<(), CommandError> {
    let g = guild(ctx)?;
    let restricted = ctx
        .data()
        .settings
        .set_access(g, subject, id, allow)
        .await?;
    let noun = subject.noun();
    let mention = subject.mention(id);
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

/// One `allow`/`deny` subcommand per kind of subject: poise needs a function for each, and they
/// differ only in the subject and the verdict.
macro_rules! access_subcommand {
    ($name:ident, $doc:tt, $rename:tt, $param:ident: $ty:ty, $desc:tt, $subject:expr, $allow:expr) => {
        #[doc = $doc]
        #[poise::command(prefix_command, slash_command, rename = $rename)]
        async fn $name(
            ctx: Ctx<'_>,
            #[description = $desc] $param: $ty,
        ) -> Result<(), CommandError> {
            set_and_say(ctx, $subject, $param.get(), $allow).await
        }
    };
}

access_subcommand!(allow_user, "Allow a user.", "user", user: serenity::UserId, "User", Subject::User, true);
access_subcommand!(allow_role, "Allow a role.", "role", role: serenity::RoleId, "Role", Subject::Role, true);
access_subcommand!(allow_channel, "Allow a channel.", "channel", channel: serenity::ChannelId, "Channel", Subject::Channel, true);
access_subcommand!(deny_user, "Deny a user.", "user", user: serenity::UserId, "User", Subject::User, false);
access_subcommand!(deny_role, "Deny a role.", "role", role: serenity::RoleId, "Role", Subject::Role, false);
access_subcommand!(deny_channel, "Deny a channel.", "channel", channel: serenity::ChannelId, "Channel", Subject::Channel, false);

/// Admin: set this server's default model.
#[poise::command(prefix_command, slash_command, guild_only, check = "admin_check")]
pub async fn setmodel(
    ctx: Ctx<'_>,
    #[description = "Model name"] name: String,
) -> Result<(), CommandError> {
    defer(ctx).await;
    let g = guild(ctx)?;
    let bot = ctx.data();
    let name = name.trim().to_string();
    bot.engine.check_model_allowed(&name)?;
    let available = bot.engine.available_models().await?;
    if !available.iter().any(|m| same_model(m, &name)) {
        return Err(TurnError::Model(LlmError::ModelNotFound { model: name }).into());
    }
    bot.settings.set_guild_model(g, &name).await?;
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
pub async fn persona(_ctx: Ctx<'_>) -> Result<(), CommandError> {
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
    let text = required_text(
        &text,
        "write the persona after the level, e.g. `persona set server You are a pirate.`",
    )?;
    ctx.data()
        .settings
        .set_persona(persona_scope(ctx, level)?, text)
        .await?;
    say(ctx, &format!("🎭 Persona for this {} set.", level.name())).await
}

/// Show the persona in effect here.
#[poise::command(prefix_command, slash_command, rename = "show")]
async fn persona_show(ctx: Ctx<'_>) -> Result<(), CommandError> {
    let bot = ctx.data();
    let channel = bot
        .settings
        .persona_at(PersonaScope::Channel(ctx.channel_id().get()))
        .await?;
    let server = bot
        .settings
        .persona_at(PersonaScope::Guild(guild(ctx)?))
        .await?;
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
    let cleared = ctx
        .data()
        .settings
        .clear_persona(persona_scope(ctx, level)?)
        .await?;
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
