//! Build: a validated BotDeployment → the Kubernetes objects that run it (pure: no client).

pub mod config;
pub mod deployment;
pub mod labels;
pub mod network;
pub mod ollama;
pub mod service;
pub mod sidecars;

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use ollama_mcp_bot::config::BotConfig;

pub use self::labels::Owner;
pub use self::ollama::OllamaChildren;
pub use self::sidecars::{EndpointKind, McpEndpoint};
use super::validate::SecretVersions;
use crate::crd::BotDeploymentSpec;

/// The bot's metrics, health and readiness port (`metrics.listen`).
pub const BOT_METRICS_PORT: u16 = 9090;
/// The first port a bridged stdio sidecar gets.
pub const FIRST_SIDECAR_PORT: u16 = 8100;
pub const OLLAMA_PORT: u16 = 11434;
/// Pinned image of a managed Ollama when the spec names none.
pub const DEFAULT_OLLAMA_IMAGE: &str = "ollama/ollama:0.12.6";
pub const CONFIG_DIR: &str = "/etc/ollama-mcp";
pub const CONFIG_FILE: &str = "config.toml";
pub const TOKEN_DIR: &str = "/var/run/secrets/ollama-mcp/discord";
pub const TOKEN_FILE: &str = "token";
pub const DATA_DIR: &str = "/var/lib/ollama-mcp";
pub const DB_FILE: &str = "ollama-mcp.db";
pub const BRIDGE_DIR: &str = "/opt/ollama-mcp/bin";
/// A non-root uid/gid for every container (images that run as root would be refused).
pub const RUN_AS_ID: i64 = 65532;
/// Pod-template annotation: a change of the bot's configuration rolls the pod.
pub const CONFIG_HASH_ANNOTATION: &str = "ollama-mcp.io/config-hash";
/// Pod-template annotation: a rotated Secret that reaches the pod through env vars rolls it.
/// (The Discord token is a mounted file, read again by the bot: it is not part of this hash.)
pub const SECRETS_HASH_ANNOTATION: &str = "ollama-mcp.io/secrets-hash";

/// A spec that got past validation but cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the rendered bot configuration is invalid: {0}")]
    BotConfig(String),
}

/// What build needs besides the spec.
#[derive(Debug, Clone, Copy)]
pub struct BuildInputs<'a> {
    /// The operator's `--bot-image`.
    pub default_bot_image: &'a str,
    /// Metadata of the referenced Secrets.
    pub secrets: &'a SecretVersions,
}

/// Every child of one BotDeployment, in apply order where it matters (ConfigMap first).
#[derive(Debug, Clone)]
pub struct Children {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub data_pvc: Option<PersistentVolumeClaim>,
    pub metrics_service: Service,
    pub ollama: Option<OllamaChildren>,
    pub deployment: Deployment,
    pub network_policy: NetworkPolicy,
    /// Built when asked; applied only when the ServiceMonitor CRD exists.
    pub service_monitor: Option<DynamicObject>,
    pub config: BotConfig,
    pub config_hash: String,
    pub ollama_url: String,
    /// Models the bot may use (the default first).
    pub models: Vec<String>,
    pub endpoints: Vec<McpEndpoint>,
}

pub fn build(
    owner: &Owner,
    spec: &BotDeploymentSpec,
    inputs: BuildInputs<'_>,
) -> Result<Children, BuildError> {
    let image = spec.image.as_deref().unwrap_or(inputs.default_bot_image);
    let version = labels::image_version(image).to_string();
    let ollama = spec
        .ollama
        .managed
        .as_ref()
        .map(|m| ollama::ollama(owner, m));
    let ollama_url = match &spec.ollama.managed {
        Some(_) => ollama::managed_url(owner),
        None => spec
            .ollama
            .url
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
    };
    let endpoints = sidecars::endpoints(spec);
    let bot_config = config::bot_config(spec, &ollama_url, &endpoints)?;
    let (config_map, config_hash) = config::config_map(owner, &bot_config, &version);
    let data_pvc = spec
        .persistence
        .as_ref()
        .map(|p| service::data_pvc(owner, p, &version));
    let sidecars = sidecars::sidecars(
        spec,
        &endpoints,
        image,
        data_pvc.as_ref().map(|_| deployment::DATA_VOLUME),
    );
    let secrets_hash = env_secrets_hash(spec, inputs.secrets);
    let deployment = deployment::deployment(deployment::DeploymentParts {
        owner,
        spec,
        image,
        version: &version,
        config_hash: &config_hash,
        secrets_hash: secrets_hash.as_deref(),
        sidecars,
        data_claim: data_pvc
            .as_ref()
            .map(|_| service::data_pvc_name(&owner.name)),
    });
    Ok(Children {
        service_account: service::service_account(owner, &version),
        metrics_service: service::metrics_service(owner, &version),
        network_policy: network::network_policy(owner, spec, &ollama_url, &version),
        service_monitor: spec
            .metrics
            .service_monitor
            .then(|| service::service_monitor(owner, &spec.metrics, &version)),
        config_map,
        data_pvc,
        ollama,
        deployment,
        config: bot_config,
        config_hash,
        models: config::models(spec),
        ollama_url,
        endpoints,
    })
}

/// Hash of the resourceVersions of the Secrets that reach the pod through env vars; `None` when
/// there are none.
fn env_secrets_hash(spec: &BotDeploymentSpec, secrets: &SecretVersions) -> Option<String> {
    let mut names = BTreeSet::new();
    for s in &spec.mcp_servers {
        names.extend(
            s.headers
                .iter()
                .filter_map(|h| h.value_from.as_ref())
                .map(|f| f.secret_key_ref.name.as_str()),
        );
        names.extend(
            s.env
                .iter()
                .filter_map(|e| {
                    e.value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref())
                })
                .map(|r| r.name.as_str()),
        );
    }
    if names.is_empty() {
        return None;
    }
    let joined: String = names
        .iter()
        .map(|n| {
            format!(
                "{n}={};",
                secrets.get(*n).cloned().flatten().unwrap_or_default()
            )
        })
        .collect();
    Some(config::hash_hex(joined.as_bytes()))
}

#[cfg(test)]
mod tests;
