//! The small children: ServiceAccount, metrics Service, the store's PVC, the ServiceMonitor.

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::TypeMeta;

use super::BOT_METRICS_PORT;
use super::labels::{BOT_APP, Owner};
use super::workload::claim;
use crate::crd::{MetricsSpec, PersistenceSpec};

/// A ServiceAccount with no permissions and no token in the pod: the bot never calls the API.
pub fn service_account(owner: &Owner, version: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.meta(
            owner.name.clone(),
            owner.labels(BOT_APP, "service-account", version),
        ),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

pub fn metrics_service_name(bot: &str) -> String {
    format!("{bot}-metrics")
}

/// Service `<name>-metrics` in front of the bot's `/metrics`.
pub fn metrics_service(owner: &Owner, version: &str) -> Service {
    Service {
        metadata: owner.meta(
            metrics_service_name(&owner.name),
            owner.labels(BOT_APP, "metrics", version),
        ),
        spec: Some(ServiceSpec {
            selector: Some(owner.selector(BOT_APP)),
            ports: Some(vec![ServicePort {
                name: Some("metrics".into()),
                port: i32::from(BOT_METRICS_PORT),
                target_port: Some(IntOrString::String("metrics".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn data_pvc_name(bot: &str) -> String {
    format!("{bot}-data")
}

/// PVC `<name>-data` for the bot's SQLite store (and the memory preset's graph).
pub fn data_pvc(owner: &Owner, p: &PersistenceSpec, version: &str) -> PersistentVolumeClaim {
    let meta = owner.meta(
        data_pvc_name(&owner.name),
        owner.labels(BOT_APP, "data", version),
    );
    claim(meta, p, "1Gi")
}

/// The Prometheus-operator ServiceMonitor kind.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// ServiceMonitor `<name>` selecting the metrics Service.
pub fn service_monitor(owner: &Owner, m: &MetricsSpec, version: &str) -> DynamicObject {
    let ar = service_monitor_resource();
    // The dashboard and alerts select bots by a `bot` label: take it from the instance label.
    let mut endpoint = serde_json::json!({
        "port": "metrics",
        "path": "/metrics",
        "relabelings": [{
            "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
            "targetLabel": "bot",
        }],
    });
    if let Some(i) = &m.interval {
        endpoint["interval"] = serde_json::Value::String(i.clone());
    }
    let mut selector = owner.selector(BOT_APP);
    selector.insert(super::labels::COMPONENT.into(), "metrics".into());
    DynamicObject {
        types: Some(TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        }),
        metadata: owner.meta(
            owner.name.clone(),
            owner.labels(BOT_APP, "metrics", version),
        ),
        data: serde_json::json!({
            "spec": {
                "selector": {"matchLabels": selector},
                "namespaceSelector": {"matchNames": [owner.namespace]},
                "endpoints": [endpoint],
            }
        }),
    }
}
