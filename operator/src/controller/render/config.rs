//! The bot's configuration, rendered from the spec with the bot crate's own config types, and
//! the ConfigMap that carries it. No secret ever lands here: secret header values are named by
//! environment variable (`headers_env`) and the token is a mounted file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use ollama_mcp_bot::config::{
    AccessConfig, BotConfig, LogFormat, McpServer, McpServerConfig, RateLimitConfig,
    ToolFilterConfig,
};
use sha2::{Digest, Sha256};

use super::labels::{BOT_APP, Owner};
use super::{BOT_METRICS_PORT, CONFIG_FILE, DATA_DIR, DB_FILE, McpEndpoint, RenderError};
use crate::controller::validate::parse_id;
use crate::crd::{BotDeploymentSpec, DiscordId};

/// The bot's configuration for this spec.
pub fn bot_config(
    spec: &BotDeploymentSpec,
    ollama_url: &str,
    models: &[String],
    endpoints: &[McpEndpoint],
) -> Result<BotConfig, RenderError> {
    let mut c = BotConfig::default();
    let m = &spec.model;
    c.ollama.url = ollama_url.to_string();
    c.ollama.model = m.name.clone();
    c.ollama.models = models.to_vec();
    if let Some(options) = &m.options {
        c.ollama.options = options.clone();
    }
    if let Some(t) = m.think {
        c.ollama.think = t;
    }
    c.ollama.keep_alive = m.keep_alive.clone();
    if let Some(t) = m.request_timeout_seconds {
        c.ollama.request_timeout_secs = u64::from(t);
    }
    if let Some(p) = &m.system_prompt {
        c.chat.system_prompt = p.clone();
    }
    if let Some(r) = m.max_tool_rounds {
        c.chat.max_tool_rounds = r;
    }
    if let Some(b) = m.history_token_budget {
        c.chat.history_token_budget = b;
    }
    c.store.path = format!("{DATA_DIR}/{DB_FILE}");

    let d = &spec.discord;
    if let Some(base) = &d.api_base {
        c.discord.api_base = base.trim_end_matches('/').to_string();
    }
    if let Some(p) = &d.command_prefix {
        c.discord.command_prefix = p.clone();
    }
    c.discord.triggers = d.triggers.clone();
    if let Some(v) = d.respond_to_mentions {
        c.discord.respond_to_mentions = v;
    }
    if let Some(v) = d.allow_dms {
        c.discord.allow_dms = v;
    }
    if let Some(v) = d.show_tool_calls {
        c.discord.show_tool_calls = v;
    }
    if let Some(v) = d.approval_timeout_seconds {
        c.discord.approval_timeout_secs = u64::from(v);
    }
    let a = &d.access;
    c.discord.access = AccessConfig {
        allowed_guilds: ids("allowedGuilds", &a.allowed_guilds)?,
        allowed_channels: ids("allowedChannels", &a.allowed_channels)?,
        allowed_roles: ids("allowedRoles", &a.allowed_roles)?,
        allowed_users: ids("allowedUsers", &a.allowed_users)?,
        denied_users: ids("deniedUsers", &a.denied_users)?,
        admin_users: ids("adminUsers", &a.admin_users)?,
        admin_roles: ids("adminRoles", &a.admin_roles)?,
    };
    if let Some(r) = &d.rate_limit {
        let defaults = RateLimitConfig::default();
        c.discord.rate_limit = RateLimitConfig {
            messages: r.messages.unwrap_or(defaults.messages),
            per_seconds: r.per_seconds.map_or(defaults.per_seconds, u64::from),
            max_concurrent_per_guild: r
                .max_concurrent_per_guild
                .map_or(defaults.max_concurrent_per_guild, |v| v as usize),
        };
    }

    c.mcp.servers = spec
        .mcp_servers
        .iter()
        .zip(endpoints)
        .enumerate()
        .map(|(i, (s, e))| {
            let raw = McpServerConfig {
                name: s.name.clone(),
                url: Some(e.url.clone()),
                headers: s
                    .headers
                    .iter()
                    .filter_map(|h| h.value.as_ref().map(|v| (h.name.clone(), v.clone())))
                    .collect(),
                headers_env: s
                    .headers
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.value_from.is_some())
                    .map(|(j, h)| (h.name.clone(), header_env_name(&s.name, j)))
                    .collect(),
                tools: ToolFilterConfig {
                    allow: s.tools.allow.clone(),
                    deny: s.tools.deny.clone(),
                    require_approval: s.tools.require_approval.clone(),
                },
                call_timeout_secs: s.call_timeout_seconds.map(u64::from),
                startup_timeout_secs: s.startup_timeout_seconds.map(u64::from),
                ..Default::default()
            };
            McpServer::parse(raw, &format!("spec.mcpServers[{i}]"))
                .map_err(|e| RenderError::BotConfig(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    c.metrics.listen = format!("0.0.0.0:{BOT_METRICS_PORT}");
    // Cluster logs are collected and parsed: one JSON object per line.
    c.log.format = LogFormat::Json;
    c.validate()
        .map_err(|e| RenderError::BotConfig(e.to_string()))?;
    Ok(c)
}

/// The environment variable that carries header `index` of server `server` (from its Secret).
pub fn header_env_name(server: &str, index: usize) -> String {
    format!(
        "OLLAMA_MCP_HEADER_{}_{index}",
        server.to_ascii_uppercase().replace('-', "_")
    )
}

fn ids(field: &str, ids: &[DiscordId]) -> Result<Vec<u64>, RenderError> {
    ids.iter()
        .map(|id| {
            parse_id(id).ok_or_else(|| {
                RenderError::BotConfig(format!(
                    "spec.discord.access.{field}: `{}` is not a Discord id",
                    id.0
                ))
            })
        })
        .collect()
}

/// The ConfigMap `<name>-config` and the hash of what it holds.
pub fn config_map(owner: &Owner, config: &BotConfig, version: &str) -> (ConfigMap, String) {
    let toml = config.to_toml();
    let hash = hash_hex(toml.as_bytes());
    let cm = ConfigMap {
        metadata: owner.meta(
            format!("{}-config", owner.name),
            owner.labels(BOT_APP, "config", version),
        ),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_string(), toml)])),
        ..Default::default()
    };
    (cm, hash)
}

/// The first 16 hex digits of a SHA-256: enough to notice a change, short enough for an annotation.
pub fn hash_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
