//! MCP servers: the [`McpHub`] that starts them, lists and filters their tools, and calls them;
//! the tool adapter between MCP and Ollama (namespaced names, schemas, result text).

// The shared tool vocabulary, re-exported where callers have always found it.
pub use crate::tool::{
    NAMESPACE_SEPARATOR, OutcomeKind, ToolOutcome, ToolSpec, namespaced, split_namespaced,
};

mod adapter;
pub(crate) mod connection;
mod hub;
mod validate;
pub(crate) use hub::backoff as restart_backoff;
pub use hub::{HubOptions, McpHub};

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
