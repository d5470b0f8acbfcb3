//! A protocol-faithful Ollama double: an in-process HTTP server on 127.0.0.1 that speaks
//! Ollama 0.24's API (`POST /api/chat` streamed or not, `GET /api/tags`, `POST /api/show`,
//! `GET /api/ps`, `POST /api/pull`, `GET /api/version`, `GET /`), answers with scripted
//! [`Reply`]s, records every request, and answers as the real server did in the recordings of
//! `../shared/ollama-0.24` (replayed by tests/tests/ollama_conformance.rs): Go's texts for bad
//! JSON, JSON types, options of the wrong type (500) and bad `keep_alive` durations; 404 for an
//! unknown model; 400 for tools to a model without `tools` and `think` to a model without
//! `thinking`; unknown roles and options accepted; `done_reason: "length"` when `num_predict` or
//! the window cuts the reply; tool calls with `call_…` ids; `num_ctx` capped at the model's
//! context length; a prompt longer than the window cut from the start. It also models the
//! prompt cache (file 30): every answered request carries a [`PromptEval`] with the tokens that
//! were evaluated afresh. Like Ollama (Go), it ignores unknown JSON fields.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ollama_mcp_tests::ollama_double::{OllamaDouble, Reply};
//! let double = OllamaDouble::builder()
//!     .model("llama3.2", &["completion", "tools"])
//!     .reply(Reply::tool_calls([("memory__read_graph", serde_json::json!({}))]))
//!     .reply(Reply::text("The graph is empty."))
//!     .start()
//!     .await?;
//! // point the bot at double.url(), run a turn, then:
//! assert_eq!(double.chat_requests().len(), 2);
//! # Ok(()) }
//! ```

mod go;
mod models;
mod prompt;
mod render;
mod routes;
mod validate;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use ollama_mcp_bot::llm::{ChatMessage, FunctionCall, Role, ToolCall};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use go::parse_duration as parse_go_duration;
pub use models::{DEFAULT_NUM_CTX, ModelSpec};
pub use prompt::{PromptCache, PromptEval, prompt_tokens};
pub use render::{estimate_tokens, words};
pub use validate::json_kind;

/// The version `/api/version` reports: the one the recordings were made with.
pub const OLLAMA_VERSION: &str = "0.24.0";

/// What the double answers to one `/api/chat` request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Plain text, streamed one word per chunk.
    Text(String),
    /// Structured `tool_calls` (name, arguments object), in one chunk as Ollama sends them.
    ToolCalls(Vec<(String, Value)>),
    /// Some text, then tool calls.
    TextThenToolCalls(String, Vec<(String, Value)>),
    /// `message.thinking` chunks, then text. Thinking is left out, as Ollama does, when the
    /// model lacks the `thinking` capability or the request says `think: false`.
    ThinkingThenText { thinking: String, text: String },
    /// `after_chunks` chunks of filler text, then an `{"error": message}` line, then the body
    /// ends (what Ollama does when the runner fails mid-generation). Without streaming: 500.
    ErrorMidStream {
        after_chunks: usize,
        message: String,
    },
    /// `after_chunks` chunks, then the connection is cut without the `done` line.
    DropMidStream { after_chunks: usize },
    /// An error status before any body, with `{"error": error}` (e.g. 500, 503, 429).
    Status { code: u16, error: String },
    /// Text with `per_chunk` of delay before every chunk.
    Slow { per_chunk: Duration, text: String },
    /// Never answers (not even headers) until the client gives up or the double stops.
    Hang,
    /// A 200 NDJSON answer whose body is exactly these pieces, each sent as its own HTTP chunk
    /// (for malformed output and for lines split across network reads, even inside a UTF-8
    /// character). Build it with [`Reply::raw`].
    RawChunks(Vec<Bytes>),
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text(text.into())
    }

    pub fn tool_calls<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Self {
        Reply::ToolCalls(calls.into_iter().map(|(n, a)| (n.into(), a)).collect())
    }

    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Reply::ToolCalls(vec![(name.into(), arguments)])
    }

    /// [`Reply::RawChunks`] from strings or byte slices.
    pub fn raw<P: AsRef<[u8]>>(pieces: impl IntoIterator<Item = P>) -> Self {
        Reply::RawChunks(
            pieces
                .into_iter()
                .map(|p| Bytes::copy_from_slice(p.as_ref()))
                .collect(),
        )
    }

    pub fn status(code: u16, error: impl Into<String>) -> Self {
        Reply::Status {
            code,
            error: error.into(),
        }
    }
}

/// A request as the double received it, kept for assertions.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// e.g. "/api/chat".
    pub path: String,
    /// The body exactly as sent.
    pub raw: Bytes,
    /// The body parsed as JSON, if it was JSON.
    pub json: Option<Value>,
    /// The status the double answered with (200 also for [`Reply::Hang`], which never answers).
    pub status: u16,
    pub model: Option<String>,
    /// `messages`, read leniently (what the model would see).
    pub messages: Vec<ChatMessage>,
    /// `tools` as sent (`{"type": "function", "function": {...}}` objects).
    pub tools: Vec<Value>,
    pub options: Map<String, Value>,
    /// `think` as sent (bool or level string).
    pub think: Option<Value>,
    pub keep_alive: Option<Value>,
    /// `stream`, defaulting to true as Ollama does.
    pub stream: bool,
    /// For a chat the model answered: what its prompt cost (tokens read, cut, cached, fresh).
    /// Set before the responder runs.
    pub eval: Option<PromptEval>,
}

impl SeenRequest {
    fn new(method: &Method, path: &str, raw: Bytes) -> Self {
        let json = serde_json::from_slice::<Value>(&raw).ok();
        let get = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .filter(|v| !v.is_null())
        };
        Self {
            method: method.to_string(),
            path: path.to_string(),
            model: get("model")
                .or_else(|| get("name"))
                .and_then(Value::as_str)
                .map(str::to_string),
            messages: get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(lenient_message)
                .collect(),
            tools: get("tools")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            options: get("options")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            think: get("think").cloned(),
            keep_alive: get("keep_alive").cloned(),
            stream: get("stream").and_then(Value::as_bool).unwrap_or(true),
            status: 0,
            eval: None,
            raw,
            json,
        }
    }

    /// Names of the offered tools.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools
            .iter()
            .filter_map(|t| {
                t.pointer("/function/name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    /// Content of the last `user` message.
    pub fn last_user_message(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
    }

    /// The `tool` messages (results of earlier tool calls) in order.
    pub fn tool_results(&self) -> Vec<&ChatMessage> {
        self.messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .collect()
    }

    /// `think` is set to true or a level.
    pub fn wants_thinking(&self) -> bool {
        matches!(
            &self.think,
            Some(Value::Bool(true)) | Some(Value::String(_))
        )
    }
}

fn lenient_message(v: &Value) -> ChatMessage {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let role = match s("role") {
        Some("system") => Role::System,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        _ => Role::User,
    };
    let mut message = ChatMessage::user(s("content").unwrap_or_default());
    message.role = role;
    message.thinking = s("thinking").map(str::to_string);
    message.tool_name = s("tool_name").map(str::to_string);
    message.tool_calls = v
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let f = c.get("function")?;
            Some(ToolCall {
                id: c.get("id").and_then(Value::as_str).map(str::to_string),
                function: FunctionCall {
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: f.get("arguments").cloned().unwrap_or(Value::Null),
                    index: f
                        .get("index")
                        .and_then(Value::as_u64)
                        .and_then(|i| u32::try_from(i).ok()),
                },
            })
        })
        .collect();
    message
}

/// Decides the reply to a chat request the queue has no reply for.
pub type Responder = Arc<dyn Fn(&SeenRequest) -> Reply + Send + Sync>;

struct Script {
    queue: VecDeque<Reply>,
    responder: Option<Responder>,
    fail_next: Option<(usize, u16)>,
}

/// A loaded model: its window, its prompt cache (one slot, as with `OLLAMA_NUM_PARALLEL=1`),
/// and when keep_alive unloads it.
struct Runner {
    num_ctx: usize,
    cache: Vec<prompt::Token>,
    /// `None`: never (a negative keep_alive).
    expires: Option<SystemTime>,
}

impl Runner {
    fn alive(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|t| t > now)
    }

    fn expires_at(&self) -> String {
        // Go adds the largest duration for "forever": some 292 years from now.
        let forever = SystemTime::now() + Duration::from_secs(9_223_372_036);
        render::timestamp_at(self.expires.unwrap_or(forever))
    }
}

struct Shared {
    models: Vec<ModelSpec>,
    script: Mutex<Script>,
    requests: Mutex<Vec<SeenRequest>>,
    runners: Mutex<HashMap<String, Runner>>,
    per_chunk: Duration,
}

impl Shared {
    fn find(&self, name: &str) -> Option<&ModelSpec> {
        let wanted = models::full_name(name.trim());
        self.models.iter().find(|m| m.name == wanted)
    }

    fn runners(&self) -> MutexGuard<'_, HashMap<String, Runner>> {
        self.runners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, mut seen: SeenRequest, status: StatusCode) {
        seen.status = status.as_u16();
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(seen);
    }
}

/// Configures an [`OllamaDouble`] before it starts.
pub struct OllamaDoubleBuilder {
    models: Vec<ModelSpec>,
    queue: VecDeque<Reply>,
    responder: Option<Responder>,
    per_chunk: Duration,
}

impl OllamaDoubleBuilder {
    /// Serves `name` (a tag-less name means `:latest`) with these capabilities ("completion",
    /// "tools", "thinking", "vision", "embedding").
    pub fn model(mut self, name: &str, capabilities: &[&str]) -> Self {
        self.models.push(ModelSpec::new(name, capabilities));
        self
    }

    /// Serves a fully described model.
    pub fn model_spec(mut self, spec: ModelSpec) -> Self {
        self.models.push(spec);
        self
    }

    /// Queues a reply; queued replies are used in order before the responder. Requests the
    /// double rejects (bad body, unknown model, ...) do not consume queued replies.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.queue.push_back(reply);
        self
    }

    pub fn replies(mut self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.queue.extend(replies);
        self
    }

    /// Decides replies when the queue is empty. Without one, the double answers
    /// `echo: <last user message>`.
    pub fn responder(mut self, f: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        self.responder = Some(Arc::new(f));
        self
    }

    /// No artificial delay between chunks (for benchmarks). By default each chunk waits 1 ms,
    /// so that chunks reach the client as separate network reads, as from a real model.
    pub fn instant(mut self) -> Self {
        self.per_chunk = Duration::ZERO;
        self
    }

    /// Starts on 127.0.0.1 on a free port.
    pub async fn start(self) -> std::io::Result<OllamaDouble> {
        self.start_on(0).await
    }

    /// Starts on 127.0.0.1:`port` (to come back on the port of a double that was shut down).
    pub async fn start_on(self, port: u16) -> std::io::Result<OllamaDouble> {
        let shared = Arc::new(Shared {
            models: self.models,
            script: Mutex::new(Script {
                queue: self.queue,
                responder: self.responder,
                fail_next: None,
            }),
            requests: Mutex::new(Vec::new()),
            runners: Mutex::new(HashMap::new()),
            per_chunk: self.per_chunk,
        });
        OllamaDouble::listen(shared, port).await
    }
}

/// The running double. Dropping it stops the server.
pub struct OllamaDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl OllamaDouble {
    /// A builder with no models; add some with [`OllamaDoubleBuilder::model`].
    pub fn builder() -> OllamaDoubleBuilder {
        OllamaDoubleBuilder {
            models: Vec::new(),
            queue: VecDeque::new(),
            responder: None,
            per_chunk: Duration::from_millis(1),
        }
    }

    async fn listen(shared: Arc<Shared>, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, routes::router(shared.clone()), stop_rx));
        Ok(Self {
            shared,
            addr,
            server: Some((stop_tx, task)),
        })
    }

    /// Base URL for `ollama.url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far (all endpoints, rejected ones included), in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The `/api/chat` requests received so far.
    pub fn chat_requests(&self) -> Vec<SeenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/api/chat")
            .collect()
    }

    /// What each chat the model answered cost, in order: model and [`PromptEval`].
    pub fn prompt_evals(&self) -> Vec<(String, PromptEval)> {
        self.chat_requests()
            .into_iter()
            .filter_map(|r| Some((r.model.clone().unwrap_or_default(), r.eval?)))
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Queues a reply (after those already queued).
    pub fn push_reply(&self, reply: Reply) {
        self.shared.script().queue.push_back(reply);
    }

    /// Replaces the responder used when the queue is empty.
    pub fn set_responder(&self, f: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) {
        self.shared.script().responder = Some(Arc::new(f));
    }

    /// The next `n` `/api/chat` requests get `status` with an `{"error"}` body, before any
    /// validation (as an overloaded or crashed server answers), without consuming the queue.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.script().fail_next = (n > 0).then_some((n, status));
    }

    /// Replies still queued.
    pub fn queued_replies(&self) -> usize {
        self.shared.script().queue.len()
    }

    /// Stops listening and cuts every open connection (hanging and streaming requests too), so
    /// that clients see "connection refused" until [`restart`](Self::restart).
    pub async fn shutdown(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Listens again on the same port with the same models, script and recorded requests.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.shutdown().await;
        let again = Self::listen(self.shared.clone(), self.addr.port()).await?;
        self.server = again.into_server();
        Ok(())
    }

    fn into_server(mut self) -> Option<(watch::Sender<bool>, JoinHandle<()>)> {
        self.server.take()
    }
}

impl Drop for OllamaDouble {
    fn drop(&mut self) {
        if let Some((stop, _task)) = self.server.take() {
            let _ = stop.send(true);
        }
    }
}

/// Accepts connections until told to stop, then drops the listener and aborts every connection.
async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Go (Ollama) turns Nagle off on every TCP connection; left on, each streamed
                    // chunk would wait for the client's delayed ACK (~40 ms).
                    let _ = stream.set_nodelay(true);
                    let service = hyper_util::service::TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                            tracing::debug!(error = %e, "ollama double: connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ollama double: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}
