//! A managed Ollama: Deployment, Service and model volume `<name>-ollama`. Models are pulled by
//! the operator through the API (`/api/pull`), not by an init container, so that progress shows
//! in the BotDeployment's status.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, PodSpec, Probe, Service, ServicePort, ServiceSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{OLLAMA_APP, Owner, image_version};
use super::sidecars::{empty_dir, mount};
use super::workload::{self, Workload, restricted_container_security};
use super::{DEFAULT_OLLAMA_IMAGE, OLLAMA_PORT};
use crate::crd::ManagedOllamaSpec;

const MODELS_DIR: &str = "/models";
const MODELS_VOLUME: &str = "models";

/// The managed Ollama's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaChildren {
    pub deployment: Deployment,
    pub service: Service,
    pub pvc: Option<PersistentVolumeClaim>,
}

pub use crate::controller::validate::resolve::ollama_name;

pub fn ollama(owner: &Owner, m: &ManagedOllamaSpec) -> OllamaChildren {
    let name = ollama_name(&owner.name);
    let image = m
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_OLLAMA_IMAGE.to_string());
    let version = image_version(&image).to_string();
    let labels = owner.labels(OLLAMA_APP, "ollama", &version);
    let selector = owner.selector(OLLAMA_APP);

    let pvc = m.storage.as_ref().map(|s| {
        let meta = owner.meta(name.clone(), owner.labels(OLLAMA_APP, "models", &version));
        workload::claim(meta, s, "50Gi")
    });
    let models_volume = match &pvc {
        Some(_) => Volume {
            name: MODELS_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name.clone(),
                read_only: None,
            }),
            ..Default::default()
        },
        None => empty_dir(MODELS_VOLUME, None),
    };

    let mut env = vec![
        EnvVar {
            name: "OLLAMA_HOST".into(),
            value: Some(format!("0.0.0.0:{OLLAMA_PORT}")),
            value_from: None,
        },
        EnvVar {
            name: "OLLAMA_MODELS".into(),
            value: Some(MODELS_DIR.into()),
            value_from: None,
        },
        EnvVar {
            name: "HOME".into(),
            value: Some("/tmp".into()),
            value_from: None,
        },
    ];
    for e in &m.env {
        env.retain(|x| x.name != e.name);
        env.push(e.clone());
    }
    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/api/version".into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    let container = Container {
        name: "ollama".into(),
        image: Some(image),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(OLLAMA_PORT),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(probe(5, 3)),
        liveness_probe: Some(probe(20, 6)),
        resources: m.placement.resources.clone(),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            mount(MODELS_VOLUME, MODELS_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    };
    let deployment = workload::deployment(Workload {
        owner,
        name: name.clone(),
        app: OLLAMA_APP,
        labels: labels.clone(),
        pod_annotations: None,
        placement: &m.placement,
        pod: PodSpec {
            containers: vec![container],
            volumes: Some(vec![models_volume, empty_dir("tmp", None)]),
            runtime_class_name: m.runtime_class_name.clone(),
            ..Default::default()
        },
    });
    let service = Service {
        metadata: owner.meta(name, labels),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(OLLAMA_PORT),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    OllamaChildren {
        deployment,
        service,
        pvc,
    }
}
