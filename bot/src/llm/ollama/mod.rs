//! The Ollama client: `/api/chat` streamed as NDJSON, `/api/tags`, `/api/show`, with retries
//! before the first byte and metrics recorded as the stream is consumed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::time::Instant;

use self::errors::{describe, is_retryable_status, status_error};
use self::stream::{Recorder, StreamState};
use super::retry::{Backoff, retry_after};
use super::wire::{ChatBody, TagsResponse, error_message, tools_json};
use super::{ChatModel, ChatRequest, ChatStream, LlmError, ModelDetails, ModelSummary, ToolSpec};
use crate::config::OllamaConfig;
use crate::model_info::ShowResponse;

mod errors;
mod stream;

/// Ceiling of the time to open a TCP connection, separate from the whole-request timeout: a
/// host that drops packets should fail fast and be retried, not eat the whole budget.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Talks to one Ollama server. Cheap to clone (the HTTP connection pool is shared).
#[derive(Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    /// Base URL without a trailing slash; may carry a path prefix (Ollama behind a proxy).
    base: String,
    /// The base URL with any user:password removed, for messages and logs.
    display_url: String,
    request_timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    backoff: Backoff,
    /// The last tool list sent and its JSON: a session offers the same tools in every request,
    /// and rendering their schemas was the largest cost of building a request.
    tools: Arc<Mutex<RenderedTools>>,
}

#[derive(Default)]
struct RenderedTools {
    specs: Vec<ToolSpec>,
    json: Option<Arc<RawValue>>,
}

impl std::fmt::Debug for OllamaClient {
    // By hand: the base URL may carry credentials, which must not reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OllamaClient")
            .field("url", &self.display_url)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// `url` with any `user:password@` removed, for messages about a URL that may not even parse.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

impl OllamaClient {
    /// A client for the server at `config.url`, with `config.request_timeout_secs` for each whole
    /// request (streaming included) and `config.max_retries` extra attempts.
    pub fn new(config: &OllamaConfig) -> Result<Self, LlmError> {
        // reqwest is built without a default crypto provider; without one installed, building a
        // client panics. Installing twice is harmless (the second attempt is refused).
        let _ = rustls::crypto::ring::default_provider().install_default();

        let invalid = |reason: String| LlmError::Connect {
            url: redact_userinfo(&config.url),
            reason,
        };
        let parsed = url::Url::parse(config.url.trim()).map_err(|e| {
            invalid(format!(
                "ollama.url is not a valid URL ({e}); use e.g. http://127.0.0.1:11434"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(
                "ollama.url must be an http:// or https:// URL with a host".into(),
            ));
        }
        let mut shown = parsed.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        let display_url = shown.as_str().trim_end_matches('/').to_string();

        let request_timeout = Duration::from_secs(config.request_timeout_secs.max(1));
        let connect_timeout = CONNECT_TIMEOUT.min(request_timeout);
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .user_agent(concat!("ollama-mcp-bot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {}", describe(&e))))?;
        Ok(Self {
            http,
            base: parsed.as_str().trim_end_matches('/').to_string(),
            display_url,
            request_timeout,
            connect_timeout,
            max_retries: config.max_retries,
            backoff: Backoff::default(),
            tools: Arc::default(),
        })
    }

    /// Replaces the retry delays (tests and benchmarks use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The server's URL as shown to users (credentials removed).
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// The JSON of `tools`: the last rendering when the list is the one sent last (comparing is
    /// much cheaper than escaping every schema again), else rendered now and kept.
    fn rendered_tools(&self, tools: &[ToolSpec]) -> Result<Option<Arc<RawValue>>, LlmError> {
        if tools.is_empty() {
            return Ok(None);
        }
        let mut last = self.tools.lock().unwrap_or_else(|p| p.into_inner());
        if last.json.is_none() || last.specs != tools {
            let json = tools_json(tools).map_err(|e| LlmError::Protocol {
                detail: format!("cannot encode the tools: {e}"),
            })?;
            *last = RenderedTools {
                specs: tools.to_vec(),
                json: json.map(Arc::from),
            };
        }
        Ok(last.json.clone())
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the request built by `build` until it gets a 2xx answer, retrying connect errors,
    /// 429 and 5xx with backoff. Nothing of the body has been read when this returns, so a
    /// retry can never repeat content the caller has already seen.
    async fn send_with_retry(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        model: Option<&str>,
        deadline: Instant,
    ) -> Result<reqwest::Response, LlmError> {
        let mut attempt: u32 = 0;
        loop {
            let (error, reason, server_delay) =
                match tokio::time::timeout_at(deadline, build().send()).await {
                    Err(_) => {
                        return Err(LlmError::Timeout {
                            after: self.request_timeout,
                        });
                    }
                    Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                    Ok(Ok(response)) => {
                        let status = response.status();
                        let server_delay = retry_after(response.headers());
                        let body = match tokio::time::timeout_at(deadline, response.bytes()).await {
                            Ok(Ok(body)) => body,
                            Ok(Err(_)) => Bytes::new(),
                            Err(_) => {
                                return Err(LlmError::Timeout {
                                    after: self.request_timeout,
                                });
                            }
                        };
                        let error = status_error(status, &error_message(&body), model);
                        if !is_retryable_status(status)
                            || matches!(error, LlmError::Rejected { .. })
                        {
                            return Err(error);
                        }
                        (error, format!("HTTP {}", status.as_u16()), server_delay)
                    }
                    Ok(Err(e)) => {
                        let reason = describe(&e);
                        let error = if e.is_connect() && e.is_timeout() {
                            LlmError::Timeout {
                                after: self.connect_timeout,
                            }
                        } else if e.is_timeout() {
                            return Err(LlmError::Timeout {
                                after: self.request_timeout,
                            });
                        } else {
                            LlmError::Connect {
                                url: self.display_url.clone(),
                                reason: reason.clone(),
                            }
                        };
                        // Any failure before an answer arrived (refused, reset, closed) is safe to
                        // retry: the server has produced nothing the caller could have seen.
                        (error, reason, None)
                    }
                };
            if attempt >= self.max_retries {
                return Err(error);
            }
            let delay = self
                .backoff
                .delay(attempt)
                .max(server_delay.unwrap_or_default().min(self.backoff.max));
            if Instant::now() + delay >= deadline {
                return Err(error);
            }
            attempt += 1;
            tracing::warn!(
                attempt,
                max_retries = self.max_retries,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason = %reason,
                url = %self.display_url,
                "Ollama request failed before the answer started; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.request_timeout
    }
}

#[async_trait::async_trait]
impl ChatModel for OllamaClient {
    #[tracing::instrument(
        name = "ollama.chat",
        skip_all,
        fields(model = %request.model, messages = request.messages.len(), tools = request.tools.len())
    )]
    async fn chat(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let mut recorder = Recorder::new(&request.model, tracing::Span::current());
        let deadline = self.deadline();
        let body = self.rendered_tools(&request.tools).and_then(|tools| {
            serde_json::to_vec(&ChatBody::new(&request, tools.as_deref()))
                .map(Bytes::from)
                .map_err(|e| LlmError::Protocol {
                    detail: format!("cannot encode the request: {e}"),
                })
        });
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                recorder.failure(&error);
                return Err(error);
            }
        };
        let url = self.endpoint("/api/chat");
        let build = || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        };
        let response = match self
            .send_with_retry(build, Some(&request.model), deadline)
            .await
        {
            Ok(response) => response,
            Err(error) => {
                recorder.failure(&error);
                return Err(error);
            }
        };
        let state = StreamState::new(
            Box::pin(response.bytes_stream()),
            deadline,
            self.request_timeout,
            recorder,
        );
        Ok(Box::pin(futures::stream::unfold(state, StreamState::next)))
    }

    #[tracing::instrument(name = "ollama.list_models", skip_all)]
    async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError> {
        let url = self.endpoint("/api/tags");
        let response = self
            .send_with_retry(|| self.http.get(&url), None, self.deadline())
            .await?;
        let tags: TagsResponse = self.read_json(response).await?;
        Ok(tags.models.into_iter().map(ModelSummary::from).collect())
    }

    #[tracing::instrument(name = "ollama.show", skip_all, fields(model = %model))]
    async fn show(&self, model: &str) -> Result<ModelDetails, LlmError> {
        let url = self.endpoint("/api/show");
        let body = serde_json::json!({ "model": model });
        let response = self
            .send_with_retry(
                || self.http.post(&url).json(&body),
                Some(model),
                self.deadline(),
            )
            .await?;
        let show: ShowResponse = self.read_json(response).await?;
        Ok(show.into_details(model))
    }
}

impl OllamaClient {
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, LlmError> {
        let body = tokio::time::timeout(self.request_timeout, response.bytes())
            .await
            .map_err(|_| LlmError::Timeout {
                after: self.request_timeout,
            })?
            .map_err(|e| LlmError::Protocol {
                detail: format!("reading the answer failed: {}", describe(&e)),
            })?;
        serde_json::from_slice(&body).map_err(|e| LlmError::Protocol {
            detail: format!("unexpected answer ({e}): {}", super::wire::excerpt(&body)),
        })
    }
}

#[cfg(test)]
mod tests;
