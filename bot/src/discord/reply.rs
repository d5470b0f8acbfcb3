//! Short replies (command answers, refusals, errors): one [`say`] for a channel message and for a
//! slash command, and [`defer`] for commands that may take longer than Discord's 3 s. Streamed
//! model answers are `stream.rs`.

use serde_json::json;

use super::bot::{Bot, Responded};
use super::rest::{InteractionCallback, RestError, Target, allowed_mentions};
use super::split::{DISCORD_LIMIT, split_message};

/// Posts `text` to `target`, split at 2000 characters, pinging nobody but the person replied to.
/// A slash command's first piece answers the interaction (or fills its "thinking…"); the others
/// are follow-ups.
pub async fn say(bot: &Bot, target: &Target, text: &str) -> Result<(), RestError> {
    for (i, piece) in split_message(text, DISCORD_LIMIT).iter().enumerate() {
        match target {
            Target::Channel { .. } => {
                bot.rest.post(target, i == 0, piece, None, None).await?;
            }
            Target::Interaction { id, token } => {
                match bot.interactions.advance(*id, Responded::Answered) {
                    Responded::Nothing => {
                        let data =
                            json!({"content": piece, "allowed_mentions": allowed_mentions(false)});
                        bot.rest
                            .interaction_callback(
                                *id,
                                token,
                                InteractionCallback::Message,
                                Some(data),
                            )
                            .await?;
                    }
                    Responded::Deferred => {
                        bot.rest.post(target, true, piece, None, None).await?;
                    }
                    Responded::Answered => {
                        bot.rest.post(target, false, piece, None, None).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// [`say`], logging a failure (for replies nobody waits on: refusals, error notices).
pub async fn say_or_log(bot: &Bot, target: &Target, text: &str) {
    if let Err(e) = say(bot, target, text).await {
        tracing::warn!(error = %e, "sending a reply failed");
    }
}

/// Shows "thinking…" for a slash command that may take longer than 3 s; its answer then fills
/// that message. Nothing for channel messages or an interaction already answered.
pub async fn defer(bot: &Bot, target: &Target) {
    let Target::Interaction { id, token } = target else {
        return;
    };
    if bot.interactions.advance(*id, Responded::Deferred) != Responded::Nothing {
        return;
    }
    if let Err(e) = bot
        .rest
        .interaction_callback(*id, token, InteractionCallback::DeferredMessage, None)
        .await
    {
        tracing::warn!(error = %e, "deferring the interaction failed");
    }
}
