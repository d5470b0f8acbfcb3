//! MCP servers: the [`McpHub`] that starts them, lists and filters their tools, and calls them;
//! the tool adapter between MCP and Ollama (namespaced names, schemas, result text).

use std::time::Duration;

use crate::llm::ToolSpec;

mod adapter;
pub(crate) mod connection;
mod hub;
mod validate;
pub(crate) use hub::backoff as restart_backoff;
pub use hub::{HubOptions, McpHub};

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

/// Health of one configured server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    Starting,
    Ready,
    /// Crashed; being restarted with backoff.
    Restarting {
        attempt: u32,
        reason: String,
    },
    /// Could not start (not installed, timed out, refused); the message says what to do.
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub name: String,
    /// "stdio" or "http".
    pub transport: &'static str,
    pub state: ServerState,
    /// Tool names as the server gives them (after allow/deny).
    pub tools: Vec<String>,
}

impl ServerStatus {
    /// The wire form of `GET /status`.
    pub fn report(self) -> crate::status::McpServerReport {
        use crate::status::ServerStateName as N;
        let (state, last_error) = match self.state {
            ServerState::Starting => (N::Starting, None),
            ServerState::Ready => (N::Ready, None),
            ServerState::Restarting { reason, .. } => (N::Restarting, Some(reason)),
            ServerState::Failed { reason } => (N::Failed, Some(reason)),
        };
        crate::status::McpServerReport {
            name: self.name,
            transport: self.transport.to_string(),
            state,
            last_error,
            tools: self.tools,
        }
    }
}

/// What the conversation engine needs from the tool side. [`McpHub`] is the real one.
#[async_trait::async_trait]
pub trait ToolHost: Send + Sync {
    /// Every available tool, namespaced, filtered by allow/deny, with its JSON schema.
    fn tools(&self) -> Vec<ToolSpec>;
    /// Whether a person must approve calls of this (namespaced) tool first.
    fn needs_approval(&self, name: &str) -> bool;
    /// Calls a namespaced tool. Never fails: every problem is a [`ToolOutcome`] the model reads.
    async fn call(&self, name: &str, arguments: serde_json::Value) -> ToolOutcome;
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
