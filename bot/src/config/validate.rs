//! Checks across keys that serde cannot express: ranges, references between keys, unique names.

use super::ollama_options::{check_go_duration, check_option};
use super::{BotConfig, ConfigError, McpTransport};

impl BotConfig {
    /// Checks what serde cannot: ranges, exactly-one fields, unique names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: key.into(),
            problem,
        };
        http_url(&self.ollama.url)
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
        for (name, value) in &self.ollama.options {
            check_option(name, value).map_err(|p| invalid(&format!("ollama.options.{name}"), p))?;
        }
        if let Some(keep_alive) = &self.ollama.keep_alive {
            check_go_duration(keep_alive).map_err(|e| {
                invalid(
                    "ollama.keep_alive",
                    format!("{e}: Ollama would refuse every request; use a Go duration such as \"5m\", \"1h\", \"0\" (unload at once) or \"-1m\" (keep loaded)"),
                )
            })?;
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
        // A child must not get a secret by naming it: the token, or another server's header.
        let secrets: Vec<&str> = super::BOT_SECRETS
            .iter()
            .copied()
            .chain(self.mcp.servers.iter().flat_map(|s| match &s.transport {
                McpTransport::Http(h) => h.headers_env.values().map(String::as_str).collect(),
                McpTransport::Stdio(_) => Vec::new(),
            }))
            .collect();
        for (i, s) in self.mcp.servers.iter().enumerate() {
            if let McpTransport::Stdio(st) = &s.transport
                && let Some(name) = st
                    .env_inherit
                    .iter()
                    .find(|n| secrets.contains(&n.as_str()))
            {
                return Err(invalid(
                    &format!("mcp.servers[{i}].env_inherit"),
                    format!(
                        "`{name}` holds a secret of the bot (the Discord token or a header value) and is never passed to a server; remove it"
                    ),
                ));
            }
        }
        for (key, value) in [
            ("store.max_age_days", self.store.max_age_days),
            (
                "store.max_turns_per_session",
                self.store.max_turns_per_session,
            ),
            ("store.reply_link_days", Some(self.store.reply_link_days)),
        ] {
            if value == Some(0) {
                return Err(invalid(
                    key,
                    "must be at least 1 (leave max_age_days / max_turns_per_session out to keep everything)".into(),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.mcp.servers.iter().enumerate() {
            if !seen.insert(s.name.as_str()) {
                return Err(invalid(
                    &format!("mcp.servers[{i}].name"),
                    format!("`{}` is used by two servers; names must be unique", s.name),
                ));
            }
        }
        if self.discord.command_prefix.is_empty() {
            return Err(invalid(
                "discord.command_prefix",
                "must not be empty".into(),
            ));
        }
        http_url(&self.discord.api_base).map_err(|p| {
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
        Ok(())
    }
}

/// An `http://` or `https://` URL with a host.
pub(super) fn http_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| "is not an http:// or https:// URL".to_string())?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host".into());
    }
    Ok(())
}
