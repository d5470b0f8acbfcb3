//! The Discord adapter: serenity for the gateway, poise for commands, and a paced REST client of
//! our own for everything the bot writes. [`run`] is the body of `ollama-mcp-bot run`.
//!
//! - [`token`]: the token from `DISCORD_TOKEN` / `DISCORD_TOKEN_FILE`, watched for rotation.
//! - [`rest`]: replies, streamed edits, typing and interaction responses, paced by Discord's
//!   rate-limit headers and 429s.
//! - [`stream`], [`split`]: streamed replies split at 2000 characters without breaking code.
//! - [`reply`]: short replies (command answers, refusals) to a channel or an interaction.
//! - [`session`], [`chain`], [`access`], [`admission`], [`fair_use`], [`settings`]: who is
//!   answered, in which conversation and with what context, whether they may, how often, and the
//!   per-guild settings admins change.
//! - [`bot`], [`handler`], [`commands`], [`approval`]: the shared state, gateway events, commands,
//!   tool-approval buttons.

pub mod access;
pub mod admission;
pub mod approval;
pub mod bot;
pub mod chain;
pub mod commands;
pub mod fair_use;
pub mod handler;
pub mod reply;
pub mod rest;
pub mod session;
pub mod settings;
pub mod split;
pub mod stream;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use poise::serenity_prelude as serenity;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BotConfig;
use crate::conversation::Engine;
use crate::mcp::McpHub;
use crate::metrics::{Readiness, metrics};

use bot::Bot;
use rest::{DiscordRest, RestError};
use token::{Token, TokenError, TokenSource};

/// Exit code of `ollama-mcp-bot run` when Discord refuses the token: restarting will not help.
pub const EXIT_INVALID_TOKEN: i32 = 2;

/// Why the Discord bot stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error(
        "Discord refused the bot token (401 Unauthorized / gateway close 4004): copy the token again from the Bot page of your application in the Discord developer portal"
    )]
    InvalidToken,
    #[error(
        "Discord refused the gateway intents: enable the MESSAGE CONTENT intent on the Bot page of your application in the Discord developer portal"
    )]
    DisallowedIntents,
    #[error("talking to Discord at {api_base}: {source}")]
    Rest { api_base: String, source: RestError },
    #[error("Discord gateway: {0}")]
    Gateway(String),
}

impl RunError {
    /// The process exit code for this error: [`EXIT_INVALID_TOKEN`] for configuration problems
    /// that a restart cannot fix, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Token(_) | RunError::InvalidToken | RunError::DisallowedIntents => {
                EXIT_INVALID_TOKEN
            }
            _ => 1,
        }
    }
}

/// Gateway intents: guild and direct messages, and MESSAGE_CONTENT for triggers and commands.
pub fn intents() -> serenity::GatewayIntents {
    serenity::GatewayIntents::GUILDS
        | serenity::GatewayIntents::GUILD_MESSAGES
        | serenity::GatewayIntents::DIRECT_MESSAGES
        | serenity::GatewayIntents::MESSAGE_CONTENT
}

fn is_discord_com(api_base: &str) -> bool {
    let host = api_base
        .split("://")
        .nth(1)
        .unwrap_or(api_base)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "discord.com" || host.ends_with(".discord.com")
}

/// Serves Discord until `shutdown` is cancelled (the caller serves `/metrics` and `/readyz`
/// with `ready`, which turns true on READY): connects, answers, and reconnects with a new
/// token when the token file changes. Returns `Err` with [`RunError::exit_code`] 2 when Discord
/// refuses the token (at start, or later with a token that cannot rotate).
pub async fn run(
    config: BotConfig,
    engine: Engine,
    hub: Arc<McpHub>,
    ready: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), RunError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let source = TokenSource::from_env()?;
    let token = source.load()?;
    let api_base = config.discord.api_base.clone();
    let rest = Arc::new(
        DiscordRest::new(&api_base, token.clone()).map_err(|source| RunError::Rest {
            api_base: api_base.clone(),
            source,
        })?,
    );
    // The commonest mistake is a wrong token: check it before anything else.
    let (bot_id, bot_name) = match rest.current_user().await {
        Ok(me) => me,
        Err(RestError::Unauthorized) => return Err(RunError::InvalidToken),
        Err(source) => return Err(RunError::Rest { api_base, source }),
    };
    info!(bot = %bot_name, id = bot_id, api_base = %api_base, "Discord accepted the token");
    let bot = Arc::new(Bot::new(
        config,
        engine,
        hub.clone(),
        rest.clone(),
        ready.clone(),
    ));
    bot.set_bot_id(bot_id);

    let (token_tx, mut token_rx) = watch::channel(token.clone());
    // Without a token file the sender stays here, unused: the token never changes.
    let _fixed_token = match &source {
        TokenSource::File(path) => {
            tokio::spawn(token::watch_file(
                path.clone(),
                token.clone(),
                token_tx,
                token::WATCH_INTERVAL,
            ));
            None
        }
        TokenSource::Env => Some(token_tx),
    };
    let mut current = token;
    let result = loop {
        let mut client = match client(&bot, &current, &api_base).await {
            Ok(c) => c,
            Err(e) => break Err(e),
        };
        let shards = client.shard_manager.clone();
        let latency = tokio::spawn(watch_latency(shards.clone()));
        let outcome = tokio::select! {
            r = client.start_autosharded() => Outcome::Ended(r),
            changed = token_rx.changed() => match changed {
                Ok(()) => Outcome::Rotated,
                Err(_) => Outcome::Ended(Ok(())),
            },
            () = shutdown.cancelled() => Outcome::Shutdown,
        };
        latency.abort();
        match outcome {
            Outcome::Rotated => {
                let new = token_rx.borrow_and_update().clone();
                info!("reconnecting to Discord with the rotated token");
                ready.set(false);
                shards.shutdown_all().await;
                rest.set_token(new.clone());
                metrics().gateway_reconnects.inc();
                current = new;
            }
            Outcome::Shutdown => {
                info!("shutting down");
                shards.shutdown_all().await;
                break Ok(());
            }
            Outcome::Ended(Ok(())) => break Ok(()),
            Outcome::Ended(Err(serenity::Error::Gateway(
                serenity::GatewayError::InvalidAuthentication,
            ))) => {
                ready.set(false);
                if !source.rotates() {
                    break Err(RunError::InvalidToken);
                }
                warn!("Discord refused the token; waiting for DISCORD_TOKEN_FILE to change");
                tokio::select! {
                    changed = token_rx.changed() => if changed.is_err() { break Err(RunError::InvalidToken) },
                    () = shutdown.cancelled() => break Ok(()),
                }
                let new = token_rx.borrow_and_update().clone();
                rest.set_token(new.clone());
                current = new;
            }
            Outcome::Ended(Err(serenity::Error::Gateway(
                serenity::GatewayError::DisallowedGatewayIntents
                | serenity::GatewayError::InvalidGatewayIntents,
            ))) => break Err(RunError::DisallowedIntents),
            Outcome::Ended(Err(e)) => break Err(RunError::Gateway(e.to_string())),
        }
    };
    ready.set(false);
    hub.shutdown().await;
    result
}

enum Outcome {
    Ended(Result<(), serenity::Error>),
    Rotated,
    Shutdown,
}

/// Reports the shards' heartbeat latency as `gateway_latency_seconds`.
async fn watch_latency(shards: Arc<serenity::ShardManager>) {
    // The latency changes only with a heartbeat (about every 41 s): a first read soon after
    // connecting, then one a minute keeps an idle bot asleep (issue 13) and the gauge at most
    // one heartbeat behind.
    let mut wait = Duration::from_secs(10);
    loop {
        tokio::time::sleep(wait).await;
        wait = Duration::from_secs(60);
        let latency = {
            let runners = shards.runners.lock().await;
            runners.values().filter_map(|r| r.latency).max()
        };
        if let Some(l) = latency {
            metrics().gateway_latency_seconds.set(l.as_secs_f64());
        }
    }
}

/// A serenity client with the poise framework, for one token.
async fn client(
    bot: &Arc<Bot>,
    token: &Token,
    api_base: &str,
) -> Result<serenity::Client, RunError> {
    let mut options = poise::FrameworkOptions {
        commands: commands::all(),
        on_error: commands::on_error,
        command_check: Some(|ctx| Box::pin(commands::command_check(ctx))),
        event_handler: |framework, event| Box::pin(handler::on_event(framework, event)),
        allowed_mentions: Some(
            serenity::CreateAllowedMentions::new()
                .empty_users()
                .empty_roles()
                .replied_user(true),
        ),
        initialize_owners: false,
        ..Default::default()
    };
    options.prefix_options = poise::PrefixFrameworkOptions {
        prefix: Some(bot.config.discord.command_prefix.clone().into()),
        // Mentions are conversations, not commands.
        mention_as_prefix: false,
        case_insensitive_commands: true,
        ignore_bots: true,
        execute_self_messages: false,
        ..Default::default()
    };
    let data = bot.clone();
    let framework = poise::Framework::builder()
        .options(options)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                if let Err(e) = poise::builtins::register_globally(&ctx.http, &framework.options().commands).await {
                    warn!(error = %e, "registering slash commands failed; prefix commands still work");
                } else {
                    info!(commands = framework.options().commands.len(), "slash commands registered");
                }
                let _ = ready;
                Ok(data)
            })
        })
        .build();
    let mut http = serenity::HttpBuilder::new(token.expose());
    if !is_discord_com(api_base) {
        // serenity uses a proxy only with its own limiter off; our REST client paces by headers.
        http = http
            .proxy(api_base.trim_end_matches('/'))
            .ratelimiter_disabled(true);
    }
    serenity::ClientBuilder::new_with_http(http.build(), intents())
        .framework(framework)
        .await
        .map_err(|e| RunError::Gateway(e.to_string()))
}

#[cfg(test)]
mod gateway_parse_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_com_is_recognised() {
        assert!(is_discord_com("https://discord.com"));
        assert!(is_discord_com("https://canary.discord.com/"));
        assert!(!is_discord_com("http://127.0.0.1:3000"));
        assert!(!is_discord_com("https://discord.com.evil.example"));
    }

    #[test]
    fn token_problems_exit_with_2() {
        assert_eq!(RunError::InvalidToken.exit_code(), EXIT_INVALID_TOKEN);
        assert_eq!(
            RunError::Token(TokenError::Missing).exit_code(),
            EXIT_INVALID_TOKEN
        );
        assert_eq!(RunError::Gateway("x".into()).exit_code(), 1);
    }
}
