//! The Deployment skeleton the bot and a managed Ollama share: one replica, `Recreate`,
//! restricted pod security, no service-account token or service links, the spec's placement;
//! and the volume claim both make.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, SecurityContext, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::RUN_AS_ID;
use super::labels::Owner;
use crate::crd::{PodPlacement, StorageSpec};

/// What differs between the two workloads.
pub struct Workload<'a> {
    pub owner: &'a Owner,
    pub name: String,
    /// `app.kubernetes.io/name` of the selector.
    pub app: &'a str,
    pub labels: BTreeMap<String, String>,
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Node selector, tolerations and affinity go to the pod; the caller puts the resources on
    /// its main container.
    pub placement: &'a PodPlacement,
    /// Containers, volumes and anything else of the pod; the skeleton sets security and
    /// placement.
    pub pod: PodSpec,
}

pub fn deployment(w: Workload<'_>) -> Deployment {
    let p = w.placement;
    Deployment {
        metadata: w.owner.meta(w.name, w.labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(w.owner.selector(w.app)),
                match_expressions: None,
            },
            // Two connected bots would answer every message twice; an Ollama's model volume is
            // ReadWriteOnce and its GPU usually taken: never two at once.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(w.labels),
                    annotations: w.pod_annotations,
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod_security()),
                    node_selector: (!p.node_selector.is_empty()).then(|| p.node_selector.clone()),
                    tolerations: (!p.tolerations.is_empty()).then(|| p.tolerations.clone()),
                    affinity: p.affinity.clone(),
                    ..w.pod
                }),
            },
            ..Default::default()
        }),
        status: None,
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

/// A ReadWriteOnce claim of `storage`, `default_size` when it names none.
pub fn claim(
    metadata: ObjectMeta,
    storage: &StorageSpec,
    default_size: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(
                    [(
                        "storage".to_string(),
                        Quantity(
                            storage
                                .size
                                .clone()
                                .unwrap_or_else(|| default_size.to_string()),
                        ),
                    )]
                    .into(),
                ),
                limits: None,
            }),
            storage_class_name: storage.storage_class_name.clone(),
            ..Default::default()
        }),
        status: None,
    }
}
