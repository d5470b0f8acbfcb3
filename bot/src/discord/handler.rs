//! Gateway events: messages that address the bot become conversation turns; button presses
//! answer tool approvals; READY, RESUMED and thread events keep the bot's view current.

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Bot;
use super::access::{Decision, Who, lists_for};
use super::approval::{Press, answered};
use super::fair_use::human_wait;
use super::rest::Target;
use super::session::{
    Addressed, Incoming, Place, Rules, addressed, remember_message, session_of_message,
    strip_bot_mention,
};
use super::settings;
use super::stream::{Approver, StreamedReply};
use crate::conversation::TurnRequest;
use crate::metrics::metrics;

/// Longest question accepted (Discord's own limit for a message, with Nitro).
pub const MAX_PROMPT_CHARS: usize = 4000;

/// One question for the model, wherever it came from (a message or a `chat` command).
pub struct Ask {
    pub who: Who,
    pub text: String,
    pub place: Place,
    /// The session of the bot message this continues (a reply chain), if any.
    pub continues: Option<String>,
    pub target: Target,
}

/// A message arrived: answer it if it is for the bot.
pub async fn on_message(ctx: &serenity::Context, bot: &Arc<Bot>, msg: &serenity::Message) {
    let bot_id = bot.bot_id();
    if msg.author.bot || msg.author.id.get() == bot_id || msg.webhook_id.is_some() {
        return;
    }
    // Commands are poise's.
    if msg.content.starts_with(&bot.config.discord.command_prefix) {
        return;
    }
    let guild = msg.guild_id.map(|g| g.get());
    let triggers = match bot.triggers(guild).await {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "reading trigger words failed; using the configured ones");
            bot.config.discord.triggers.clone()
        }
    };
    let replied = msg.referenced_message.as_deref();
    let incoming = Incoming {
        author_is_bot: msg.author.bot,
        is_dm: guild.is_none(),
        mentions_bot: msg.mentions.iter().any(|u| u.id.get() == bot_id)
            || mentions_in_text(&msg.content, bot_id),
        replies_to_bot: replied.is_some_and(|r| r.author.id.get() == bot_id),
        content: &msg.content,
    };
    let rules = Rules {
        respond_to_mentions: bot.config.discord.respond_to_mentions,
        allow_dms: bot.config.discord.allow_dms,
        triggers: &triggers,
    };
    let Some(why) = addressed(&incoming, &rules) else {
        return;
    };
    // A resumed gateway may deliver an event twice; answer once.
    if !bot.first_time(msg.id.get()) {
        debug!(message = msg.id.get(), "already handled");
        return;
    }
    metrics().messages_received.inc();
    let span = info_span!("message", message = msg.id.get(), channel = msg.channel_id.get(), addressed = ?why);
    async {
        let place = bot.place(&ctx.http, guild, msg.channel_id, msg.author.id.get()).await;
        let continues = match (why, replied) {
            (Addressed::Reply | Addressed::Mention, Some(r)) if r.author.id.get() == bot_id => {
                session_of_message(bot.engine.store(), r.id.get()).await.unwrap_or_else(|e| {
                    warn!(error = %e, "reading the reply chain failed; starting a new conversation");
                    None
                })
            }
            _ => None,
        };
        let ask = Ask {
            who: bot.who(guild, msg.channel_id.get(), msg.author.id.get(), msg.member.as_ref().map(|m| m.roles.as_slice()), place),
            text: strip_bot_mention(&msg.content, bot_id),
            place,
            continues,
            target: Target::Channel { channel: msg.channel_id.get(), reply_to: Some(msg.id.get()) },
        };
        let outcome = answer(bot, ask).await;
        info!(outcome, "message handled");
    }
    .instrument(span)
    .await;
}

fn mentions_in_text(content: &str, bot: u64) -> bool {
    content.contains(&format!("<@{bot}>")) || content.contains(&format!("<@!{bot}>"))
}

/// Runs a question through access, rate limits and the queue, then the engine, streaming the
/// answer. Returns the outcome label (also counted in `messages{outcome}`).
pub async fn answer(bot: &Arc<Bot>, ask: Ask) -> &'static str {
    let outcome = answer_inner(bot, ask).await;
    metrics().record_message(outcome);
    outcome
}

async fn answer_inner(bot: &Arc<Bot>, ask: Ask) -> &'static str {
    let store = bot.engine.store();
    let lists = match lists_for(&bot.settings, &bot.lists, ask.who.guild).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "reading access lists failed");
            bot.say(&ask.target, &format!("⚠️ {e}")).await;
            return "error";
        }
    };
    if let Decision::Denied(reason) = lists.decide(&ask.who) {
        info!(user = ask.who.user, reason, "refused");
        if bot.config.discord.reply_when_refused {
            bot.say(&ask.target, &format!("🚫 Sorry, {reason}.")).await;
        }
        return "refused";
    }
    if let Err(wait) = bot.limiter.check(ask.who.user) {
        bot.say(
            &ask.target,
            &format!(
                "⏳ You are sending messages faster than this bot allows; try again in {}.",
                human_wait(wait)
            ),
        )
        .await;
        return "rate_limited";
    }
    if ask.text.trim().is_empty() {
        let prefix = &bot.config.discord.command_prefix;
        bot.say(&ask.target, &format!("👋 You mentioned me without a question: write it after the mention, or see `{prefix}help`.")).await;
        return "empty";
    }
    let chars = ask.text.chars().count();
    if chars > MAX_PROMPT_CHARS {
        bot.say(&ask.target, &format!("✂️ That message is {chars} characters long; I take up to {MAX_PROMPT_CHARS}. Please shorten it or split it up."))
            .await;
        return "too_long";
    }
    let Some(ticket) = bot.gate.enter() else {
        bot.say(
            &ask.target,
            &format!(
                "🚦 I am busy with {} questions right now; please try again in a minute.",
                bot.gate.pending()
            ),
        )
        .await;
        return "busy";
    };
    let _slot = bot.gate.slot(&ticket, ask.who.guild.unwrap_or(0)).await;

    let session = ask.continues.clone().unwrap_or_else(|| ask.place.session());
    let channels: Vec<u64> = [Some(ask.who.channel), ask.who.parent_channel]
        .into_iter()
        .flatten()
        .collect();
    let (model, persona) = match ask.who.guild {
        Some(g) => (
            settings::guild_model(&bot.settings, g)
                .await
                .unwrap_or_default(),
            settings::persona_for(&bot.settings, Some(g), &channels)
                .await
                .unwrap_or_default(),
        ),
        None => (None, None),
    };
    let reply = StreamedReply::start(
        bot.rest.clone(),
        ask.target.clone(),
        ask.who.channel,
        bot.config.discord.show_tool_calls,
        Some(Approver {
            approvals: bot.approvals.clone(),
            user: ask.who.user,
        }),
    );
    let request = TurnRequest {
        model,
        system_prompt: persona,
        ..TurnRequest::new(session.clone(), ask.text)
    };
    let result = bot.engine.turn(request, &reply).await;
    let error = result.as_ref().err().map(ToString::to_string);
    if let Err(e) = &result {
        warn!(error = %e, kind = e.kind(), "turn failed");
    }
    let posted = match reply.finish(error.as_deref()).await {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "posting the reply to Discord failed");
            return "error";
        }
    };
    for p in &posted {
        if let Err(e) = remember_message(store, p.id(), &session).await {
            warn!(error = %e, "recording the reply chain failed");
        }
    }
    if result.is_ok() { "answered" } else { "error" }
}

/// A button was pressed: answer approvals.
pub async fn on_component(bot: &Arc<Bot>, c: &serenity::ComponentInteraction) {
    let presser = c.user.id.get();
    let (kind, data) = match bot.approvals.press(&c.data.custom_id, presser) {
        Press::NotOurs => return,
        Press::Expired => (
            7,
            json!({"content": "⌛ This question has expired.", "components": [], "allowed_mentions": {"parse": []}}),
        ),
        Press::WrongUser { owner } => (
            4,
            json!({"content": format!("Only <@{owner}> can answer this question."), "flags": 64, "allowed_mentions": {"parse": []}}),
        ),
        Press::Decided { approved, tool } => {
            info!(tool, approved, "tool approval answered");
            (
                7,
                json!({"content": answered(approved, &tool, presser), "components": [], "allowed_mentions": {"parse": []}}),
            )
        }
    };
    if let Err(e) = bot
        .rest
        .interaction_callback(c.id.get(), &c.token, kind, Some(data))
        .await
    {
        warn!(error = %e, "answering the button press failed");
    }
}
