//! The bot's configuration: built-in defaults, then a TOML file, then `OLLAMA_MCP__SECTION__KEY`
//! environment variables (and `OLLAMA_HOST`, Ollama's own variable, for the Ollama URL).
//!
//! Secrets never come from here: the Discord token comes from `DISCORD_TOKEN` or the file named
//! by `DISCORD_TOKEN_FILE`, and header values of remote MCP servers from environment variables
//! named in `headers_env`. A stdio server's `env` may still carry a token (the Claude Desktop
//! format usually does), so whatever shows a configuration shows it [`BotConfig::to_toml_redacted`].
//! The operator renders this type into a ConfigMap, so it depends on nothing heavy.

mod load;
mod mcp;
mod ollama_host;
mod ollama_options;
#[cfg(test)]
mod proptests;
mod sections;
#[cfg(test)]
mod tests;
mod validate;

use std::path::PathBuf;

pub use load::config_path;
pub use mcp::{
    BOT_SECRETS, HttpServer, McpConfig, McpServer, McpServerConfig, McpTransport, StdioServer,
    ToolFilterConfig, servers_from_json, servers_from_json_file,
};
pub use ollama_host::parse_ollama_host;
pub use ollama_options::{check_go_duration, check_option};
pub use sections::*;

/// Environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "OLLAMA_MCP_CONFIG";
/// Prefix of the environment variables that override single keys (`OLLAMA_MCP__CHAT__MAX_TOOL_ROUNDS=4`).
pub const ENV_PREFIX: &str = "OLLAMA_MCP__";

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

impl BotConfig {
    /// The configuration as TOML, exactly (the operator's ConfigMap; tests' config files).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not render: {e}\n"))
    }

    /// The configuration as TOML for a person to read: every value of a server's `env` and
    /// `headers` is shown as `<set, N chars>`, whatever file it came from.
    pub fn to_toml_redacted(&self) -> String {
        let redact = |v: &mut String| *v = format!("<set, {} chars>", v.chars().count());
        let mut shown = self.clone();
        for server in &mut shown.mcp.servers {
            match &mut server.transport {
                McpTransport::Stdio(s) => s.env.values_mut().for_each(redact),
                McpTransport::Http(h) => h.headers.values_mut().for_each(redact),
            }
        }
        shown.to_toml()
    }
}
