//! The tool vocabulary the model side (`llm`), the tool side (`mcp`) and the engine share: a
//! tool as offered to the model, model-facing namespaced names, and how one call ended. It
//! depends on nothing else in the crate, so `llm` and `mcp` are peers that never import each other.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A tool offered to the model: rendered as `{"type": "function", "function": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema). Shared: the tool list is copied into
    /// every turn and request, and deep copies of the schemas were most of a turn's cost.
    pub parameters: std::sync::Arc<serde_json::Value>,
}

/// Separates server and tool in the names the model sees: `memory__create_entities`.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// The model-facing name of `tool` on `server`.
pub fn namespaced(server: &str, tool: &str) -> String {
    format!("{server}{NAMESPACE_SEPARATOR}{tool}")
}

/// Splits a model-facing name into (server, tool); `None` if it has no separator.
pub fn split_namespaced(name: &str) -> Option<(&str, &str)> {
    name.split_once(NAMESPACE_SEPARATOR)
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

/// How one tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// The server ran the tool and reported success.
    Ok,
    /// The server ran the tool and reported an error (`isError`).
    ToolError,
    /// No such tool (or it is filtered out): the model gets the list of real names.
    UnknownTool,
    /// The arguments do not match the tool's schema: the model gets the validation error.
    InvalidArguments,
    /// The call took longer than the server's `call_timeout_secs`.
    Timeout,
    /// The server is down, crashed mid-call, or failed to start.
    ServerUnavailable,
    /// A person refused the call (approval), or policy forbids it.
    Denied,
}

impl OutcomeKind {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::ToolError => "tool_error",
            OutcomeKind::UnknownTool => "unknown_tool",
            OutcomeKind::InvalidArguments => "invalid_arguments",
            OutcomeKind::Timeout => "timeout",
            OutcomeKind::ServerUnavailable => "server_unavailable",
            OutcomeKind::Denied => "denied",
        }
    }
}

/// The result of one tool call, ready to go back to the model as a `tool` message.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub server: String,
    pub tool: String,
    /// Text for the model: the tool's content (text parts joined, other parts described),
    /// truncated with a note when huge; or an error message that says what went wrong.
    pub content: String,
    pub kind: OutcomeKind,
    pub duration: Duration,
}

impl ToolOutcome {
    pub fn is_error(&self) -> bool {
        self.kind != OutcomeKind::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = namespaced("memory", "create_entities");
        assert_eq!(n, "memory__create_entities");
        assert_eq!(split_namespaced(&n), Some(("memory", "create_entities")));
        // A tool whose own name holds "__" keeps it: only the first separator splits.
        assert_eq!(split_namespaced("aws__get__doc"), Some(("aws", "get__doc")));
        assert_eq!(split_namespaced("plain"), None);
        assert_eq!(split_namespaced("__x"), None);
    }
}
