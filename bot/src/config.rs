//! The bot's configuration: built-in defaults, then a TOML file, then `OLLAMA_MCP__SECTION__KEY`
//! environment variables (and `OLLAMA_HOST`, Ollama's own variable, for the Ollama URL).
//!
//! Secrets never live here: the Discord token comes from `DISCORD_TOKEN` or the file named by
//! `DISCORD_TOKEN_FILE`, and header values of remote MCP servers from environment variables
//! named in `headers_env`. The operator renders this type into a ConfigMap, so it must stay
//! free of anything secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// Environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "OLLAMA_MCP_CONFIG";
/// Prefix of the environment variables that override single keys (`OLLAMA_MCP__CHAT__MAX_TOOL_ROUNDS=4`).
pub const ENV_PREFIX: &str = "OLLAMA_MCP__";

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
    /// `find_tools` (a one-line catalog) and the tools it has found or used in the turns still
    /// in its context. `auto`: on demand when all definitions would take more than
    /// `tool_context_share` of the context window (decided once per session, so the tool list
    /// never changes within one).
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "ollama-mcp.db".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    pub servers: Vec<McpServerConfig>,
    /// A Claude-Desktop-style `{"mcpServers": {...}}` JSON file whose servers are added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers_json: Option<PathBuf>,
}

/// One MCP server: either a stdio child process (`command`) or a streamable HTTP endpoint (`url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Plain (non-secret) HTTP headers for `url` servers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Header name → environment variable holding its (secret) value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_env: BTreeMap<String, String>,
    pub tools: ToolFilterConfig,
    pub call_timeout_secs: u64,
    pub startup_timeout_secs: u64,
}

/// How the bot reaches an MCP server, derived from [`McpServerConfig`].
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport<'a> {
    Stdio {
        command: &'a str,
        args: &'a [String],
        env: &'a BTreeMap<String, String>,
        cwd: Option<&'a Path>,
    },
    Http {
        url: &'a str,
    },
}

impl McpServerConfig {
    pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 60;
    pub const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 30;

    pub fn transport(&self) -> McpTransport<'_> {
        match (&self.command, &self.url) {
            (Some(command), _) => McpTransport::Stdio {
                command,
                args: &self.args,
                env: &self.env,
                cwd: self.cwd.as_deref(),
            },
            (None, Some(url)) => McpTransport::Http { url },
            // validate() rejects this; treat as an HTTP server with no URL so nothing panics.
            (None, None) => McpTransport::Http { url: "" },
        }
    }

    pub fn call_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(if self.call_timeout_secs == 0 {
            Self::DEFAULT_CALL_TIMEOUT_SECS
        } else {
            self.call_timeout_secs
        })
    }

    pub fn startup_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(if self.startup_timeout_secs == 0 {
            Self::DEFAULT_STARTUP_TIMEOUT_SECS
        } else {
            self.startup_timeout_secs
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ToolFilterConfig {
    /// Only these tools (names as the server gives them); empty = all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Never these tools; deny wins over allow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// These tools run only after a person approves the call (Discord buttons).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require_approval: Vec<String>,
}

impl ToolFilterConfig {
    pub fn allows(&self, tool: &str) -> bool {
        !self.deny.iter().any(|d| d == tool)
            && (self.allow.is_empty() || self.allow.iter().any(|a| a == tool))
    }
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.require_approval.iter().any(|a| a == tool)
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
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info,ollama_mcp_bot=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
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

/// A configuration problem, phrased for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
    #[error("reading MCP servers from {path}: {problem}")]
    ServersJson { path: PathBuf, problem: String },
}

/// Where the configuration file comes from: `--config`, else `$OLLAMA_MCP_CONFIG`, else none.
pub fn config_path(cli: Option<&Path>) -> Option<PathBuf> {
    cli.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

impl BotConfig {
    /// Loads defaults → file → environment, then the `servers_json` file, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`BotConfig::load`] with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut fig = Figment::from(Serialized::defaults(BotConfig::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "{}: no such file (give an existing TOML file with --config or {CONFIG_ENV})",
                    path.display()
                )));
            }
            // Parse once on our own first: figment reports a bad file without its line.
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Load(format!("{}: {e}", path.display())))?;
            if let Err(e) = text.parse::<toml::Table>() {
                return Err(ConfigError::Load(format!(
                    "{}: invalid TOML: {}",
                    path.display(),
                    e.to_string().trim()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        for (name, value) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
            fig = fig.merge(EnvVar::new(name, value));
        }
        let mut config: BotConfig = fig.extract().map_err(|e| {
            ConfigError::Load(
                e.into_iter()
                    .map(|e| describe_figment_error(&e, file))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        if let Some((_, host)) = env
            .iter()
            .find(|(k, v)| k == "OLLAMA_HOST" && !v.is_empty())
        {
            // OLLAMA_MCP__OLLAMA__URL wins over Ollama's own variable.
            if !env
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("OLLAMA_MCP__OLLAMA__URL"))
            {
                config.ollama.url = normalize_ollama_host(host);
            }
        }
        if let Some(json) = config.mcp.servers_json.clone() {
            let base = file.and_then(Path::parent).unwrap_or(Path::new("."));
            let path = if json.is_absolute() {
                json
            } else {
                base.join(json)
            };
            config.mcp.servers.extend(servers_from_json_file(&path)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges, exactly-one fields, unique names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: key.into(),
            problem,
        };
        reqwest_like_url(&self.ollama.url)
            .map_err(|p| invalid("ollama.url", format!("`{}` {p}", self.ollama.url)))?;
        if self.ollama.model.trim().is_empty() {
            return Err(invalid(
                "ollama.model",
                "must name a model, e.g. \"llama3.2\"".into(),
            ));
        }
        if !self.ollama.models.is_empty() && !self.ollama.models.contains(&self.ollama.model) {
            return Err(invalid(
                "ollama.models",
                format!(
                    "must include the default model `{}` (or be empty to allow any)",
                    self.ollama.model
                ),
            ));
        }
        if self.ollama.request_timeout_secs == 0 {
            return Err(invalid(
                "ollama.request_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if self.chat.max_tool_rounds == 0 {
            return Err(invalid("chat.max_tool_rounds", "must be at least 1".into()));
        }
        if self.chat.history_token_budget < 256 {
            return Err(invalid(
                "chat.history_token_budget",
                "must be at least 256 tokens".into(),
            ));
        }
        if !(self.chat.tool_context_share > 0.0 && self.chat.tool_context_share <= 1.0) {
            return Err(invalid(
                "chat.tool_context_share",
                format!(
                    "{} is not a share of the context: use a number above 0 and at most 1 (e.g. 0.25)",
                    self.chat.tool_context_share
                ),
            ));
        }
        if self.store.path.trim().is_empty() {
            return Err(invalid(
                "store.path",
                "must be a file path or \":memory:\"".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.mcp.servers.iter().enumerate() {
            let key = |field: &str| format!("mcp.servers[{i}].{field}");
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    &key("name"),
                    format!("`{}` must be non-empty letters, digits, '-' or '_'", s.name),
                ));
            }
            if s.name.contains("__") {
                return Err(invalid(
                    &key("name"),
                    format!(
                        "`{}` must not contain \"__\" (it separates server and tool)",
                        s.name
                    ),
                ));
            }
            if !seen.insert(s.name.clone()) {
                return Err(invalid(
                    &key("name"),
                    format!("`{}` is used by two servers; names must be unique", s.name),
                ));
            }
            match (&s.command, &s.url) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &key("url"),
                        format!(
                            "server `{}` has both `command` and `url`; give exactly one",
                            s.name
                        ),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        &key("command"),
                        format!(
                            "server `{}` needs `command` (stdio) or `url` (streamable HTTP)",
                            s.name
                        ),
                    ));
                }
                (Some(c), None) if c.trim().is_empty() => {
                    return Err(invalid(&key("command"), "must not be empty".into()));
                }
                (None, Some(u)) => {
                    reqwest_like_url(u).map_err(|p| invalid(&key("url"), format!("`{u}` {p}")))?;
                }
                _ => {}
            }
            if s.command.is_some() && (!s.headers.is_empty() || !s.headers_env.is_empty()) {
                return Err(invalid(
                    &key("headers"),
                    "headers apply only to `url` servers".into(),
                ));
            }
        }
        if self.discord.command_prefix.is_empty() {
            return Err(invalid(
                "discord.command_prefix",
                "must not be empty".into(),
            ));
        }
        reqwest_like_url(&self.discord.api_base).map_err(|p| {
            invalid(
                "discord.api_base",
                format!("`{}` {p}", self.discord.api_base),
            )
        })?;
        if self.discord.rate_limit.messages == 0 || self.discord.rate_limit.per_seconds == 0 {
            return Err(invalid(
                "discord.rate_limit",
                "messages and per_seconds must be at least 1".into(),
            ));
        }
        if self.discord.rate_limit.max_concurrent_per_guild == 0 {
            return Err(invalid(
                "discord.rate_limit.max_concurrent_per_guild",
                "must be at least 1".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid(
                "log.format",
                format!("`{}` is not `text` or `json`", self.log.format),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML (it holds no secrets, so nothing needs redacting).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not render: {e}\n"))
    }
}

/// `OLLAMA_HOST` may be `host`, `host:port` or a URL, as Ollama itself accepts.
pub fn normalize_ollama_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        return host.to_string();
    }
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:11434")
    };
    let with_port = with_port.replace("0.0.0.0", "127.0.0.1");
    format!("http://{with_port}")
}

fn reqwest_like_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| "is not an http:// or https:// URL".to_string())?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host".into());
    }
    Ok(())
}

/// One `OLLAMA_MCP__SECTION__KEY` variable as a figment provider, so that an error names it.
struct EnvVar {
    name: String,
    dict: figment::value::Dict,
}

impl EnvVar {
    fn new(name: &str, value: &str) -> Self {
        let dotted = name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        // Lenient parsing, as figment's own Env provider does: `5` is a number, `[a, b]` a list.
        let value: figment::value::Value = value
            .parse()
            .unwrap_or_else(|_| figment::value::Value::from(value.to_string()));
        Self {
            name: name.to_string(),
            dict: figment::util::nest(&dotted, value)
                .into_dict()
                .unwrap_or_default(),
        }
    }
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.name))
    }
    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.dict.clone()))
    }
}

fn describe_figment_error(e: &figment::Error, file: Option<&Path>) -> String {
    let key = if e.path.is_empty() {
        String::new()
    } else {
        format!("key `{}`: ", e.path.join("."))
    };
    let source = match &e.metadata {
        Some(m) if m.name.contains("TOML") => file
            .map(|f| format!("{}: ", f.display()))
            .unwrap_or_default(),
        Some(m) => format!("{}: ", m.name),
        None => String::new(),
    };
    format!("{source}{key}{}", e.kind)
}

/// The `{"mcpServers": {...}}` format of Claude Desktop and most MCP clients.
#[derive(Deserialize)]
struct ServersJson {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, ServerJson>,
}

#[derive(Deserialize)]
struct ServerJson {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    disabled: bool,
    // `type`, `alwaysAllow`, `autoApprove`, ... are other clients' settings: ignored on purpose.
}

pub fn servers_from_json_file(path: &Path) -> Result<Vec<McpServerConfig>, ConfigError> {
    let err = |problem: String| ConfigError::ServersJson {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    servers_from_json(&text).map_err(err)
}

pub fn servers_from_json(text: &str) -> Result<Vec<McpServerConfig>, String> {
    let parsed: ServersJson = serde_json::from_str(text).map_err(|e| {
        format!("expected {{\"mcpServers\": {{\"name\": {{\"command\": ...}}}}}}: {e}")
    })?;
    Ok(parsed
        .mcp_servers
        .into_iter()
        .filter(|(_, s)| !s.disabled)
        .map(|(name, s)| McpServerConfig {
            name,
            command: s.command,
            args: s.args,
            env: s.env,
            cwd: s.cwd,
            url: s.url,
            headers: s.headers,
            ..Default::default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn defaults_are_valid() {
        let c = BotConfig::load_from(None, Vec::new()).expect("defaults load");
        assert_eq!(c.ollama.url, "http://127.0.0.1:11434");
        assert_eq!(c.chat.max_tool_rounds, 8);
    }

    #[test]
    fn file_then_env_override() {
        let f = write(
            r#"
            [ollama]
            model = "qwen3"
            [ollama.options]
            temperature = 0.2
            [chat]
            max_tool_rounds = 3
            [[mcp.servers]]
            name = "memory"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-memory"]
            tools.deny = ["delete_entities"]
            "#,
        );
        let env = vec![
            (
                "OLLAMA_MCP__CHAT__MAX_TOOL_ROUNDS".to_string(),
                "5".to_string(),
            ),
            ("OLLAMA_HOST".to_string(), "gpu-box".to_string()),
        ];
        let c = BotConfig::load_from(Some(f.path()), env).expect("loads");
        assert_eq!(c.ollama.model, "qwen3");
        assert_eq!(c.chat.max_tool_rounds, 5);
        assert_eq!(c.ollama.url, "http://gpu-box:11434");
        assert_eq!(
            c.ollama.options.get("temperature"),
            Some(&serde_json::json!(0.2))
        );
        assert!(!c.mcp.servers[0].tools.allows("delete_entities"));
        assert!(c.mcp.servers[0].tools.allows("read_graph"));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let f = write("[chat]\nmax_tool_round = 3\n");
        let e = BotConfig::load_from(Some(f.path()), Vec::new()).expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("max_tool_round"), "{msg}");
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let f = write("[chat\nmax_tool_rounds = 3\n");
        let msg = BotConfig::load_from(Some(f.path()), Vec::new())
            .expect_err("bad toml")
            .to_string();
        assert!(
            msg.contains("invalid TOML") && msg.contains("line 1"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_names_key() {
        let f = write("[chat]\nmax_tool_rounds = \"many\"\n");
        let msg = BotConfig::load_from(Some(f.path()), Vec::new())
            .expect_err("bad type")
            .to_string();
        assert!(msg.contains("chat.max_tool_rounds"), "{msg}");
    }

    #[test]
    fn server_needs_exactly_one_transport() {
        let f = write("[[mcp.servers]]\nname = \"x\"\ncommand = \"a\"\nurl = \"http://h/mcp\"\n");
        let msg = BotConfig::load_from(Some(f.path()), Vec::new())
            .expect_err("both")
            .to_string();
        assert!(
            msg.contains("mcp.servers[0].url") && msg.contains("exactly one"),
            "{msg}"
        );
        let f = write("[[mcp.servers]]\nname = \"x\"\n");
        assert!(BotConfig::load_from(Some(f.path()), Vec::new()).is_err());
    }

    #[test]
    fn duplicate_server_names_rejected() {
        let f = write(
            "[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\n[[mcp.servers]]\nname = \"a\"\ncommand = \"y\"\n",
        );
        let msg = BotConfig::load_from(Some(f.path()), Vec::new())
            .expect_err("dup")
            .to_string();
        assert!(msg.contains("unique"), "{msg}");
    }

    #[test]
    fn ids_as_strings_or_integers() {
        let f = write("[discord.access]\nadmin_users = [123, \"456\"]\n");
        let c = BotConfig::load_from(Some(f.path()), Vec::new()).expect("ids");
        assert_eq!(c.discord.access.admin_users, vec![123, 456]);
        let f = write("[discord.access]\nadmin_users = [\"abc\"]\n");
        let msg = BotConfig::load_from(Some(f.path()), Vec::new())
            .expect_err("bad id")
            .to_string();
        assert!(msg.contains("not a Discord id"), "{msg}");
    }

    #[test]
    fn claude_desktop_json_is_accepted() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("servers.json"),
            r#"{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
                "docs": {"url": "http://127.0.0.1:8101/mcp", "type": "http"},
                "off": {"command": "x", "disabled": true}}}"#,
        )
        .expect("write");
        let cfg = dir.path().join("bot.toml");
        std::fs::write(&cfg, "[mcp]\nservers_json = \"servers.json\"\n").expect("write");
        let c = BotConfig::load_from(Some(&cfg), Vec::new()).expect("loads");
        let names: Vec<_> = c.mcp.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["docs", "fetch"]);
    }

    #[test]
    fn rendered_toml_round_trips() {
        let mut c = BotConfig::default();
        c.mcp.servers.push(McpServerConfig {
            name: "m".into(),
            command: Some("npx".into()),
            ..Default::default()
        });
        let f = write(&c.to_toml());
        assert_eq!(
            BotConfig::load_from(Some(f.path()), Vec::new()).expect("round trip"),
            c
        );
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.example.toml");
        let c =
            BotConfig::load_from(Some(&path), Vec::new()).expect("docs/config.example.toml loads");
        assert_eq!(c.mcp.servers.len(), 4);
    }

    #[test]
    fn ollama_host_forms() {
        assert_eq!(normalize_ollama_host("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(normalize_ollama_host("box:1234"), "http://box:1234");
        assert_eq!(
            normalize_ollama_host("https://x.example/"),
            "https://x.example"
        );
    }
}
