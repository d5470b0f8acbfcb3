//! Gateway events: messages that address the bot become conversation turns; button presses
//! answer tool approvals; READY, RESUMED and thread events keep the bot's view current.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use poise::serenity_prelude as serenity;
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use super::admission::{Ask, Outcome, admit, record, refuse};
use super::approval::{Press, answered};
use super::bot::{Bot, Responded};
use super::chain::{self, Visible};
use super::commands::error::CommandError;
use super::reply::defer;
use super::rest::{InteractionCallback, Target, allowed_mentions};
use super::session::{
    Addressed, Incoming, Rules, addressed, remember_message, session_of_message, strip_bot_mention,
};
use super::stream::{Approver, StreamedReply};
use crate::conversation::TurnRequest;
use crate::metrics::metrics;

/// Every gateway event passes here (poise's event handler).
pub async fn on_event(
    framework: poise::FrameworkContext<'_, Arc<Bot>, CommandError>,
    event: &serenity::FullEvent,
) -> Result<(), CommandError> {
    let bot = framework.user_data;
    match event {
        serenity::FullEvent::Ready { data_about_bot } => {
            bot.set_bot_id(data_about_bot.user.id.get());
            bot.rest
                .set_application_id(data_about_bot.application.id.get());
            if bot.readies.fetch_add(1, Ordering::AcqRel) > 0 {
                metrics().gateway_reconnects.inc();
            }
            bot.ready.set(true);
            info!(
                guilds = data_about_bot.guilds.len(),
                "connected to the Discord gateway"
            );
        }
        serenity::FullEvent::Resume { .. } => {
            metrics().gateway_reconnects.inc();
            info!("resumed the Discord gateway session");
        }
        serenity::FullEvent::GuildCreate { guild, .. } => {
            for c in guild.channels.keys() {
                bot.remember_channel(c.get(), None);
            }
            for t in &guild.threads {
                bot.remember_channel(t.id.get(), t.parent_id.map(|p| p.get()).or(Some(0)));
            }
        }
        serenity::FullEvent::ThreadCreate { thread } => {
            bot.remember_channel(
                thread.id.get(),
                thread.parent_id.map(|p| p.get()).or(Some(0)),
            );
        }
        serenity::FullEvent::Message { new_message } => {
            on_message(bot, new_message).await;
        }
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Component(c),
        } => {
            on_component(bot, c).await;
        }
        _ => {}
    }
    Ok(())
}

/// A message as a link of a reply chain.
pub fn visible(m: &serenity::Message) -> Visible {
    Visible {
        id: m.id.get(),
        channel: m.channel_id.get(),
        author_id: m.author.id.get(),
        author: m.author.name.clone(),
        content: m.content.clone(),
        replies_to: m
            .message_reference
            .as_ref()
            .and_then(|r| r.message_id)
            .map(|id| id.get()),
    }
}

/// A message arrived: answer it if it is for the bot.
async fn on_message(bot: &Arc<Bot>, msg: &serenity::Message) {
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
        let place = bot
            .place(guild, msg.channel_id.get(), msg.author.id.get())
            .await;
        let roles = msg
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default();
        let ask = Ask {
            who: bot.who(
                guild,
                msg.channel_id.get(),
                msg.author.id.get(),
                roles,
                place,
            ),
            author: msg.author.name.clone(),
            text: strip_bot_mention(&msg.content, bot_id),
            place,
            // A trigger word in a reply is about the message, not the message replied to.
            replied: replied.filter(|_| why != Addressed::Trigger).map(visible),
            target: Target::Channel {
                channel: msg.channel_id.get(),
                reply_to: Some(msg.id.get()),
            },
        };
        let outcome = answer(bot, ask).await;
        info!(outcome = outcome.label(), "message handled");
    }
    .instrument(span)
    .await;
}

fn mentions_in_text(content: &str, bot: u64) -> bool {
    content.contains(&format!("<@{bot}>")) || content.contains(&format!("<@!{bot}>"))
}

/// Runs a question through admission, then the engine, streaming the answer; counts the outcome
/// in `messages_total{outcome}`.
pub async fn answer(bot: &Arc<Bot>, ask: Ask) -> Outcome {
    defer(bot, &ask.target).await;
    let admitted = match admit(bot, &ask).await {
        Ok(a) => a,
        Err(refusal) => return refuse(bot, &ask.target, refusal).await,
    };
    let outcome = run_turn(bot, &ask, &admitted.session).await;
    record(&outcome);
    outcome
}

/// The question of `ask`, with the visible reply chain before it when the message replied to is
/// not part of this conversation.
async fn question(bot: &Bot, ask: &Ask, session: &str) -> String {
    let Some(replied) = &ask.replied else {
        return ask.text.clone();
    };
    let bot_id = bot.bot_id();
    if replied.author_id == bot_id {
        match session_of_message(bot.engine.store(), replied.id).await {
            Ok(Some(s)) if s == session => return ask.text.clone(),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "reading the reply chain failed; using the visible messages")
            }
        }
    }
    let chain = chain::walk(&bot.rest, replied.clone()).await;
    chain::with_context(&chain, bot_id, &ask.author, &ask.text)
}

async fn run_turn(bot: &Arc<Bot>, ask: &Ask, session: &str) -> Outcome {
    let channels: Vec<u64> = [Some(ask.who.channel), ask.who.parent_channel]
        .into_iter()
        .flatten()
        .collect();
    let (model, persona) = match ask.who.guild {
        Some(g) => (
            bot.settings.guild_model(g).await.unwrap_or_default(),
            bot.settings
                .persona_for(Some(g), &channels)
                .await
                .unwrap_or_default(),
        ),
        None => (None, None),
    };
    let text = question(bot, ask, session).await;
    if let Target::Interaction { id, .. } = &ask.target {
        // The streamed answer fills the deferred "thinking…" itself.
        bot.interactions.advance(*id, Responded::Answered);
    }
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
        ..TurnRequest::new(session.to_string(), text)
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
            return Outcome::Failed;
        }
    };
    for p in &posted {
        if let Err(e) = remember_message(bot.engine.store(), p.id(), session).await {
            warn!(error = %e, "recording the reply chain failed");
        }
    }
    if result.is_ok() {
        Outcome::Answered
    } else {
        Outcome::Failed
    }
}

/// A button was pressed: answer approvals.
async fn on_component(bot: &Arc<Bot>, c: &serenity::ComponentInteraction) {
    let presser = c.user.id.get();
    let no_pings = allowed_mentions(false);
    let (kind, data) = match bot.approvals.press(&c.data.custom_id, presser) {
        Press::NotOurs => return,
        Press::Expired => (
            InteractionCallback::UpdateMessage,
            json!({"content": "⌛ This question has expired.", "components": [], "allowed_mentions": no_pings}),
        ),
        Press::WrongUser { owner } => (
            InteractionCallback::Message,
            json!({"content": format!("Only <@{owner}> can answer this question."), "flags": 64, "allowed_mentions": no_pings}),
        ),
        Press::Decided { approved, tool } => {
            info!(tool, approved, "tool approval answered");
            (
                InteractionCallback::UpdateMessage,
                json!({"content": answered(approved, &tool, presser), "components": [], "allowed_mentions": no_pings}),
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
