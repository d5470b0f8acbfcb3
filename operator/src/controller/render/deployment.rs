//! The bot's Deployment: the bot container, its volumes and the MCP sidecars, in the shared
//! workload skeleton.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    KeyToPath, PersistentVolumeClaimVolumeSource, PodSpec, Probe, SecretKeySelector,
    SecretVolumeSource, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::header_env_name;
use super::labels::{BOT_APP, Owner};
use super::sidecars::{Sidecars, empty_dir, mount};
use super::workload::{self, Workload, restricted_container_security};
use super::{
    BOT_METRICS_PORT, CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION, DATA_DIR,
    SECRETS_HASH_ANNOTATION, TOKEN_DIR, TOKEN_FILE,
};
use crate::crd::BotDeploymentSpec;

pub const BOT_CONTAINER: &str = "bot";
const CONFIG_VOLUME: &str = "config";
const TOKEN_VOLUME: &str = "discord-token";
pub const DATA_VOLUME: &str = "data";
const TMP_VOLUME: &str = "tmp";

/// Everything the Deployment is built from.
pub struct DeploymentParts<'a> {
    pub owner: &'a Owner,
    pub spec: &'a BotDeploymentSpec,
    pub image: &'a str,
    pub version: &'a str,
    pub config_hash: &'a str,
    /// Hash of the resourceVersions of Secrets read through env vars (they need a restart).
    pub secrets_hash: Option<&'a str>,
    pub sidecars: Sidecars,
    /// The PVC `<name>-data`, when persistence is on.
    pub data_claim: Option<String>,
}

pub fn deployment(p: DeploymentParts<'_>) -> Deployment {
    let owner = p.owner;
    let spec = p.spec;
    let mut annotations: BTreeMap<String, String> = spec.pod_annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), p.config_hash.to_string());
    if let Some(h) = p.secrets_hash {
        annotations.insert(SECRETS_HASH_ANNOTATION.into(), h.to_string());
    }

    let token = &spec.discord.token_secret_ref;
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{}-config", owner.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        // The whole directory is mounted (no subPath) so that kubelet refreshes the file when
        // the token is rotated in the Secret, and the bot reads it again.
        Volume {
            name: TOKEN_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(token.name.clone()),
                items: Some(vec![KeyToPath {
                    key: token.key.clone(),
                    path: TOKEN_FILE.into(),
                    mode: None,
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Default::default()
        },
        empty_dir(TMP_VOLUME, None),
    ];
    match &p.data_claim {
        Some(claim) => volumes.push(Volume {
            name: DATA_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        }),
        None => volumes.push(empty_dir(DATA_VOLUME, None)),
    }
    volumes.extend(p.sidecars.volumes);

    let mut env = vec![
        plain("OLLAMA_MCP_CONFIG", &format!("{CONFIG_DIR}/{CONFIG_FILE}")),
        plain("DISCORD_TOKEN_FILE", &format!("{TOKEN_DIR}/{TOKEN_FILE}")),
        plain("HOME", "/tmp"),
    ];
    for s in &spec.mcp_servers {
        for (j, h) in s.headers.iter().enumerate() {
            if let Some(from) = &h.value_from {
                env.push(EnvVar {
                    name: header_env_name(&s.name, j),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: from.secret_key_ref.name.clone(),
                            key: from.secret_key_ref.key.clone(),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                });
            }
        }
    }

    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    let bot = Container {
        name: BOT_CONTAINER.into(),
        image: Some(p.image.to_string()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec![super::sidecars::BOT_BINARY_IN_IMAGE.into()]),
        args: Some(vec!["run".into()]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(BOT_METRICS_PORT),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        // Startup covers connecting to Discord and listing every MCP server's tools.
        startup_probe: Some(http_probe("/healthz", 2, 60)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        resources: spec.placement.resources.clone(),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(TOKEN_VOLUME, TOKEN_DIR, true),
            mount(DATA_VOLUME, DATA_DIR, false),
            mount(TMP_VOLUME, "/tmp", false),
        ]),
        ..Default::default()
    };

    workload::deployment(Workload {
        owner,
        name: owner.name.clone(),
        app: BOT_APP,
        labels: owner.labels(BOT_APP, "bot", p.version),
        pod_annotations: Some(annotations),
        placement: &spec.placement,
        pod: PodSpec {
            service_account_name: Some(owner.name.clone()),
            init_containers: (!p.sidecars.init_containers.is_empty())
                .then_some(p.sidecars.init_containers),
            containers: vec![bot],
            volumes: Some(volumes),
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        },
    })
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}
