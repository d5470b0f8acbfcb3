//! `[mcp]`: the MCP servers. The file's flat form ([`McpServerConfig`], whose fields map one to
//! one onto TOML keys) is parsed once, when the configuration loads, into [`McpServer`]: a tagged
//! transport and timeouts that are never zero, so nothing downstream meets an impossible state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The bot's own secret variables: no child gets them, whatever `env_inherit` says.
pub const BOT_SECRETS: &[&str] = &["DISCORD_TOKEN", "DISCORD_TOKEN_FILE"];

/// `[mcp]` as the rest of the program sees it: every server parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(try_from = "RawMcpConfig", into = "RawMcpConfig")]
pub struct McpConfig {
    pub servers: Vec<McpServer>,
    /// A Claude-Desktop-style `{"mcpServers": {...}}` JSON file whose servers are added.
    pub servers_json: Option<PathBuf>,
}

/// `[mcp]` as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMcpConfig {
    servers: Vec<McpServerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    servers_json: Option<PathBuf>,
}

impl TryFrom<RawMcpConfig> for McpConfig {
    type Error = ConfigError;

    fn try_from(raw: RawMcpConfig) -> Result<Self, ConfigError> {
        let servers = raw
            .servers
            .into_iter()
            .enumerate()
            .map(|(i, s)| McpServer::parse(s, &format!("mcp.servers[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            servers,
            servers_json: raw.servers_json,
        })
    }
}

impl From<McpConfig> for RawMcpConfig {
    fn from(c: McpConfig) -> Self {
        Self {
            servers: c.servers.into_iter().map(McpServerConfig::from).collect(),
            servers_json: c.servers_json,
        }
    }
}

/// One MCP server as written in the file: either a stdio child process (`command`) or a
/// streamable HTTP endpoint (`url`). Parse it with [`McpServer::parse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables set for a stdio child (on top of the small allow-list it inherits).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Further variables of the bot's own environment that a stdio child inherits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_inherit: Vec<String>,
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
    /// Seconds; absent means [`McpServer::DEFAULT_CALL_TIMEOUT`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_timeout_secs: Option<u64>,
    /// Seconds; absent means [`McpServer::DEFAULT_STARTUP_TIMEOUT`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_timeout_secs: Option<u64>,
}

/// One MCP server, parsed: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    pub name: String,
    pub transport: McpTransport,
    pub tools: ToolFilterConfig,
    /// Never zero.
    pub call_timeout: Duration,
    /// Never zero.
    pub startup_timeout: Duration,
}

/// How the bot reaches an MCP server.
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    Stdio(StdioServer),
    Http(HttpServer),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StdioServer {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub env_inherit: Vec<String>,
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpServer {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub headers_env: BTreeMap<String, String>,
}

impl McpServer {
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

    /// Parses the file's form; `key` (`mcp.servers[3]`) is where the person fixes a problem.
    pub fn parse(raw: McpServerConfig, key: &str) -> Result<Self, ConfigError> {
        let invalid = |field: &str, problem: String| ConfigError::Invalid {
            key: format!("{key}.{field}"),
            problem,
        };
        let name = raw.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name",
                format!("`{name}` must be non-empty letters, digits, '-' or '_'"),
            ));
        }
        if name.contains("__") {
            return Err(invalid(
                "name",
                format!("`{name}` must not contain \"__\" (it separates server and tool)"),
            ));
        }
        let transport = match (raw.command, raw.url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "url",
                    format!("server `{name}` has both `command` and `url`; give exactly one"),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "command",
                    format!("server `{name}` needs `command` (stdio) or `url` (streamable HTTP)"),
                ));
            }
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(invalid("command", "must not be empty".into()));
                }
                if !raw.headers.is_empty() || !raw.headers_env.is_empty() {
                    return Err(invalid(
                        "headers",
                        "headers apply only to `url` servers".into(),
                    ));
                }
                for var in raw.env.keys().chain(&raw.env_inherit) {
                    if var.is_empty() || var.contains('=') || var.contains('\0') {
                        return Err(invalid(
                            "env",
                            format!("`{var}` is not an environment variable name"),
                        ));
                    }
                }
                McpTransport::Stdio(StdioServer {
                    command,
                    args: raw.args,
                    env: raw.env,
                    env_inherit: raw.env_inherit,
                    cwd: raw.cwd,
                })
            }
            (None, Some(url)) => {
                super::validate::http_url(&url)
                    .map_err(|p| invalid("url", format!("`{url}` {p}")))?;
                if !raw.args.is_empty()
                    || !raw.env.is_empty()
                    || !raw.env_inherit.is_empty()
                    || raw.cwd.is_some()
                {
                    return Err(invalid(
                        "url",
                        "`args`, `env`, `env_inherit` and `cwd` apply only to `command` servers"
                            .into(),
                    ));
                }
                McpTransport::Http(HttpServer {
                    url,
                    headers: raw.headers,
                    headers_env: raw.headers_env,
                })
            }
        };
        let secs = |field: &str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(0) => Err(invalid(
                field,
                format!(
                    "must be at least 1 second (leave it out for the default {} s)",
                    default.as_secs()
                ),
            )),
            Some(s) => Ok(Duration::from_secs(s)),
        };
        Ok(Self {
            call_timeout: secs(
                "call_timeout_secs",
                raw.call_timeout_secs,
                Self::DEFAULT_CALL_TIMEOUT,
            )?,
            startup_timeout: secs(
                "startup_timeout_secs",
                raw.startup_timeout_secs,
                Self::DEFAULT_STARTUP_TIMEOUT,
            )?,
            name,
            transport,
            tools: raw.tools,
        })
    }

    /// `"stdio"` or `"http"` (status lines, metric labels).
    pub fn kind(&self) -> &'static str {
        match self.transport {
            McpTransport::Stdio(_) => "stdio",
            McpTransport::Http(_) => "http",
        }
    }
}

impl TryFrom<McpServerConfig> for McpServer {
    type Error = ConfigError;

    fn try_from(raw: McpServerConfig) -> Result<Self, ConfigError> {
        let key = format!("MCP server `{}`", raw.name);
        Self::parse(raw, &key)
    }
}

impl From<McpServer> for McpServerConfig {
    fn from(s: McpServer) -> Self {
        let mut raw = McpServerConfig {
            name: s.name,
            tools: s.tools,
            call_timeout_secs: (s.call_timeout != McpServer::DEFAULT_CALL_TIMEOUT)
                .then_some(s.call_timeout.as_secs()),
            startup_timeout_secs: (s.startup_timeout != McpServer::DEFAULT_STARTUP_TIMEOUT)
                .then_some(s.startup_timeout.as_secs()),
            ..Default::default()
        };
        match s.transport {
            McpTransport::Stdio(st) => {
                raw.command = Some(st.command);
                raw.args = st.args;
                raw.env = st.env;
                raw.env_inherit = st.env_inherit;
                raw.cwd = st.cwd;
            }
            McpTransport::Http(h) => {
                raw.url = Some(h.url);
                raw.headers = h.headers;
                raw.headers_env = h.headers_env;
            }
        }
        raw
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
    /// These tools run only after a person approves the call (Discord buttons, a terminal prompt).
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

pub fn servers_from_json_file(path: &Path) -> Result<Vec<McpServer>, ConfigError> {
    let err = |problem: String| ConfigError::ServersJson {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    servers_from_json(&text).map_err(err)
}

pub fn servers_from_json(text: &str) -> Result<Vec<McpServer>, String> {
    let parsed: ServersJson = serde_json::from_str(text).map_err(|e| {
        format!("expected {{\"mcpServers\": {{\"name\": {{\"command\": ...}}}}}}: {e}")
    })?;
    parsed
        .mcp_servers
        .into_iter()
        .filter(|(_, s)| !s.disabled)
        .map(|(name, s)| {
            let key = format!("mcpServers.{name}");
            let raw = McpServerConfig {
                name,
                command: s.command,
                args: s.args,
                env: s.env,
                cwd: s.cwd,
                url: s.url,
                headers: s.headers,
                ..Default::default()
            };
            McpServer::parse(raw, &key).map_err(|e| e.to_string())
        })
        .collect()
}
