//! Render: a validated BotDeployment → the Kubernetes objects that run it (pure: no client).

pub mod config;
pub mod deployment;
pub mod labels;
pub mod network;
pub mod ollama;
pub mod service;
pub mod sidecars;
pub mod workload;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;

pub use self::labels::Owner;
pub use self::ollama::OllamaChildren;
use super::validate::ValidatedBot;
pub use super::validate::resolve::{BOT_METRICS_PORT, FIRST_SIDECAR_PORT, OLLAMA_PORT};
pub use super::validate::{EndpointKind, McpEndpoint};
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
pub enum RenderError {
    #[error("the rendered bot configuration is invalid: {0}")]
    BotConfig(String),
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
    /// Hash of the rendered configuration (the pod annotation that rolls the pod on a change).
    pub config_hash: String,
}

/// The children of a validated BotDeployment.
pub fn render(owner: &Owner, bot: &ValidatedBot<'_>) -> Result<Children, RenderError> {
    let spec = bot.spec;
    let image = bot.image.as_str();
    let version = labels::image_version(image).to_string();
    let ollama = bot.managed_ollama.map(|m| ollama::ollama(owner, m));
    let bot_config = config::bot_config(spec, &bot.ollama_url, &bot.models, &bot.endpoints)?;
    let (config_map, config_hash) = config::config_map(owner, &bot_config, &version);
    let data_pvc = spec
        .persistence
        .as_ref()
        .map(|p| service::data_pvc(owner, p, &version));
    let sidecars = sidecars::sidecars(
        spec,
        &bot.endpoints,
        image,
        data_pvc.as_ref().map(|_| deployment::DATA_VOLUME),
    );
    let secrets_hash = env_secrets_hash(bot);
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
        network_policy: network::network_policy(owner, spec, &bot.ollama_url, &version),
        service_monitor: spec
            .metrics
            .service_monitor
            .then(|| service::service_monitor(owner, &spec.metrics, &version)),
        config_map,
        data_pvc,
        ollama,
        deployment,
        config_hash,
    })
}

/// Hash of the resourceVersions of the Secrets that reach the pod through env vars; `None` when
/// there are none.
fn env_secrets_hash(bot: &ValidatedBot<'_>) -> Option<String> {
    if bot.env_secrets.is_empty() {
        return None;
    }
    let joined: String = bot
        .env_secrets
        .iter()
        .map(|(name, version)| format!("{name}={version};"))
        .collect();
    Some(config::hash_hex(joined.as_bytes()))
}

#[cfg(test)]
mod tests;
