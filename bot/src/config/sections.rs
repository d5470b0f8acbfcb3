//! The sections of the configuration file other than `[mcp]`, with their defaults.

use serde::{Deserialize, Deserializer, Serialize};

use super::mcp::McpConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    pub ollama: OllamaConfig,
    pub chat: ChatConfig,
    pub store: StoreConfig,
    pub mcp: McpConfig,
    pub discord: DiscordConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaConfig {
    /// Base URL of the Ollama server.
    pub url: String,
    /// Default model.
    pub model: String,
    /// Models users may switch to; empty means any model the server has.
    pub models: Vec<String>,
    /// Whole-request timeout, streaming included.
    pub request_timeout_secs: u64,
    /// Retries after the first attempt (connect errors, 429 and 5xx before the first byte).
    pub max_retries: u32,
    /// Ask models for their thinking (`think: true`); off by default to save tokens.
    pub think: bool,
    /// How long Ollama keeps the model loaded after a request (`keep_alive`), e.g. "5m".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<String>,
    /// Passed through to Ollama as `options` (num_ctx, temperature, ...).
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        let mut options = serde_json::Map::new();
        options.insert("num_ctx".into(), 8192.into());
        Self {
            url: "http://127.0.0.1:11434".into(),
            model: "llama3.2".into(),
            models: Vec::new(),
            request_timeout_secs: 300,
            max_retries: 3,
            think: false,
            keep_alive: None,
            options,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    pub system_prompt: String,
    /// Model → tools → model rounds in one turn before the engine stops and says so.
    pub max_tool_rounds: u32,
    /// Prompt tokens kept for history (system prompt and the current turn always kept).
    pub history_token_budget: u32,
    /// Tool results are cut to this many characters, with a note saying so.
    pub max_tool_result_chars: usize,
    /// Tool results of earlier turns are shortened to this many characters first when trimming.
    pub old_tool_result_chars: usize,
    /// Tool results of this many latest earlier turns stay in full (1: the last turn's); older
    /// ones are always shortened to `old_tool_result_chars`.
    pub full_tool_result_turns: usize,
    /// `all`: every tool's definition in every request. `on_demand`: the model gets
    /// `find_tools` (a one-line catalog) and the tools it has found or used in the session so
    /// far (the list only grows). `auto`: on demand when all definitions would take more than
    /// `tool_context_share` of the model's context window; decided once per session, so the
    /// tool list never changes within one.
    pub tool_loading: ToolLoading,
    /// Share of the context window above which `auto` loads tools on demand.
    pub tool_context_share: f64,
}

/// How tool definitions reach the model; see [`ChatConfig::tool_loading`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolLoading {
    #[default]
    Auto,
    All,
    OnDemand,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            system_prompt: "You are a helpful assistant.".into(),
            max_tool_rounds: 8,
            history_token_budget: 6000,
            max_tool_result_chars: 16_000,
            old_tool_result_chars: 400,
            full_tool_result_turns: 1,
            tool_loading: ToolLoading::Auto,
            tool_context_share: 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file; ":memory:" keeps nothing across restarts.
    pub path: String,
    /// Messages older than this many days are deleted (in the background); absent: kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
    /// Only this many latest turns of each session are kept; absent: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns_per_session: Option<u32>,
    /// Which session a bot message on Discord belongs to is kept this many days (a reply to an
    /// older message starts afresh).
    pub reply_link_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "ollama-mcp.db".into(),
            max_age_days: None,
            max_turns_per_session: None,
            reply_link_days: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// Discord REST base; anything Discord-compatible (a REST proxy, a test double).
    pub api_base: String,
    pub command_prefix: String,
    pub triggers: Vec<String>,
    pub respond_to_mentions: bool,
    pub allow_dms: bool,
    pub show_tool_calls: bool,
    /// Say so when a user is refused (otherwise stay silent).
    pub reply_when_refused: bool,
    /// Seconds a tool approval waits before it counts as denied.
    pub approval_timeout_secs: u64,
    /// Messages waiting for the model, across all guilds; more are refused.
    pub max_queue: usize,
    pub access: AccessConfig,
    pub rate_limit: RateLimitConfig,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            api_base: "https://discord.com".into(),
            command_prefix: "!".into(),
            triggers: Vec::new(),
            respond_to_mentions: true,
            allow_dms: false,
            show_tool_calls: true,
            reply_when_refused: true,
            approval_timeout_secs: 60,
            max_queue: 256,
            access: AccessConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    #[serde(deserialize_with = "ids")]
    pub allowed_guilds: Vec<u64>,
    #[serde(deserialize_with = "ids")]
    pub allowed_channels: Vec<u64>,
    #[serde(deserialize_with = "ids")]
    pub allowed_roles: Vec<u64>,
    #[serde(deserialize_with = "ids")]
    pub allowed_users: Vec<u64>,
    #[serde(deserialize_with = "ids")]
    pub denied_users: Vec<u64>,
    #[serde(deserialize_with = "ids")]
    pub admin_users: Vec<u64>,
    #[serde(deserialize_with = "ids")]
    pub admin_roles: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub messages: u32,
    pub per_seconds: u64,
    pub max_concurrent_per_guild: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            messages: 5,
            per_seconds: 60,
            max_concurrent_per_guild: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the /metrics, /healthz and /readyz server of `run`; empty = off.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9090".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,ollama_mcp_bot=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// The log line format on stderr (`text` or `json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Ids may be written as TOML integers or strings (Discord ids overflow JSON numbers elsewhere).
fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Num(u64),
        Str(String),
    }
    Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(|id| match id {
            Id::Num(n) => Ok(n),
            Id::Str(s) => s.trim().parse::<u64>().map_err(|_| {
                serde::de::Error::custom(format!("`{s}` is not a Discord id (digits only)"))
            }),
        })
        .collect()
}
