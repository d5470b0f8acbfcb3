//! The resource's status: written by the operator only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the operator observed, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BotDeploymentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, `ModelReady` (and `MonitoringReady` when a
    /// ServiceMonitor is asked for), each with a reason and message.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Bot pods that are ready (0 or 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Each MCP server: how the bot reaches it and whether its sidecar is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServerStatus>,
    /// The Ollama base URL the bot uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama_url: Option<String>,
    /// Each model: whether Ollama has it, its capabilities, and pull progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelStatus>,
    /// Hash of the rendered configuration (also the pod annotation `ollama-mcp.io/config-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

/// One MCP server as observed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    /// Name of the server (as in `spec.mcpServers`).
    pub name: String,
    /// `stdio` (bridged sidecar), `http` (sidecar) or `remote`.
    pub transport: String,
    /// The URL the bot connects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The sidecar is running and ready, and the bot is connected to the server (as the bot's
    /// own `GET /status` reports it; remote servers without a report: true once configured).
    pub ready: bool,
    /// The tools the model may call on this server, as the bot discovered them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// What is wrong when the server is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One model as observed on the Ollama server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// The model, as Ollama names it.
    pub name: String,
    /// Ollama has the model.
    pub present: bool,
    /// Capabilities from `/api/show` (`completion`, `tools`, `thinking`, `vision`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Pull progress of a managed Ollama, e.g. `downloading 42%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<String>,
}
