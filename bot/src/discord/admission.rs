//! Admission: whether a question (a message, `chat`, `remember`) is taken now, and if not, why.
//! A [`Refusal`] carries its metric label and its message, so one place records and answers it,
//! and `messages_total{outcome}` has a label set the compiler knows.

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tracing::info;

use super::access::{Decision, Who};
use super::bot::Bot;
use super::chain::Visible;
use super::fair_use::{Ticket, human_wait};
use super::reply::say_or_log;
use super::rest::Target;
use super::session::Place;
use crate::metrics::metrics;
use crate::store::StoreError;

/// Longest question accepted (Discord's own limit for a message, with Nitro).
pub const MAX_PROMPT_CHARS: usize = 4000;

/// One question for the model, wherever it came from.
pub struct Ask {
    pub who: Who,
    /// The asker's name, as the channel shows it.
    pub author: String,
    pub text: String,
    pub place: Place,
    /// The message this one replies to, if any (its chain may become context).
    pub replied: Option<Visible>,
    pub target: Target,
}

/// Why a question is not taken.
#[derive(Debug)]
pub enum Refusal {
    /// The access lists say no (the reason is for the asker).
    Denied(&'static str),
    /// The access lists could not be read.
    Unavailable(StoreError),
    /// The asker is over the per-user rate limit; the time until the next question is allowed.
    RateLimited(Duration),
    Empty,
    TooLong {
        chars: usize,
    },
    /// `max_queue` questions are already waiting or running.
    Busy {
        pending: usize,
    },
    /// Another turn of this conversation ran longer than a question waits for it.
    ConversationBusy,
}

impl Refusal {
    /// The `outcome` label of `messages_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Denied(_) => "refused",
            Refusal::Unavailable(_) => "error",
            Refusal::RateLimited(_) => "rate_limited",
            Refusal::Empty => "empty",
            Refusal::TooLong { .. } => "too_long",
            Refusal::Busy { .. } | Refusal::ConversationBusy => "busy",
        }
    }

    /// What the asker is told; `prefix` is the command prefix.
    pub fn message(&self, prefix: &str) -> String {
        match self {
            Refusal::Denied(reason) => format!("🚫 Sorry, {reason}."),
            Refusal::Unavailable(e) => format!("⚠️ {e}"),
            Refusal::RateLimited(wait) => format!(
                "⏳ You are sending messages faster than this bot allows; try again in {}.",
                human_wait(*wait)
            ),
            Refusal::Empty => format!(
                "👋 You mentioned me without a question: write it after the mention, or see `{prefix}help`."
            ),
            Refusal::TooLong { chars } => format!(
                "✂️ That message is {chars} characters long; I take up to {MAX_PROMPT_CHARS}. Please shorten it or split it up."
            ),
            Refusal::Busy { pending } => format!(
                "🚦 I am busy with {pending} questions right now; please try again in a minute."
            ),
            Refusal::ConversationBusy => "🚦 I am still answering an earlier question in this conversation; please ask again when it is done.".to_string(),
        }
    }
}

/// How a question ended.
#[derive(Debug)]
pub enum Outcome {
    Answered,
    Failed,
    Refused(Refusal),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Failed => "error",
            Outcome::Refused(r) => r.label(),
        }
    }
}

/// Counts a handled question in `messages_total{outcome}`.
pub fn record(outcome: &Outcome) {
    metrics().record_message(outcome.label());
}

/// A question taken: its conversation is held for it, and it has one of the guild's slots.
pub struct Admitted {
    pub session: String,
    // Field order is drop order: the slot and the conversation go before the queue place.
    _slot: Option<OwnedSemaphorePermit>,
    _conversation: OwnedSemaphorePermit,
    _ticket: Ticket,
}

/// May `who` use the bot here?
pub async fn check_access(bot: &Bot, who: &Who) -> Result<(), Refusal> {
    let lists = bot
        .settings
        .lists(&bot.lists, who.guild)
        .await
        .map_err(Refusal::Unavailable)?;
    match lists.decide(who) {
        Decision::Allowed => Ok(()),
        Decision::Denied(reason) => Err(Refusal::Denied(reason)),
    }
}

/// Access, the per-user rate limit, the question's size, the bot's queue, then (waiting) the
/// conversation and a slot of the guild.
pub async fn admit(bot: &Bot, ask: &Ask) -> Result<Admitted, Refusal> {
    check_access(bot, &ask.who).await?;
    bot.limiter
        .check(ask.who.user)
        .map_err(Refusal::RateLimited)?;
    if ask.text.trim().is_empty() {
        return Err(Refusal::Empty);
    }
    let chars = ask.text.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(Refusal::TooLong { chars });
    }
    let ticket = bot.gate.enter().ok_or(Refusal::Busy {
        pending: bot.gate.pending(),
    })?;
    let session = ask.place.session();
    // The conversation first: a question waiting for it must not hold one of the guild's slots.
    let conversation = bot
        .sessions
        .lock(&session)
        .await
        .ok_or(Refusal::ConversationBusy)?;
    let slot = bot.gate.slot(&ticket, ask.who.guild.unwrap_or(0)).await;
    Ok(Admitted {
        session,
        _slot: slot,
        _conversation: conversation,
        _ticket: ticket,
    })
}

/// Tells the asker why (unless refusals by the access lists are silent) and records the outcome.
pub async fn refuse(bot: &Bot, target: &Target, refusal: Refusal) -> Outcome {
    info!(outcome = refusal.label(), refusal = ?refusal, "question refused");
    let silent = matches!(refusal, Refusal::Denied(_)) && !bot.config.discord.reply_when_refused;
    if !silent {
        say_or_log(
            bot,
            target,
            &refusal.message(&bot.config.discord.command_prefix),
        )
        .await;
    }
    let outcome = Outcome::Refused(refusal);
    record(&outcome);
    outcome
}
