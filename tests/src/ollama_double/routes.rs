//! The HTTP routes of the Ollama double: request checks in the order Ollama 0.24 makes them
//! (server/routes.go `ChatHandler`: decode, model name, model lookup, unload, thinking,
//! capabilities, options, load), then the scripted reply rendered as Ollama would send it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::models::{ModelSpec, digest, registry_name};
use super::prompt::{self, PromptEval};
use super::{OLLAMA_VERSION, Reply, Runner, SeenRequest, Shared, go, render, validate};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { "Ollama is running" }).fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .route(
            "/api/version",
            get(|| async { ok(&json!({"version": OLLAMA_VERSION})) })
                .fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .route(
            "/api/tags",
            get(tags).fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .route("/api/ps", get(ps).fallback(|| async { not_allowed("GET") }))
        .route(
            "/api/show",
            post(show).fallback(|| async { not_allowed("POST") }),
        )
        .route(
            "/api/pull",
            post(pull).fallback(|| async { not_allowed("POST") }),
        )
        .route(
            "/api/chat",
            post(chat).fallback(|| async { not_allowed("POST") }),
        )
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "404 page not found") })
        .with_state(shared)
}

/// Gin's plain-text answers (files 27, 28).
fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn not_allowed(allow: &'static str) -> Response {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A JSON answer with gin's `Content-Type: application/json; charset=utf-8`.
fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn ok(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

async fn tags(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    shared.record(
        SeenRequest::new(&method, uri.path(), Bytes::new()),
        StatusCode::OK,
    );
    let now = render::timestamp();
    let models: Vec<Value> = shared.models.iter().map(|m| m.tags_entry(&now)).collect();
    ok(&json!({ "models": models }))
}

async fn ps(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    shared.record(
        SeenRequest::new(&method, uri.path(), Bytes::new()),
        StatusCode::OK,
    );
    let now = SystemTime::now();
    let runners = shared.runners();
    let models: Vec<Value> = shared
        .models
        .iter()
        .filter_map(|m| {
            let runner = runners.get(&m.name).filter(|r| r.alive(now))?;
            Some(m.ps_entry(&runner.expires_at(), runner.num_ctx as u64))
        })
        .collect();
    ok(&json!({ "models": models }))
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

/// `model`, else `name` (older clients), from a show or pull request, with Go's type errors.
fn model_field(body: &Value, go_struct: &str) -> Result<String, String> {
    let Some(object) = body.as_object() else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type api.{go_struct}",
            kind(body)
        ));
    };
    let mut name = String::new();
    for key in ["model", "name"] {
        match object.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                if name.is_empty() {
                    name = s.clone();
                }
            }
            Some(other) => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field {go_struct}.{key} of type string",
                    kind(other)
                ));
            }
        }
    }
    Ok(name)
}

async fn show(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, raw: Bytes) -> Response {
    let seen = SeenRequest::new(&method, uri.path(), raw.clone());
    let reject = |status: StatusCode, message: &str| {
        shared.record(seen.clone(), status);
        error(status, message)
    };
    let name = match go::decode(&raw).and_then(|body| model_field(&body, "ShowRequest")) {
        Ok(name) => name,
        Err(e) => return reject(StatusCode::BAD_REQUEST, &e),
    };
    if name.trim().is_empty() {
        return reject(StatusCode::BAD_REQUEST, "model is required");
    }
    let Some(model) = shared.find(&name) else {
        return reject(StatusCode::NOT_FOUND, &format!("model '{name}' not found"));
    };
    shared.record(seen.clone(), StatusCode::OK);
    ok(&model.show(&render::timestamp()))
}

/// What the recordings' server said when the registry was out of reach (files 23, 24); the
/// double has no registry either.
fn pull_error(name: &str) -> String {
    let full = registry_name(name);
    let (path, tag) = full.rsplit_once(':').unwrap_or((&full, "latest"));
    let path = path.trim_start_matches("registry.ollama.ai/");
    format!(
        "pull model manifest: Get \"https://registry.ollama.ai/v2/{path}/manifests/{tag}\": dial tcp: lookup registry.ollama.ai on 10.255.255.53:53: no such host"
    )
}

async fn pull(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, raw: Bytes) -> Response {
    let seen = SeenRequest::new(&method, uri.path(), raw.clone());
    let body = match go::decode(&raw) {
        Ok(body) => body,
        Err(e) => {
            shared.record(seen, StatusCode::BAD_REQUEST);
            return error(StatusCode::BAD_REQUEST, &e);
        }
    };
    let name = match model_field(&body, "PullRequest") {
        Ok(name) if !name.trim().is_empty() => name,
        Ok(_) => {
            shared.record(seen, StatusCode::BAD_REQUEST);
            return error(StatusCode::BAD_REQUEST, "invalid model name");
        }
        Err(e) => {
            shared.record(seen, StatusCode::BAD_REQUEST);
            return error(StatusCode::BAD_REQUEST, &e);
        }
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(true);
    // A model the double serves is "already pulled": the registry confirms it.
    let lines: Vec<Value> = match shared.find(&name) {
        Some(model) => vec![
            json!({"status": "pulling manifest"}),
            json!({"status": format!("pulling {}", &digest(&model.name)[..12]), "digest": format!("sha256:{}", digest(&model.name)), "total": model.size, "completed": model.size}),
            json!({"status": "verifying sha256 digest"}),
            json!({"status": "writing manifest"}),
            json!({"status": "success"}),
        ],
        None => vec![
            json!({"status": "pulling manifest"}),
            json!({"error": pull_error(&name)}),
        ],
    };
    let failed = lines.iter().any(|l| l.get("error").is_some());
    if stream {
        shared.record(seen, StatusCode::OK);
        return ndjson(lines.into_iter().map(render::Step::Line).collect());
    }
    let last = lines.last().cloned().unwrap_or_default();
    if failed {
        shared.record(seen, StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (StatusCode::INTERNAL_SERVER_ERROR, last.to_string()).into_response();
        // Ollama writes this one without a charset (file 24).
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    shared.record(seen, StatusCode::OK);
    ok(&last)
}

/// `{"model", "created_at", "message": {"role": "assistant", "content": ""}, "done": true,
/// "done_reason"}`: what an empty chat answers (files 19, 19b, 26).
fn bare_done(model: &str, done_reason: &str) -> Response {
    ok(&json!({
        "model": model,
        "created_at": render::timestamp(),
        "message": {"role": "assistant", "content": ""},
        "done": true,
        "done_reason": done_reason,
    }))
}

/// The checks of `ChatHandler` up to the reply; `Err` is the answer.
struct Checked {
    name: String,
    model: ModelSpec,
    body: Value,
    options: Map<String, Value>,
    /// Nanoseconds; `None`: stay loaded forever.
    keep_alive: Option<i128>,
}

fn check_chat(shared: &Shared, raw: &Bytes) -> Result<Checked, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let body = go::decode(raw).map_err(bad)?;
    validate::chat_request(&body).map_err(bad)?;
    let name = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.trim().is_empty() {
        return Err(bad("model is required".into()));
    }
    let model = shared
        .find(&name)
        .cloned()
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("model '{name}' not found")))?;
    let keep_alive = match body.get("keep_alive") {
        Some(v) => validate::keep_alive_value(v).map_err(bad)?,
        None => Some(300 * 1_000_000_000),
    };
    let options = body
        .get("options")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(Checked {
        name,
        model,
        body,
        options,
        keep_alive,
    })
}

async fn chat(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, raw: Bytes) -> Response {
    let mut seen = SeenRequest::new(&method, uri.path(), raw.clone());
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

    let Checked {
        name,
        model,
        body,
        options,
        keep_alive,
    } = match check_chat(&shared, &raw) {
        Ok(checked) => checked,
        Err((status, message)) => return reject(seen, status, &message),
    };
    let messages: Vec<Value> = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if messages.is_empty() && keep_alive == Some(0) {
        shared.runners().remove(&model.name);
        shared.record(seen, StatusCode::OK);
        return bare_done(&name, "unload");
    }
    if seen.wants_thinking() && !model.supports("thinking") {
        return reject(
            seen,
            StatusCode::BAD_REQUEST,
            &format!("{name:?} does not support thinking"),
        );
    }
    if !model.supports("completion") {
        return reject(
            seen,
            StatusCode::BAD_REQUEST,
            &format!("{name:?} does not support chat"),
        );
    }
    if !seen.tools.is_empty() && !model.supports("tools") {
        let message = format!("{} does not support tools", model.registry_name());
        return reject(seen, StatusCode::BAD_REQUEST, &message);
    }
    if let Err(message) = validate::options(&options) {
        return reject(seen, StatusCode::INTERNAL_SERVER_ERROR, &message);
    }

    let window = usize::try_from(model.window(validate::int_option(&options, "num_ctx")))
        .unwrap_or(usize::MAX);
    let cache = shared.load(&model.name, window, keep_alive);
    if messages.is_empty() {
        shared.record(seen, StatusCode::OK);
        return bare_done(&name, "load");
    }

    let num_keep = validate::int_option(&options, "num_keep")
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(4);
    let fitted = prompt::fit(&model, &messages, &seen.tools, window, num_keep);
    let eval = PromptEval::new(
        &fitted,
        prompt::shared_prefix(&cache, &fitted.tokens),
        window,
    );
    tracing::info!(
        model = %model.name,
        num_ctx = eval.num_ctx,
        prompt_tokens = eval.prompt_tokens,
        cached_tokens = eval.cached_tokens,
        fresh_tokens = eval.fresh_tokens,
        truncated = eval.truncated,
        "ollama double: prompt evaluated"
    );
    seen.eval = Some(eval);

    let reply = next_reply(&shared, &seen);
    let emit_thinking = model.supports("thinking") && seen.think != Some(Value::Bool(false));
    // Only `num_predict` stops generation: a full window is shifted, not ended (file 25 goes on
    // generating after a prompt of exactly num_ctx tokens).
    let max_tokens = validate::int_option(&options, "num_predict")
        .filter(|n| *n >= 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let generation = render::Generation {
        thinking: emit_thinking,
        tool_call_prefix: model
            .tool_call_prefix
            .as_deref()
            .filter(|_| !seen.tools.is_empty()),
        max_tokens,
        per_chunk: shared.per_chunk,
    };
    let stream = seen.stream;
    let mut remembered = fitted.tokens;
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
            // Ends with the connection: at the latest when the double shuts down.
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
            let Some(plan) = render::Plan::new(&reply, &generation) else {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ollama double: reply has no plan",
                );
            };
            prompt::text(&mut remembered, &plan.generated);
            remembered.truncate(window);
            shared.remember(&model.name, remembered);
            shared.record(
                seen,
                if stream || matches!(plan.ending, render::Ending::Done) {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
            );
            if stream {
                ndjson(plan.stream_steps(&name, &eval))
            } else {
                let delay = plan.total_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match plan.whole(&name, &eval) {
                    Ok(object) => ok(&object),
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

impl Shared {
    /// Loads `model` with a `num_ctx` window (reloading, which empties the prompt cache, when
    /// the window changed or keep_alive expired) and returns its prompt cache.
    fn load(&self, model: &str, num_ctx: usize, keep_alive: Option<i128>) -> Vec<prompt::Token> {
        let now = SystemTime::now();
        let expires = keep_alive
            .map(|ns| now + Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX)));
        let mut runners = self.runners();
        let runner = runners.entry(model.to_string()).or_insert(Runner {
            num_ctx,
            cache: Vec::new(),
            expires,
        });
        if runner.num_ctx != num_ctx || !runner.alive(now) {
            runner.num_ctx = num_ctx;
            runner.cache.clear();
        }
        runner.expires = expires;
        runner.cache.clone()
    }

    fn remember(&self, model: &str, tokens: Vec<prompt::Token>) {
        if let Some(runner) = self.runners().get_mut(model) {
            runner.cache = tokens;
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
