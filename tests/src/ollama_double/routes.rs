//! The HTTP routes of the Ollama double: request checks in Ollama's order, then the scripted
//! reply rendered as Ollama would send it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{OLLAMA_VERSION, Reply, SeenRequest, Shared, render, validate};

pub(super) fn router(shared: Arc<Shared>) -> Router {
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
