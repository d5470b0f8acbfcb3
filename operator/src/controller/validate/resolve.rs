//! What a valid spec resolves to: the Ollama URL, the models, and how the bot reaches each MCP
//! server (ports in the pod's shared network). Render and status read these; they never derive
//! them again from the raw spec.

use std::collections::BTreeSet;

use crate::crd::{BotDeploymentSpec, Transport};

/// The bot's metrics, health and readiness port (`metrics.listen`).
pub const BOT_METRICS_PORT: u16 = 9090;
/// The first port a bridged stdio sidecar gets.
pub const FIRST_SIDECAR_PORT: u16 = 8100;
/// A bridge serves `/mcp` on 127.0.0.1:P only (the bot is in the same pod) and `/healthz` alone
/// on 0.0.0.0:(P + this), for the kubelet's probes.
pub const BRIDGE_HEALTH_OFFSET: u16 = 1000;
pub const OLLAMA_PORT: u16 = 11434;

/// How the bot reaches one MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpEndpoint {
    pub name: String,
    pub kind: EndpointKind,
    /// The URL in the bot's configuration.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// A stdio server behind the bridge in sidecar `mcp-<name>`: MCP on 127.0.0.1:`port`,
    /// `/healthz` on `health_port`.
    Bridged { port: u16, health_port: u16 },
    /// A sidecar that serves streamable HTTP itself.
    Http { port: u16 },
    /// A remote server; no sidecar.
    Remote,
}

impl EndpointKind {
    pub fn transport(self) -> &'static str {
        match self {
            Self::Bridged { .. } => "stdio",
            Self::Http { .. } => "http",
            Self::Remote => "remote",
        }
    }
    /// The port of a bridge's `/healthz` (bridged servers only).
    pub fn health_port(self) -> Option<u16> {
        match self {
            Self::Bridged { health_port, .. } => Some(health_port),
            Self::Http { .. } | Self::Remote => None,
        }
    }
    pub fn port(self) -> Option<u16> {
        match self {
            Self::Bridged { port, .. } | Self::Http { port } => Some(port),
            Self::Remote => None,
        }
    }
}

/// Endpoints in spec order. Bridge ports count up from [`FIRST_SIDECAR_PORT`], skipping the
/// ports HTTP sidecars and the bot's metrics already use (for the MCP port and its health port
/// alike), so that a spec change elsewhere does not move them.
pub fn endpoints(spec: &BotDeploymentSpec) -> Vec<McpEndpoint> {
    let mut used: BTreeSet<u16> = spec
        .mcp_servers
        .iter()
        .filter(|s| s.url.is_none() && s.transport == Some(Transport::Http))
        .filter_map(|s| s.port.and_then(|p| u16::try_from(p).ok()))
        .collect();
    used.insert(BOT_METRICS_PORT);
    let mut next = FIRST_SIDECAR_PORT;
    spec.mcp_servers
        .iter()
        .map(|s| {
            let (kind, url) = if let Some(url) = &s.url {
                (EndpointKind::Remote, url.clone())
            } else if s.preset.is_none() && s.transport == Some(Transport::Http) {
                let port = s
                    .port
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(FIRST_SIDECAR_PORT);
                let path = s.path.as_deref().unwrap_or("/mcp");
                (
                    EndpointKind::Http { port },
                    format!("http://127.0.0.1:{port}{path}"),
                )
            } else {
                while used.contains(&next) || used.contains(&(next + BRIDGE_HEALTH_OFFSET)) {
                    next += 1;
                }
                let port = next;
                let health_port = port + BRIDGE_HEALTH_OFFSET;
                used.extend([port, health_port]);
                (
                    EndpointKind::Bridged { port, health_port },
                    format!("http://127.0.0.1:{port}/mcp"),
                )
            };
            McpEndpoint {
                name: s.name.clone(),
                kind,
                url,
            }
        })
        .collect()
}

/// Name of the managed Ollama's Deployment, Service and PVC.
pub fn ollama_name(bot: &str) -> String {
    format!("{bot}-ollama")
}

/// The in-cluster URL of the managed Ollama of bot `bot` in namespace `ns`.
pub fn managed_url(bot: &str, ns: &str) -> String {
    format!("http://{}.{ns}.svc:{OLLAMA_PORT}", ollama_name(bot))
}

/// The models the bot may use: the default first, then `allowed`, without repeats.
pub fn models(spec: &BotDeploymentSpec) -> Vec<String> {
    let mut seen = BTreeSet::new();
    std::iter::once(&spec.model.name)
        .chain(&spec.model.allowed)
        .filter(|m| seen.insert(m.as_str()))
        .cloned()
        .collect()
}

/// The models the model check looks for: for a managed Ollama its `models` list (what it
/// pulls) followed by any model the bot may use that the list forgot.
pub fn checked_models(spec: &BotDeploymentSpec, usable: &[String]) -> Vec<String> {
    match spec
        .ollama
        .managed
        .as_ref()
        .filter(|m| !m.models.is_empty())
    {
        None => usable.to_vec(),
        Some(m) => {
            let mut all = m.models.clone();
            all.extend(usable.iter().filter(|x| !m.models.contains(x)).cloned());
            all
        }
    }
}
