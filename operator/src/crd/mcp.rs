//! The `spec.mcp.servers` part of the resource: how each MCP server runs, what it may reach and
//! which of its tools the bot offers.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{SecretKeyRef, optional_enum};

/// One MCP server: a `preset`, a container `image` (a sidecar in the bot's pod), or a remote
/// `url` (no sidecar).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.url) != (has(self.preset) || has(self.image))").message("give exactly one of preset or image (a sidecar) or url (a remote server)"))]
#[x_kube(validation = Rule::new("!has(self.headers) || has(self.url)").message("headers apply only to remote servers (url)"))]
pub struct McpServerSpec {
    /// Name of the server: its tools are offered to the model as `<name>__<tool>` and its sidecar
    /// container is `mcp-<name>`. Lower-case letters, digits and '-'.
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// A ready-made server: image, command, environment and network needs come from the
    /// operator's preset table (see the README). `image`, `args`, `env` and `resources` refine it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = optional_enum)]
    pub preset: Option<Preset>,
    /// Container image of the server (for a preset: replaces the preset's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Command of the server (the image's entrypoint when empty). Not allowed with a preset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments of the server (for a preset: appended to the preset's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the server; use `valueFrom.secretKeyRef` for secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// `stdio`: the server speaks MCP on stdin/stdout and the operator wraps it in the bot's
    /// bridge (default). `http`: it serves streamable HTTP itself on `port` and `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = optional_enum)]
    pub transport: Option<Transport>,
    /// Port the server listens on (`http` transport; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Path of the MCP endpoint (`http` transport). Default `/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern(r"^/.*$"))]
    pub path: Option<String>,
    /// URL of a remote streamable-HTTP MCP server; no sidecar runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^https?://[^/\s]+.*$"))]
    pub url: Option<String>,
    /// HTTP headers sent to a remote server; secret values come from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSpec>,
    /// CPU and memory of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Which tools the model sees and which need a person's approval.
    #[serde(default, skip_serializing_if = "ToolFilterSpec::is_empty")]
    pub tools: ToolFilterSpec,
    /// Network destinations the server needs beyond the preset's (NetworkPolicy egress).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressSpec>,
    /// Seconds one tool call may take. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub call_timeout_seconds: Option<u32>,
    /// Seconds the bot waits for the server to start and list its tools. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub startup_timeout_seconds: Option<u32>,
}

/// The MCP servers the operator knows how to run.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    Memory,
    Fetch,
    Puppeteer,
    SequentialThinking,
    AwsDocumentation,
}

/// How the bot talks to a sidecar.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Stdio,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
        }
    }
}

/// An HTTP header for a remote MCP server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("give exactly one of value or valueFrom"))]
pub struct HeaderSpec {
    /// Header name, e.g. `Authorization`.
    #[schemars(length(min = 1, max = 128), pattern(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"))]
    pub name: String,
    /// A plain (not secret) value. It is written into the bot's ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A secret value: it reaches the bot as an environment variable from the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderValueSource>,
}

/// Where a secret header value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueSource {
    /// A key of a Secret in the BotDeployment's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// Tool filters of one server (tool names as the server gives them).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolFilterSpec {
    /// Only these tools; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Never these tools (wins over allow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// These tools run only after a person approves the call with a button in Discord.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_approval: Vec<String>,
}

impl ToolFilterSpec {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A network destination an MCP server needs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// TCP port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Destination network in CIDR notation; default anywhere (`0.0.0.0/0` and `::/0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub cidr: Option<String>,
}
