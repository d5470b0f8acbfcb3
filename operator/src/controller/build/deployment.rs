//! The bot's Deployment: one replica, Recreate (two connected bots would answer every message
//! twice), the bot container, the MCP sidecars, restricted pod security.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::header_env_name;
use super::labels::{BOT_APP, Owner};
use super::sidecars::{Sidecars, empty_dir, mount};
use super::{
    BOT_METRICS_PORT, CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION, DATA_DIR, RUN_AS_ID,
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
        resources: spec.resources.clone(),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(TOKEN_VOLUME, TOKEN_DIR, true),
            mount(DATA_VOLUME, DATA_DIR, false),
            mount(TMP_VOLUME, "/tmp", false),
        ]),
        ..Default::default()
    };

    let selector = owner.selector(BOT_APP);
    let labels = owner.labels(BOT_APP, "bot", p.version);
    Deployment {
        metadata: owner.meta(owner.name.clone(), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(owner.name.clone()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod_security()),
                    init_containers: (!p.sidecars.init_containers.is_empty())
                        .then_some(p.sidecars.init_containers),
                    containers: vec![bot],
                    volumes: Some(volumes),
                    node_selector: (!spec.node_selector.is_empty())
                        .then(|| spec.node_selector.clone()),
                    tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
                    affinity: spec.affinity.clone(),
                    termination_grace_period_seconds: Some(30),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// Pod-level settings of the `restricted` Pod Security Standard.
pub fn restricted_pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_ID),
        run_as_group: Some(RUN_AS_ID),
        fs_group: Some(RUN_AS_ID),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// Container-level settings of the `restricted` Pod Security Standard, plus a read-only root.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}
