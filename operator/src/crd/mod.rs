//! The `BotDeployment` custom resource (`ollama-mcp.io/v1alpha1`, short name `bd`).
//!
//! These types are the source of truth: the CRD in `crds/` is generated from them
//! (`ollama-mcp-operator crd`), and every doc comment below becomes a field description that
//! `kubectl explain botdeployment.spec...` shows.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::mcp::*;
pub use self::shared::SecretKeyRef;
use self::shared::{optional_enum, preserve_unknown_object};
pub use self::status::*;

mod mcp;
mod shared;
mod status;

/// API group of every resource the operator defines.
pub const GROUP: &str = "ollama-mcp.io";

/// A Discord bot that chats through Ollama models and calls tools on MCP servers.
///
/// The operator keeps, for each BotDeployment, a bot pod whose MCP servers run as sidecars, the
/// bot's configuration in a ConfigMap, and (when asked) a managed Ollama with its models pulled.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ollama-mcp.io",
    version = "v1alpha1",
    kind = "BotDeployment",
    doc = "A Discord bot that chats through Ollama models and calls tools on MCP servers; the operator runs it with its MCP servers as sidecars.",
    namespaced,
    shortname = "bd",
    category = "ollama-mcp",
    status = "BotDeploymentStatus",
    derive = "PartialEq",
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].reason", name = "Reason", type_ = "string"),
    printcolumn(json_path = ".spec.model.name", name = "Model", type_ = "string"),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date"),
    validation = Rule::new("size(self.metadata.name) <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be at most 40 characters of lower-case letters, digits and '-', starting with a letter (it names the bot's Deployment, Services and labels)")
)]
#[serde(rename_all = "camelCase")]
pub struct BotDeploymentSpec {
    /// How the bot connects to Discord and whom it answers.
    pub discord: DiscordSpec,
    /// The model the bot talks through, its system prompt and options.
    pub model: ModelSpec,
    /// Where the Ollama server is: give exactly one of `url` (an Ollama you run) or `managed`
    /// (the operator runs one for this bot).
    pub ollama: OllamaSpec,
    /// MCP servers whose tools the model may call. Each is a preset, a container image (run as a
    /// sidecar in the bot's pod), or the URL of a remote streamable-HTTP server. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.name == x.name))").message("mcpServers names must be unique"))]
    pub mcp_servers: Vec<McpServerSpec>,
    /// A PersistentVolumeClaim `<name>-data` for the bot's SQLite store (conversations, triggers,
    /// per-guild settings). Without it the store lives in an emptyDir and is lost with the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceSpec>,
    /// The bot's container image; default: the operator's `--bot-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Pull policy of the bot's image (`Always`, `IfNotPresent`, `Never`); default: Kubernetes'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = optional_enum)]
    pub image_pull_policy: Option<PullPolicy>,
    /// The bot container's resources and where its pod runs.
    #[serde(flatten)]
    pub placement: PodPlacement,
    /// Extra annotations on the bot's pod (e.g. for a service mesh or log shipper).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// How the bot's metrics are collected.
    #[serde(default, skip_serializing_if = "MetricsSpec::is_default")]
    pub metrics: MetricsSpec,
}

/// Discord connection and access rules.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscordSpec {
    /// The Secret key holding the bot token. It is mounted into the pod as a file, so a token
    /// rotated in the Secret is picked up without a restart. The operator never reads it.
    pub token_secret_ref: SecretKeyRef,
    /// Discord API base URL; change it only for a Discord-compatible proxy. Default
    /// `https://discord.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^https?://[^/\s]+.*$"))]
    pub api_base: Option<String>,
    /// Prefix of text commands (`!chat`, `!model`, ...). Default `!`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    pub command_prefix: Option<String>,
    /// Words that make the bot answer a message without a mention, e.g. `hey helper`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
    /// Answer when the bot is @mentioned. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_to_mentions: Option<bool>,
    /// Answer direct messages. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_dms: Option<bool>,
    /// Show tool calls (name and short arguments) in replies. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_tool_calls: Option<bool>,
    /// Seconds a tool approval (buttons on the reply) waits before it counts as denied. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 3600))]
    pub approval_timeout_seconds: Option<u32>,
    /// Who may talk to the bot and who administers it. Discord ids are given as strings.
    #[serde(default, skip_serializing_if = "AccessSpec::is_empty")]
    pub access: AccessSpec,
    /// Per-user message rate limit and per-guild concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

/// Discord ids (as strings of digits) allowed or denied. Empty lists mean "no restriction".
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// Guilds (servers) the bot answers in; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_guilds: Vec<DiscordId>,
    /// Channels the bot answers in; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_channels: Vec<DiscordId>,
    /// Roles whose members may talk to the bot; empty = everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_roles: Vec<DiscordId>,
    /// Users who may talk to the bot; empty = everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<DiscordId>,
    /// Users the bot never answers (wins over every allow list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_users: Vec<DiscordId>,
    /// Users who may run admin commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<DiscordId>,
    /// Roles whose members may run admin commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_roles: Vec<DiscordId>,
}

impl AccessSpec {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A Discord snowflake id written as a string of digits (JSON numbers lose precision above 2^53).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct DiscordId(#[schemars(pattern(r"^[0-9]{1,20}$"))] pub String);

/// Per-user rate limit and per-guild concurrency.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Messages one user may send per `perSeconds`. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub messages: Option<u32>,
    /// The window of `messages`, in seconds. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub per_seconds: Option<u32>,
    /// Model requests running at once per guild; more wait in the queue. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_concurrent_per_guild: Option<u32>,
}

/// The model and how it is prompted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// The default model, as Ollama names it (e.g. `llama3.2`, `qwen3:8b`). It must support tools.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Models users may switch to with `!model`; the default model is always allowed.
    /// Empty = only the default model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed: Vec<String>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Ollama `options` passed as they are (`num_ctx`, `temperature`, `top_p`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
    /// Model → tools → model rounds in one turn before the bot stops and says so. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_tool_rounds: Option<u32>,
    /// Prompt tokens kept for the conversation history. Default 6000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 1048576))]
    pub history_token_budget: Option<u32>,
    /// Ask the model for its thinking (models with the `thinking` capability). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
    /// How long Ollama keeps the model loaded after a request, e.g. `5m`, `1h`, `-1` (forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub keep_alive: Option<String>,
    /// Seconds one model request may take, streaming included. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub request_timeout_seconds: Option<u32>,
}

/// Where the Ollama server is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.url) != has(self.managed)").message("set exactly one of ollama.url (an Ollama you run) or ollama.managed (the operator runs one)"))]
pub struct OllamaSpec {
    /// Base URL of an Ollama server you run, e.g. `http://ollama.ai.svc:11434`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^https?://[^/\s]+.*$"))]
    pub url: Option<String>,
    /// An Ollama Deployment, Service and model volume that the operator runs for this bot
    /// (`<name>-ollama`), with the models pulled before the bot is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedOllamaSpec>,
}

/// An Ollama run by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedOllamaSpec {
    /// Ollama image; default the operator's pinned `ollama/ollama` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Models pulled before the bot is Ready; default `model.name` plus `model.allowed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub models: Vec<String>,
    /// The volume that holds the models (`<name>-ollama` PVC). Without it models live in an
    /// emptyDir and are pulled again when the pod moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// The Ollama container's resources (e.g. `limits: {nvidia.com/gpu: 1}`) and where its pod
    /// runs (e.g. GPU nodes).
    #[serde(flatten)]
    pub placement: PodPlacement,
    /// RuntimeClass of the Ollama pod, e.g. `nvidia`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub runtime_class_name: Option<String>,
    /// Extra environment of the Ollama container (`OLLAMA_KEEP_ALIVE`, `OLLAMA_NUM_PARALLEL`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// A workload's container resources and where its pod may run (the same four fields on the bot
/// and on a managed Ollama).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodPlacement {
    /// CPU, memory (and e.g. `nvidia.com/gpu`) of the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pod must run on (e.g. GPU nodes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pod (e.g. for tainted GPU nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// A PersistentVolumeClaim's size and class.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, e.g. `50Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 32),
        pattern(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
    )]
    pub size: Option<String>,
    /// StorageClass; empty string = no class (a pre-bound volume); absent = the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// The bot's own store volume.
pub type PersistenceSpec = StorageSpec;

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Metrics collection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Create a Prometheus-operator ServiceMonitor `<name>` for the bot's metrics Service (only
    /// when the ServiceMonitor CRD is installed; otherwise the status says so).
    #[serde(default)]
    pub service_monitor: bool,
    /// Scrape interval of the ServiceMonitor, e.g. `30s`. Default: Prometheus'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), pattern(r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,
}

impl MetricsSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}
