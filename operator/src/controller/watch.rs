//! The controller's watches: BotDeployments (spec changes only), their children and pods
//! (metadata only), and the Secrets they reference; deleted BotDeployments are forgotten here.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};

use super::render::labels::{INSTANCE, MANAGED_BY, MANAGED_BY_VALUE};
use super::{Context, DEFAULT_CONCURRENCY, error_policy, key, reconcile, validate};
use crate::crd::BotDeployment;

/// The BotDeployments in `store` that reference Secret `secret` in namespace `ns`.
pub fn referencing(
    store: &Store<BotDeployment>,
    ns: &str,
    secret: &str,
) -> Vec<ObjectRef<BotDeployment>> {
    store
        .state()
        .iter()
        .filter(|bd| bd.namespace().as_deref() == Some(ns))
        .filter(|bd| validate::referenced_secrets(&bd.spec).contains(secret))
        .map(|bd| ObjectRef::from_obj(bd.as_ref()))
        .collect()
}

/// Runs the controller until shutdown is signalled. `namespace` limits it to one namespace.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = namespace.as_deref();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"));

    // Reconcile on spec changes only: our own status writes must not trigger another round.
    let (reader, writer) = kube::runtime::reflector::store();
    let gone = Arc::clone(&ctx);
    let bd_stream = kube::runtime::reflector(
        writer,
        watcher(
            api::<BotDeployment>(&client, ns),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    // A deleted BotDeployment is never reconciled again: forget it here.
    .inspect(move |event| {
        if let Ok(watcher::Event::Delete(bd)) = event {
            gone.forget(&key(bd));
        }
    })
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());

    let secrets_store = reader.clone();
    // Metadata only: the API server never sends the operator a Secret's data.
    let secrets = watcher(
        api::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::resource_version, Default::default());
    // Children and pods only trigger reconciles: their metadata is all the controller needs
    // from a watch (the owner reference, the instance label), which keeps memory and traffic low.
    let pods = watcher(api::<PartialObjectMeta<Pod>>(&client, ns), owned.clone())
        .default_backoff()
        .touched_objects();
    fn children<K>(
        client: &Client,
        ns: Option<&str>,
        cfg: &watcher::Config,
    ) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        watcher(api::<PartialObjectMeta<K>>(client, ns), cfg.clone())
            .default_backoff()
            .touched_objects()
    }

    Controller::for_stream(bd_stream, reader)
        .owns_stream(children::<ConfigMap>(&client, ns, &owned))
        .owns_stream(children::<ServiceAccount>(&client, ns, &owned))
        .owns_stream(children::<Service>(&client, ns, &owned))
        .owns_stream(children::<PersistentVolumeClaim>(&client, ns, &owned))
        .owns_stream(children::<Deployment>(&client, ns, &owned))
        .owns_stream(children::<NetworkPolicy>(&client, ns, &owned))
        .watches_stream(secrets, move |s| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            referencing(
                &secrets_store,
                &ns,
                &s.metadata.name.clone().unwrap_or_default(),
            )
        })
        .watches_stream(pods, |p: PartialObjectMeta<Pod>| {
            // Pods belong to ReplicaSets; the instance label names the BotDeployment.
            let name = p.labels().get(INSTANCE).cloned();
            let ns = p.namespace();
            name.zip(ns).map(|(n, ns)| ObjectRef::new(&n).within(&ns))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(
            match ctx.options.concurrency {
                0 => DEFAULT_CONCURRENCY,
                n => n,
            },
        ))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
