//! Apply: server-side apply of every child with one field manager (forced, so the operator wins
//! over manual edits of the fields it owns), the ConfigMap before the Deployment; then deletion
//! of children the spec no longer asks for (only those this BotDeployment controls).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::render::Children;
use super::render::ollama::ollama_name;
use super::render::service::{data_pvc_name, service_monitor_resource};
use super::status::ServiceMonitorState;
use super::{Error, FIELD_MANAGER};

/// How long a ServiceMonitor discovery answer is trusted (the CRD may be installed later).
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// What apply observed.
pub struct Applied {
    /// The bot Deployment as the API server returned it.
    pub deployment: Deployment,
    /// The managed Ollama's Deployment as the API server returned it (with its status).
    pub ollama_deployment: Option<Deployment>,
    pub service_monitor: ServiceMonitorState,
    /// Number of children applied, by kind (for the managed-objects metric).
    pub counts: Vec<(&'static str, i64)>,
}

/// Cached answer of "does this cluster serve ServiceMonitors?".
#[derive(Default)]
pub struct DiscoveryCache(std::sync::Mutex<Option<(Instant, bool)>>);

impl DiscoveryCache {
    async fn service_monitors_served(&self, client: &Client) -> Result<bool, Error> {
        if let Some((at, v)) = *self.0.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(v);
        }
        let served = match client
            .list_api_group_resources("monitoring.coreos.com/v1")
            .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == "servicemonitors"),
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(Error::Discovery(e)),
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), served));
        Ok(served)
    }
}

async fn ssa<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: K::kind(&()).to_string(),
        name,
        source,
    })
}

/// Applies every child and removes those switched off.
pub async fn apply(
    client: &Client,
    ns: &str,
    owner_uid: &str,
    children: &Children,
    discovery: &DiscoveryCache,
) -> Result<Applied, Error> {
    // Destructured without `..`: a new child fails to compile here instead of silently never
    // being applied.
    let Children {
        config_map,
        service_account,
        data_pvc,
        metrics_service,
        ollama,
        deployment,
        network_policy,
        service_monitor,
        config_hash: _,
    } = children;
    let mut counts: Vec<(&'static str, i64)> = Vec::new();
    let bot = deployment.metadata.name.clone().unwrap_or_default();
    // The configuration first: a new pod must never start with the previous config.
    ssa(client, ns, config_map).await?;
    ssa(client, ns, service_account).await?;
    counts.extend([("ConfigMap", 1), ("ServiceAccount", 1)]);
    match data_pvc {
        Some(pvc) => {
            ssa(client, ns, pvc).await?;
            counts.push(("PersistentVolumeClaim", 1));
        }
        None => {
            delete_owned::<PersistentVolumeClaim>(client, ns, &data_pvc_name(&bot), owner_uid)
                .await?
        }
    }
    ssa(client, ns, metrics_service).await?;
    counts.push(("Service", 1));
    let ollama_deployment = match ollama {
        Some(o) => {
            match &o.pvc {
                Some(pvc) => {
                    ssa(client, ns, pvc).await?;
                    counts.push(("PersistentVolumeClaim", 1));
                }
                None => {
                    delete_owned::<PersistentVolumeClaim>(client, ns, &ollama_name(&bot), owner_uid)
                        .await?
                }
            }
            ssa(client, ns, &o.service).await?;
            let applied = ssa(client, ns, &o.deployment).await?;
            counts.extend([("Service", 1), ("Deployment", 1)]);
            Some(applied)
        }
        None => {
            let name = ollama_name(&bot);
            delete_owned::<Deployment>(client, ns, &name, owner_uid).await?;
            delete_owned::<Service>(client, ns, &name, owner_uid).await?;
            delete_owned::<PersistentVolumeClaim>(client, ns, &name, owner_uid).await?;
            None
        }
    };
    let deployment = ssa(client, ns, deployment).await?;
    ssa(client, ns, network_policy).await?;
    counts.extend([("Deployment", 1), ("NetworkPolicy", 1)]);

    let service_monitor = match service_monitor {
        Some(sm) => {
            if discovery.service_monitors_served(client).await? {
                let ar = service_monitor_resource();
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                let name = sm.metadata.name.clone().unwrap_or_default();
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(sm),
                )
                .await
                .map_err(|source| Error::Apply {
                    kind: "ServiceMonitor".into(),
                    name,
                    source,
                })?;
                counts.push(("ServiceMonitor", 1));
                ServiceMonitorState::Applied
            } else {
                ServiceMonitorState::CrdMissing
            }
        }
        None => {
            if discovery.service_monitors_served(client).await? {
                let ar = service_monitor_resource();
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                delete_owned_in(&api, "ServiceMonitor", &bot, owner_uid).await?;
            }
            ServiceMonitorState::NotRequested
        }
    };
    Ok(Applied {
        deployment,
        ollama_deployment,
        service_monitor,
        counts,
    })
}

async fn delete_owned<K>(
    client: &Client,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    delete_owned_in(&api, &K::kind(&()), name, owner_uid).await
}

/// Deletes `name` if this BotDeployment controls it; anything else of that name is left alone.
async fn delete_owned_in<K>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let err = |source| Error::Delete {
        kind: kind.to_string(),
        name: name.to_string(),
        source,
    };
    let Some(meta) = api.get_metadata_opt(name).await.map_err(err)? else {
        return Ok(());
    };
    let controlled = meta
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true));
    if !controlled || meta.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    // The uid precondition makes sure a same-named object created meanwhile is not deleted.
    let dp = DeleteParams::background().preconditions(Preconditions {
        uid: meta.metadata.uid.clone(),
        resource_version: None,
    });
    match api.delete(name, &dp).await {
        Ok(_) => {
            tracing::info!(kind, name, "deleted a child the spec no longer asks for");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Kinds whose objects apply counts.
pub const MANAGED_KINDS: &[&str] = &[
    "ConfigMap",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "NetworkPolicy",
    "ServiceMonitor",
];
