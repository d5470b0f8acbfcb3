//! The wire format of the bot's `GET /status` (on its metrics port): each MCP server's
//! transport, state, last error and tool names. The operator reads it into the BotDeployment's
//! status, so it lives outside the `runtime` feature. Never carries env values, headers,
//! commands or URLs.

use serde::{Deserialize, Serialize};

/// What `GET /status` answers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotStatus {
    /// The bot is ready (what `/readyz` says).
    pub ready: bool,
    /// Every configured MCP server, in configuration order.
    pub mcp_servers: Vec<McpServerReport>,
}

/// One MCP server as the bot sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerReport {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    pub state: ServerStateName,
    /// Why the server is restarting or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The tools the model may call (after allow/deny), as the server names them.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// A server's state, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStateName {
    Starting,
    Ready,
    Restarting,
    Failed,
}
