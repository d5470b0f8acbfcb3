//! What a failed Ollama request means: the typed error for a non-2xx answer, whether to retry it,
//! and a reqwest error in words without its URL.

use reqwest::StatusCode;

use crate::llm::LlmError;

pub(super) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The typed error for a non-2xx answer. Any 404 on a model endpoint means the model is missing
/// (Ollama's wording has changed between versions, so the text is not relied upon).
pub(super) fn status_error(status: StatusCode, message: &str, model: Option<&str>) -> LlmError {
    match model {
        Some(model) if status == StatusCode::NOT_FOUND => LlmError::ModelNotFound {
            model: model.to_string(),
        },
        Some(model)
            if status == StatusCode::BAD_REQUEST
                && message
                    .to_ascii_lowercase()
                    .contains("does not support tools") =>
        {
            LlmError::ToolsUnsupported {
                model: model.to_string(),
            }
        }
        _ if names_bad_request(message) => LlmError::Rejected {
            status: status.as_u16(),
            message: message.to_string(),
        },
        _ => LlmError::Server {
            status: status.as_u16(),
            message: message.to_string(),
        },
    }
}

/// Whether Ollama's error text says the request itself is wrong, so that sending it again can
/// only fail again. Ollama answers some of these with 500 (`option "num_ctx" must be of type
/// integer`), so the status alone cannot tell.
fn names_bad_request(message: &str) -> bool {
    const MARKS: [&str; 7] = [
        "must be of type",
        "cannot unmarshal",
        "invalid duration",
        "invalid option",
        "does not support",
        "is required",
        "unexpected eof",
    ];
    let message = message.to_ascii_lowercase();
    MARKS.iter().any(|m| message.contains(m))
}

/// The innermost cause of a reqwest error ("Connection refused (os error 111)"), never the URL.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(source) = last.source() {
        last = source;
    }
    let text = last.to_string();
    if text.is_empty() {
        "request failed".into()
    } else {
        text
    }
}
