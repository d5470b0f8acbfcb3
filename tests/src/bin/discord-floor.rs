//! The least a Discord bot built on our crates can do per answered message, to measure what
//! CPU per message cannot go below (issue 13; docs/BENCHMARKS.md, Discord → the floor).
//!
//! The same libraries, features and runtime as `ollama-mcp-bot run` (serenity with the vendored
//! patches, poise, reqwest, a current-thread tokio runtime, rustls with ring), and nothing else:
//! no engine, no store, no budget, no streaming edits. On a message that mentions it, it sends
//! the text to Ollama's `/api/chat` as one user message, reads the NDJSON stream (borrowing each
//! line's content), and posts the whole answer as ONE reply: what the bot itself does at
//! 50 msg/s, where each reply is complete before its POST is due. The Discord benchmark runs it
//! in place of the bot (`--floor`), between the same doubles.
//!
//! Configuration from the environment: `DISCORD_TOKEN`, `DISCORD_API_BASE`, `OLLAMA_URL`,
//! `OLLAMA_MODEL`.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use poise::serenity_prelude as serenity;
use serde::Deserialize;
use serde_json::json;

struct Floor {
    http: reqwest::Client,
    api: String,
    token: String,
    chat_url: String,
    model: String,
}

type Ctx<'a> = poise::Context<'a, Arc<Floor>, anyhow::Error>;

/// One slash command, so that the benchmark sees commands registered as it does for the bot.
#[poise::command(slash_command)]
async fn ping(ctx: Ctx<'_>) -> anyhow::Result<()> {
    ctx.say("pong").await?;
    Ok(())
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    message: Option<LineMessage<'a>>,
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
struct LineMessage<'a> {
    #[serde(borrow, default)]
    content: Cow<'a, str>,
}

impl Floor {
    async fn answer(&self, channel: u64, reply_to: u64, text: &str) -> anyhow::Result<()> {
        let request = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
            "stream": true,
        });
        let response = self
            .http
            .post(&self.chat_url)
            .json(&request)
            .send()
            .await
            .context("POST /api/chat")?;
        if !response.status().is_success() {
            bail!("/api/chat answered {}", response.status());
        }
        let mut body = response.bytes_stream();
        let mut pending = Vec::new();
        let mut answer = String::new();
        let mut done = false;
        while let Some(chunk) = body.next().await {
            pending.extend_from_slice(&chunk.context("reading the chat stream")?);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                let line: Line<'_> = serde_json::from_slice(&pending[start..start + end])
                    .context("a chat stream line")?;
                if let Some(m) = line.message {
                    answer.push_str(&m.content);
                }
                done |= line.done;
                start += end + 1;
            }
            pending.drain(..start);
        }
        if !done {
            bail!("the chat stream ended before `done`");
        }
        let body = json!({
            "content": answer,
            "allowed_mentions": {"parse": [], "replied_user": true},
            "message_reference": {"message_id": reply_to.to_string(), "fail_if_not_exists": false},
        });
        let posted = self
            .http
            .post(format!("{}/channels/{channel}/messages", self.api))
            .header("Authorization", format!("Bot {}", self.token))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST /channels/{channel}/messages"))?;
        if !posted.status().is_success() {
            bail!("create message answered {}", posted.status());
        }
        Ok(())
    }
}

async fn on_event(
    framework: poise::FrameworkContext<'_, Arc<Floor>, anyhow::Error>,
    event: &serenity::FullEvent,
) -> anyhow::Result<()> {
    let (ctx, floor) = (framework.serenity_context, framework.user_data);
    let serenity::FullEvent::Message { new_message } = event else {
        return Ok(());
    };
    let me = ctx.cache.current_user().id;
    if new_message.author.bot || !new_message.mentions_user_id(me) {
        return Ok(());
    }
    let mention = format!("<@{me}>");
    let text = new_message
        .content
        .trim_start()
        .strip_prefix(&mention)
        .unwrap_or(&new_message.content)
        .trim()
        .to_string();
    let (channel, id) = (new_message.channel_id.get(), new_message.id.get());
    let floor = floor.clone();
    // Its own task, as the bot does: a slow reply must not hold up the next event.
    tokio::spawn(async move {
        if let Err(e) = floor.answer(channel, id, &text).await {
            tracing::warn!(error = %e, "answering failed");
        }
    });
    Ok(())
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = env("DISCORD_TOKEN")?;
    let api_base = env("DISCORD_API_BASE")?;
    let api_base = api_base.trim_end_matches('/');
    let floor = Arc::new(Floor {
        http: reqwest::Client::builder()
            .user_agent("DiscordBot (https://github.com/ollama-mcp/ollama-mcp, floor)")
            .build()?,
        api: format!("{api_base}/api/v10"),
        token: token.clone(),
        chat_url: format!("{}/api/chat", env("OLLAMA_URL")?.trim_end_matches('/')),
        model: env("OLLAMA_MODEL")?,
    });
    let options = poise::FrameworkOptions {
        commands: vec![ping()],
        event_handler: |framework, event| Box::pin(on_event(framework, event)),
        ..Default::default()
    };
    let framework = poise::Framework::builder()
        .options(options)
        .setup(move |ctx, _ready, framework| {
            Box::pin(async move {
                poise::builtins::register_globally(&ctx.http, &framework.options().commands)
                    .await?;
                Ok(floor)
            })
        })
        .build();
    let http = serenity::HttpBuilder::new(&token)
        .proxy(api_base)
        .ratelimiter_disabled(true)
        .build();
    // The bot's own intents: the same events reach both.
    let intents = ollama_mcp_bot::discord::intents();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let mut client = serenity::ClientBuilder::new_with_http(http, intents)
                .framework(framework)
                .await
                .context("building the serenity client")?;
            client.start().await.context("running the gateway")
        })
}
