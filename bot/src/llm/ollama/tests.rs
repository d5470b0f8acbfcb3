#![allow(clippy::unwrap_used, reason = "test code")]

use reqwest::StatusCode;

use super::*;

#[test]
fn status_mapping() {
    let e = status_error(StatusCode::NOT_FOUND, "whatever wording", Some("llama3.2"));
    assert!(matches!(e, LlmError::ModelNotFound { ref model } if model == "llama3.2"));
    assert!(e.to_string().contains("ollama pull llama3.2"));
    let e = status_error(
        StatusCode::BAD_REQUEST,
        "registry.ollama.ai/library/gemma:latest Does Not Support Tools",
        Some("gemma"),
    );
    assert!(matches!(e, LlmError::ToolsUnsupported { .. }));
    let e = status_error(
        StatusCode::BAD_REQUEST,
        "\"gemma\" does not support thinking",
        Some("gemma"),
    );
    assert!(
        matches!(e, LlmError::Rejected { status: 400, ref message } if message.contains("thinking"))
    );
    let e = status_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "option \"num_ctx\" must be of type integer",
        Some("gemma"),
    );
    assert!(matches!(e, LlmError::Rejected { status: 500, .. }), "{e:?}");
    let e = status_error(
        StatusCode::BAD_REQUEST,
        "time: invalid duration \"forever\"",
        Some("m"),
    );
    assert!(matches!(e, LlmError::Rejected { .. }), "{e:?}");
    let e = status_error(StatusCode::SERVICE_UNAVAILABLE, "server busy", Some("m"));
    assert!(matches!(e, LlmError::Server { status: 503, .. }), "{e:?}");
    let e = status_error(StatusCode::NOT_FOUND, "404 page not found", None);
    assert!(matches!(e, LlmError::Server { status: 404, .. }));
}

#[test]
fn retryable_statuses() {
    assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
    assert!(is_retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
    assert!(!is_retryable_status(StatusCode::BAD_REQUEST));
    assert!(!is_retryable_status(StatusCode::NOT_FOUND));
}

#[test]
fn url_validation_and_redaction() {
    let config = |url: &str| OllamaConfig {
        url: url.into(),
        ..OllamaConfig::default()
    };
    let c = OllamaClient::new(&config("http://user:s3cret@127.0.0.1:11434/")).unwrap();
    assert_eq!(c.url(), "http://127.0.0.1:11434");
    assert!(!format!("{c:?}").contains("s3cret"));
    assert_eq!(redact_userinfo("http://u:p@h:1/x"), "http://h:1/x");
    assert_eq!(redact_userinfo("http://h:1/a@b"), "http://h:1/a@b");
    assert_eq!(
        c.endpoint("/api/chat"),
        "http://user:s3cret@127.0.0.1:11434/api/chat"
    );
    let c = OllamaClient::new(&config("https://gpu.example/ollama/")).unwrap();
    assert_eq!(
        c.endpoint("/api/tags"),
        "https://gpu.example/ollama/api/tags"
    );
    for bad in ["127.0.0.1:11434", "ftp://x", "not a url"] {
        let e = OllamaClient::new(&config(bad)).unwrap_err();
        assert!(matches!(e, LlmError::Connect { .. }), "{bad}: {e}");
    }
}

#[test]
fn rendered_tools_follow_the_tool_list() {
    let client = OllamaClient::new(&OllamaConfig::default()).unwrap();
    let spec = |name: &str| ToolSpec {
        name: name.into(),
        description: format!("does {name}"),
        parameters: serde_json::json!({"type": "object"}).into(),
    };
    let render = |tools: &[ToolSpec]| {
        client
            .rendered_tools(tools)
            .unwrap()
            .map(|j| j.get().to_string())
    };
    let fresh = |tools: &[ToolSpec]| {
        super::super::wire::tools_json(tools)
            .unwrap()
            .map(|j| j.get().to_string())
    };
    let a = vec![spec("kv__get"), spec("kv__set")];
    let mut b = a.clone();
    b[1].parameters =
        serde_json::json!({"type": "object", "properties": {"k": {"type": "string"}}}).into();
    assert_eq!(render(&a), fresh(&a));
    assert_eq!(render(&a), fresh(&a), "the kept rendering");
    assert_eq!(render(&b), fresh(&b), "a changed schema is rendered again");
    assert_eq!(render(&a[..1]), fresh(&a[..1]), "a shorter list");
    assert_eq!(render(&[]), None, "no tools: the field is left out");
    assert_eq!(render(&a), fresh(&a));
}
