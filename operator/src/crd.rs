//! The `BotDeployment` custom resource (`ollama-mcp.io/v1alpha1`, short name `bd`).
//!
//! These types are the source of truth: the CRD in `crds/` is generated from them
//! (`ollama-mcp-operator crd`), and every doc comment below becomes a field description that
//! `kubectl explain botdeployment.spec...` shows.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// A key in a Secret in the BotDeployment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
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

/// An optional enum field: schemars lists `null` among the values of an `Option<Enum>`, which
/// `kubectl` (client-side validation of a `v1 List`) refuses as `unknown object type "nil"`.
/// `nullable: true` (from the type) still says that an explicit `null` means "not set".
fn optional_enum(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
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
