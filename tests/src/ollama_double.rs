//! A protocol-faithful Ollama double: an in-process HTTP server on 127.0.0.1 that speaks
//! Ollama's API (`POST /api/chat` streamed or not, `GET /api/tags`, `POST /api/show`,
//! `GET /api/version`, `GET /`), answers with scripted [`Reply`]s, records every request, and
//! rejects what real Ollama rejects (bad JSON or JSON types, missing or unknown model, tools to a
//! model without the `tools` capability, `think` to a model without `thinking`, unknown roles,
//! wrong HTTP method). Like Ollama (Go), it ignores unknown JSON fields.
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

mod render;
mod validate;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use ollama_mcp_bot::llm::{ChatMessage, FunctionCall, Role, ToolCall};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use render::{estimate_tokens, prompt_tokens, words};

/// The version `/api/version` reports.
pub const OLLAMA_VERSION: &str = "0.12.6";

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
    /// The status the double answered with.
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

/// A model the double serves.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Full name with tag, e.g. "llama3.2:latest".
    pub name: String,
    pub capabilities: Vec<String>,
    pub context_length: u64,
    /// The architecture (`general.architecture`), which prefixes `model_info` keys.
    pub family: String,
    pub parameter_size: String,
    pub size: u64,
}

impl ModelSpec {
    /// A model with Ollama-like defaults (llama family, 3.2B, 128k context).
    pub fn new(name: &str, capabilities: &[&str]) -> Self {
        Self {
            name: full_name(name),
            capabilities: capabilities.iter().map(|c| (*c).to_string()).collect(),
            context_length: 131_072,
            family: "llama".into(),
            parameter_size: "3.2B".into(),
            size: 2_019_393_189,
        }
    }

    pub fn with_context_length(mut self, context_length: u64) -> Self {
        self.context_length = context_length;
        self
    }

    pub fn with_family(mut self, family: &str) -> Self {
        self.family = family.into();
        self
    }

    fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// "llama3.2" → "llama3.2:latest", as Ollama names models without a tag.
fn full_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

struct Script {
    queue: VecDeque<Reply>,
    responder: Option<Responder>,
    fail_next: Option<(usize, u16)>,
}

struct Shared {
    models: Vec<ModelSpec>,
    script: Mutex<Script>,
    requests: Mutex<Vec<SeenRequest>>,
    per_chunk: Duration,
}

impl Shared {
    fn find(&self, name: &str) -> Option<&ModelSpec> {
        let wanted = full_name(name.trim());
        self.models.iter().find(|m| m.name == wanted)
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

    /// Queues a reply; queued replies are used in order before the responder.
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
        let task = tokio::spawn(serve(listener, router(shared.clone()), stop_rx));
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

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route(
            "/api/version",
            get(|| async { axum::Json(json!({"version": OLLAMA_VERSION})) }),
        )
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn tags(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    shared.record(
        SeenRequest::new(&method, uri.path(), Bytes::new()),
        StatusCode::OK,
    );
    let models: Vec<Value> = shared
        .models
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "model": m.name,
                "modified_at": render::timestamp(),
                "size": m.size,
                "digest": fake_digest(&m.name),
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": m.family,
                    "families": [m.family],
                    "parameter_size": m.parameter_size,
                    "quantization_level": "Q4_K_M"
                }
            })
        })
        .collect();
    axum::Json(json!({ "models": models })).into_response()
}

/// A stable 64-hex-digit stand-in for a model digest.
fn fake_digest(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for round in 0..4u8 {
        for b in name.bytes().chain([round]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// Parses a JSON body as gin's `ShouldBindJSON` does: empty → "missing request body".
fn parse_body(raw: &Bytes) -> Result<Value, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err("missing request body".into());
    }
    serde_json::from_slice(raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => "unexpected EOF".to_string(),
        _ => format!("invalid character in JSON body: {e}"),
    })
}

async fn show(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, raw: Bytes) -> Response {
    let seen = SeenRequest::new(&method, uri.path(), raw.clone());
    let reject = |status: StatusCode, message: &str| {
        shared.record(seen.clone(), status);
        error(status, message)
    };
    let body = match parse_body(&raw) {
        Ok(body) => body,
        Err(e) => return reject(StatusCode::BAD_REQUEST, &e),
    };
    if !body.is_object() {
        return reject(
            StatusCode::BAD_REQUEST,
            &format!(
                "json: cannot unmarshal {} into Go value of type api.ShowRequest",
                kind(&body)
            ),
        );
    }
    let name = body
        .get("model")
        .or_else(|| body.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        return reject(StatusCode::BAD_REQUEST, "model is required");
    }
    let Some(model) = shared.find(name) else {
        return reject(StatusCode::NOT_FOUND, &format!("model '{name}' not found"));
    };
    shared.record(seen.clone(), StatusCode::OK);
    let f = &model.family;
    axum::Json(json!({
        "license": "",
        "modelfile": format!("FROM {}\n", model.name),
        "parameters": "stop \"<|eot_id|>\"",
        "template": "{{ .Prompt }}",
        "details": {
            "parent_model": "", "format": "gguf", "family": f, "families": [f],
            "parameter_size": model.parameter_size, "quantization_level": "Q4_K_M"
        },
        "model_info": {
            "general.architecture": f,
            "general.parameter_count": 3_212_749_888u64,
            format!("{f}.context_length"): model.context_length,
            format!("{f}.embedding_length"): 3072,
            format!("{f}.block_count"): 28
        },
        "capabilities": model.capabilities,
        "modified_at": render::timestamp()
    }))
    .into_response()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Object(_) => "object",
    }
}

async fn chat(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, raw: Bytes) -> Response {
    let seen = SeenRequest::new(&method, uri.path(), raw.clone());
    let reject = |seen: SeenRequest, status: StatusCode, message: &str| {
        shared.record(seen, status);
        error(status, message)
    };

    let injected = {
        let mut script = shared.script();
        match script.fail_next {
            Some((n, status)) => {
                script.fail_next = (n > 1).then_some((n - 1, status));
                Some(status)
            }
            None => None,
        }
    };
    if let Some(status) = injected {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reject(
            seen,
            status,
            &format!("injected failure (HTTP {})", status.as_u16()),
        );
    }

    let body = match parse_body(&raw) {
        Ok(body) => body,
        Err(e) => return reject(seen, StatusCode::BAD_REQUEST, &e),
    };
    if let Err(e) = validate::chat_request(&body) {
        return reject(seen, StatusCode::BAD_REQUEST, &e);
    }
    let name = seen.model.clone().unwrap_or_default();
    if name.trim().is_empty() {
        return reject(seen, StatusCode::BAD_REQUEST, "model is required");
    }
    let Some(model) = shared.find(&name).cloned() else {
        return reject(
            seen,
            StatusCode::NOT_FOUND,
            &format!("model \"{name}\" not found, try pulling it first"),
        );
    };
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !validate::ROLES.contains(&role) {
            let message =
                format!("invalid role {role:?}: must be one of system, user, assistant, tool");
            return reject(seen, StatusCode::BAD_REQUEST, &message);
        }
    }
    if !seen.tools.is_empty() && !model.supports("tools") {
        let message = format!(
            "registry.ollama.ai/library/{} does not support tools",
            model.name
        );
        return reject(seen, StatusCode::BAD_REQUEST, &message);
    }
    if seen.wants_thinking() && !model.supports("thinking") {
        return reject(
            seen,
            StatusCode::BAD_REQUEST,
            &format!("\"{name}\" does not support thinking"),
        );
    }

    let reply = next_reply(&shared, &seen);
    let prompt_tokens = render::prompt_tokens(&body);
    let emit_thinking = model.supports("thinking") && seen.think != Some(Value::Bool(false));
    let stream = seen.stream;
    match reply {
        Reply::Status {
            code,
            error: message,
        } => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            reject(seen, status, &message)
        }
        Reply::Hang => {
            shared.record(seen, StatusCode::OK);
            // Cancelled when the client goes away or the double shuts down.
            std::future::pending::<Response>().await
        }
        Reply::RawChunks(pieces) => {
            shared.record(seen, StatusCode::OK);
            let mut steps = Vec::new();
            for piece in pieces {
                steps.push(render::Step::Raw(piece));
                steps.push(render::Step::Sleep(
                    shared.per_chunk.max(Duration::from_millis(1)),
                ));
            }
            ndjson(steps)
        }
        reply => {
            let Some(plan) = render::Plan::new(&reply, emit_thinking, shared.per_chunk) else {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ollama double: reply has no plan",
                );
            };
            shared.record(
                seen,
                if stream || matches!(plan.ending, render::Ending::Done) {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
            );
            if stream {
                ndjson(plan.stream_steps(&model.name, prompt_tokens))
            } else {
                let delay = plan.total_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match plan.whole(&model.name, prompt_tokens) {
                    Ok(object) => axum::Json(object).into_response(),
                    Err(render::Ending::Error { message }) => {
                        error(StatusCode::INTERNAL_SERVER_ERROR, message)
                    }
                    Err(_) => ndjson(vec![
                        render::Step::Sleep(Duration::from_millis(5)),
                        render::Step::Abort,
                    ]),
                }
            }
        }
    }
}

fn next_reply(shared: &Shared, seen: &SeenRequest) -> Reply {
    let responder = {
        let mut script = shared.script();
        if let Some(reply) = script.queue.pop_front() {
            return reply;
        }
        script.responder.clone()
    };
    // The responder runs without the lock held, so it may call back into the double.
    match responder {
        Some(responder) => responder(seen),
        None => Reply::Text(format!(
            "echo: {}",
            seen.last_user_message().unwrap_or_default()
        )),
    }
}

/// A 200 `application/x-ndjson` answer that plays `steps`.
fn ndjson(steps: Vec<render::Step>) -> Response {
    let body = futures::stream::unfold(steps.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                render::Step::Sleep(d) => tokio::time::sleep(d).await,
                render::Step::Line(v) => {
                    let mut line = v.to_string().into_bytes();
                    line.push(b'\n');
                    return Some((Ok::<Bytes, std::io::Error>(Bytes::from(line)), steps));
                }
                render::Step::Raw(b) => return Some((Ok(b), steps)),
                render::Step::Abort => {
                    return Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "scripted drop",
                        )),
                        steps,
                    ));
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}
