//! A thin Discord REST client for everything the bot writes (replies, streamed edits, typing,
//! interaction responses), paced by Discord's own rate-limit answers.
//!
//! serenity sends REST to a proxy only with its rate limiter off, and then a 429 surfaces without
//! `retry_after`. This client reads `X-RateLimit-Remaining` / `X-RateLimit-Reset-After` on every
//! answer and the 429 body's `retry_after`: requests of one bucket (route and channel, or
//! interaction token) go one at a time, wait when the bucket is exhausted, and retry after a 429.
//! [`DiscordRest::spacing`] tells the streamed reply how far apart to put its edits so that the
//! bucket lasts until it resets. Beside the buckets, [`budget`] keeps the bot inside Discord's
//! global limit; [`endpoints`] are the requests the bot makes.

pub mod budget;
pub mod endpoints;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::token::Token;
use crate::metrics::metrics;
pub use budget::{Budget, Paid, Spend};

pub use endpoints::{InteractionCallback, Posted, Target, allowed_mentions};

/// Attempts per request when Discord answers 429.
const MAX_ATTEMPTS: u32 = 6;
/// A 429 may ask for a long wait (a global limit); beyond this the request fails instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A REST failure. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error(
        "Discord refused the bot token (401 Unauthorized); check DISCORD_TOKEN or DISCORD_TOKEN_FILE"
    )]
    Unauthorized,
    #[error("Discord answered {status} to {route}: {message} (code {code})")]
    Rejected {
        route: &'static str,
        status: u16,
        code: u64,
        message: String,
    },
    #[error("Discord kept rate limiting {route} (429) after {attempts} attempts")]
    RateLimited { route: &'static str, attempts: u32 },
    #[error("cannot reach Discord for {route}: {reason}")]
    Network { route: &'static str, reason: String },
    #[error("Discord's answer to {route} is not what the API documents: {reason}")]
    Decode { route: &'static str, reason: String },
}

#[derive(Debug, Default, Clone, Copy)]
struct BucketState {
    remaining: Option<u32>,
    reset_at: Option<Instant>,
}

impl BucketState {
    /// How long to wait before the next request may go.
    fn wait(&self, now: Instant) -> Duration {
        match (self.remaining, self.reset_at) {
            (Some(0), Some(reset)) => reset.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }
}

struct Bucket {
    /// One request at a time per bucket, so that `remaining` is never raced.
    turn: Semaphore,
    state: Mutex<BucketState>,
}

/// How a request counts against Discord's global limit.
enum Charge {
    /// Interaction callbacks and webhooks: not counted, and sent without the bot token.
    Exempt,
    /// Counted: waits for the budget, unless a place was paid for already.
    Bot(Spend, Option<Paid>),
}

pub struct DiscordRest {
    http: reqwest::Client,
    api: String,
    token: RwLock<Token>,
    application_id: AtomicU64,
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
    global_until: Mutex<Option<Instant>>,
    budget: Budget,
}

impl DiscordRest {
    /// A client for `api_base` (`https://discord.com`, a proxy, a test double).
    pub fn new(api_base: &str, token: Token) -> Result<Self, RestError> {
        // reqwest is built without a default rustls provider and panics without one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "DiscordBot (https://github.com/ollama-mcp/ollama-mcp, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .map_err(|e| RestError::Network {
                route: "client",
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            api: format!("{}/api/v10", api_base.trim_end_matches('/')),
            token: RwLock::new(token),
            application_id: AtomicU64::new(0),
            buckets: Mutex::new(HashMap::new()),
            global_until: Mutex::new(None),
            budget: Budget::default(),
        })
    }

    /// Waits for a place in Discord's global budget, to spend on the next request (for a body
    /// that should be as fresh as possible once the request may go).
    pub async fn pay(&self, spend: Spend) -> Paid {
        self.budget.pay(spend).await
    }

    /// Uses a new token from now on (token rotation).
    pub fn set_token(&self, token: Token) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    pub fn set_application_id(&self, id: u64) {
        self.application_id.store(id, Ordering::Relaxed);
    }

    pub fn application_id(&self) -> u64 {
        self.application_id.load(Ordering::Relaxed)
    }

    fn bucket(&self, key: &str) -> Arc<Bucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 4096 {
            // Old channels and interaction tokens: drop buckets nobody is using.
            buckets.retain(|_, b| Arc::strong_count(b) > 1);
        }
        buckets
            .entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Bucket {
                    turn: Semaphore::new(1),
                    state: Mutex::new(BucketState::default()),
                })
            })
            .clone()
    }

    /// How long to wait before the next request in `bucket` so that its remaining requests last
    /// until it resets: `reset_after / (remaining + 1)`, zero while nothing is known.
    pub fn spacing(&self, bucket: &str) -> Duration {
        let state = *self
            .bucket(bucket)
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match (state.remaining, state.reset_at) {
            (Some(remaining), Some(reset)) if reset > now => (reset - now) / (remaining + 1),
            _ => Duration::ZERO,
        }
    }

    /// One request with pacing and 429 retries. Returns the body of a success, unparsed (None
    /// for 204): callers read only what they need (a created message's id), where a parse into
    /// a `Value` of the whole message Discord echoes back was a tenth of a reply's instructions.
    async fn send(
        &self,
        route: &'static str,
        bucket_key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        mut charge: Charge,
    ) -> Result<Option<String>, RestError> {
        let authenticated = !matches!(charge, Charge::Exempt);
        let bucket = self.bucket(bucket_key);
        let _turn = bucket
            .turn
            .acquire()
            .await
            .map_err(|_| RestError::Network {
                route,
                reason: "client closed".into(),
            })?;
        for attempt in 1..=MAX_ATTEMPTS {
            let global = (*self.global_until.lock().unwrap_or_else(|p| p.into_inner()))
                .map_or(Duration::ZERO, |until| {
                    until.saturating_duration_since(Instant::now())
                });
            let local = bucket
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .wait(Instant::now());
            let wait = global.max(local);
            if !wait.is_zero() {
                tracing::debug!(
                    route,
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the Discord rate limit"
                );
                tokio::time::sleep(wait).await;
            }
            if let Charge::Bot(spend, paid) = &mut charge
                && paid.take().is_none()
            {
                // Every attempt counts; a prepaid place covers the first.
                self.budget.pay(*spend).await;
            }
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.api));
            if authenticated {
                let auth = format!(
                    "Bot {}",
                    self.token
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .expose()
                );
                request = request.header(reqwest::header::AUTHORIZATION, auth);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            let response = request.send().await.map_err(|e| RestError::Network {
                route,
                reason: without_url(&e),
            })?;
            let status = response.status().as_u16();
            metrics().record_discord_request(route, status);
            let now = Instant::now();
            {
                let mut state = bucket.state.lock().unwrap_or_else(|p| p.into_inner());
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                if let Some(r) = header("x-ratelimit-remaining").and_then(|v| v.parse().ok()) {
                    state.remaining = Some(r);
                }
                if let Some(after) =
                    header("x-ratelimit-reset-after").and_then(|v| v.parse::<f64>().ok())
                {
                    state.reset_at = Some(now + Duration::from_secs_f64(after.clamp(0.0, 3600.0)));
                }
            }
            if status == 429 {
                let header_retry = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok());
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let retry = body["retry_after"]
                    .as_f64()
                    .or(header_retry)
                    .unwrap_or(1.0)
                    .clamp(0.0, 3600.0);
                let retry = Duration::from_secs_f64(retry);
                let is_global = body["global"] == true;
                tracing::warn!(
                    route,
                    retry_after_ms = retry.as_millis() as u64,
                    global = is_global,
                    attempt,
                    "Discord rate limited a request; waiting"
                );
                if retry > MAX_RETRY_AFTER {
                    return Err(RestError::RateLimited {
                        route,
                        attempts: attempt,
                    });
                }
                if is_global {
                    *self.global_until.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now() + retry);
                } else {
                    let mut state = bucket.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.remaining = Some(0);
                    state.reset_at = Some(Instant::now() + retry);
                }
                continue;
            }
            if status == 401 {
                return Err(RestError::Unauthorized);
            }
            if status == 204 {
                return Ok(None);
            }
            let text = response.text().await.map_err(|e| RestError::Network {
                route,
                reason: without_url(&e),
            })?;
            if (200..300).contains(&status) {
                return Ok(Some(text));
            }
            let json: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| RestError::Decode {
                    route,
                    reason: e.to_string(),
                })?
            };
            let message = json["message"].as_str().unwrap_or("no message").to_string();
            let detail = if json.get("errors").is_some() {
                format!("{message}: {}", json["errors"])
            } else {
                message
            };
            return Err(RestError::Rejected {
                route,
                status,
                code: json["code"].as_u64().unwrap_or(0),
                message: detail,
            });
        }
        Err(RestError::RateLimited {
            route,
            attempts: MAX_ATTEMPTS,
        })
    }
}

/// A success's body as JSON, for the answers the bot reads whole (a channel, a message of a
/// reply chain, the bot's own user).
fn parse_json(route: &'static str, text: Option<String>) -> Result<Value, RestError> {
    let text = text.filter(|t| !t.is_empty()).ok_or(RestError::Decode {
        route,
        reason: "an empty answer".into(),
    })?;
    serde_json::from_str(&text).map_err(|e| RestError::Decode {
        route,
        reason: e.to_string(),
    })
}

/// reqwest's error text without the URL (which may name a proxy; never the token, but keep it short).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_bucket_waits_until_reset() {
        let now = Instant::now();
        let s = BucketState {
            remaining: Some(0),
            reset_at: Some(now + Duration::from_millis(700)),
        };
        assert_eq!(s.wait(now), Duration::from_millis(700));
        let s = BucketState {
            remaining: Some(2),
            reset_at: Some(now + Duration::from_millis(700)),
        };
        assert_eq!(s.wait(now), Duration::ZERO);
        assert_eq!(BucketState::default().wait(now), Duration::ZERO);
    }

    #[test]
    fn spacing_spreads_the_remaining_requests() {
        let rest = DiscordRest::new("http://127.0.0.1:1", Token::parse("t").expect("token"))
            .expect("client");
        assert_eq!(rest.spacing("edit:1"), Duration::ZERO);
        {
            let b = rest.bucket("edit:1");
            let mut s = b.state.lock().expect("lock");
            s.remaining = Some(3);
            s.reset_at = Some(Instant::now() + Duration::from_secs(4));
        }
        let spacing = rest.spacing("edit:1");
        assert!(
            spacing > Duration::from_millis(900) && spacing <= Duration::from_secs(1),
            "{spacing:?}"
        );
    }
}
