//! The BotDeployment controller: a thin `reconcile` that times itself and hands off to
//! validate (pure) → build (pure) → apply (server-side apply) → status.

pub mod apply;
pub mod build;
pub mod model_check;
pub mod status;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, field};

use self::apply::DiscoveryCache;
use self::build::labels::{BOT_APP, INSTANCE, MANAGED_BY, MANAGED_BY_VALUE, NAME, Owner};
use self::build::{BuildInputs, Children};
use self::model_check::{CheckRequest, CheckTiming, ModelChecker};
use self::status::Observed;
use self::validate::SecretVersions;
use crate::crd::BotDeployment;
use crate::metrics::Metrics;

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "ollama-mcp-operator.ollama-mcp.io";

/// Why a reconciliation failed; the variant names the step (and is the metric label).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the BotDeployment has no {0} (it did not come from the API server)")]
    MissingObjectKey(&'static str),
    #[error("reading the metadata of Secret `{name}`: {source}")]
    SecretLookup { name: String, source: kube::Error },
    #[error("applying {kind} `{name}`: {source}")]
    Apply {
        kind: String,
        name: String,
        source: kube::Error,
    },
    #[error("deleting {kind} `{name}`, which the spec no longer asks for: {source}")]
    Delete {
        kind: String,
        name: String,
        source: kube::Error,
    },
    #[error("asking the API server whether it serves ServiceMonitors: {0}")]
    Discovery(kube::Error),
    #[error("listing the bot's pods: {0}")]
    ListPods(kube::Error),
    #[error("writing the status: {0}")]
    Status(kube::Error),
    #[error("publishing an event: {0}")]
    Event(kube::Error),
}

impl Error {
    /// The failed step, as a metric label.
    pub fn step(&self) -> &'static str {
        match self {
            Self::MissingObjectKey(_) => "missing_object_key",
            Self::SecretLookup { .. } => "secret_lookup",
            Self::Apply { .. } => "apply",
            Self::Delete { .. } => "delete",
            Self::Discovery(_) => "discovery",
            Self::ListPods(_) => "list_pods",
            Self::Status(_) => "status",
            Self::Event(_) => "event",
        }
    }
}

/// Settings of the controller.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Default bot image (`--bot-image`).
    pub bot_image: Option<String>,
    /// Talk to this Ollama URL instead of the one in the spec or the managed Service (tests, or
    /// an operator outside the cluster).
    pub ollama_url_override: Option<String>,
    /// How often model checks repeat.
    pub model_check: CheckTiming,
    /// `reportingInstance` of events (the pod name).
    pub instance: Option<String>,
    /// BotDeployments reconciled at once (0: the default, 16). Bounds the operator's memory
    /// when many objects change together.
    pub concurrency: u16,
}

/// Shared state of every reconciliation.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub models: ModelChecker,
    discovery: DiscoveryCache,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "ollama-mcp-operator".into(),
            instance: settings.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            models: ModelChecker::new(settings.model_check),
            discovery: DiscoveryCache::default(),
            client,
            settings,
            metrics,
        }
    }
}

/// BotDeployments reconciled at once unless configured.
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// Requeue while a model check (or pull) runs, to show its progress.
const REQUEUE_MODEL_CHECK: Duration = Duration::from_secs(5);
/// Requeue after a failed model check, to try again.
const REQUEUE_MODEL_RETRY: Duration = Duration::from_secs(60);
/// Requeue when all is well: repairs drift and repeats the model check.
const REQUEUE_IDLE: Duration = Duration::from_secs(300);

fn key(bd: &BotDeployment) -> String {
    format!("{}/{}", bd.namespace().unwrap_or_default(), bd.name_any())
}

/// Reconciles one BotDeployment.
pub async fn reconcile(bd: Arc<BotDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let span = tracing::info_span!("reconcile", bot = %key(&bd), generation = bd.metadata.generation, outcome = field::Empty);
    let result = reconcile_inner(&bd, &ctx).instrument(span.clone()).await;
    match &result {
        Ok(_) => span.record("outcome", "ok"),
        Err(e) => span.record("outcome", e.step()),
    };
    result
}

async fn reconcile_inner(bd: &BotDeployment, ctx: &Context) -> Result<Action, Error> {
    let ns = bd.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let name = bd.name_any();
    let reference = bd
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    let owner_uid = reference.uid.clone();
    let owner = Owner {
        name: name.clone(),
        namespace: ns.clone(),
        reference,
    };
    let bds: Api<BotDeployment> = Api::namespaced(ctx.client.clone(), &ns);

    let secrets = secret_versions(&ctx.client, &ns, bd).await?;
    if let Err(invalid) = validate::validate(bd, &secrets, ctx.settings.bot_image.as_deref()) {
        return report_invalid(bd, ctx, &bds, "InvalidSpec", &invalid.to_string()).await;
    }
    let inputs = BuildInputs {
        default_bot_image: ctx.settings.bot_image.as_deref().unwrap_or_default(),
        secrets: &secrets,
    };
    let children = match build::build(&owner, &bd.spec, inputs) {
        Ok(c) => c,
        Err(e) => return report_invalid(bd, ctx, &bds, "InvalidSpec", &e.to_string()).await,
    };

    let applied = match apply::apply(&ctx.client, &ns, &owner_uid, &children, &ctx.discovery).await
    {
        Ok(a) => a,
        Err(e) => {
            // An API server refusal (422, 403) is something a person must fix: say so in status.
            if let Error::Apply {
                source: kube::Error::Api(s),
                ..
            } = &e
                && matches!(s.code, 403 | 422)
            {
                let _ = report_invalid(bd, ctx, &bds, "ApplyRejected", &e.to_string()).await;
            }
            return Err(e);
        }
    };
    ctx.metrics.set_children(&key(bd), applied.counts.clone());

    let pods = list_pods(&ctx.client, &ns, &name).await?;
    let model = ctx
        .models
        .observe(&key(bd), &model_request(ctx, bd, &children));
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let observed = Observed {
        generation: bd.metadata.generation,
        children: &children,
        deployment: &applied.deployment,
        pods: &pods,
        model: &model,
        service_monitor: applied.service_monitor,
    };
    let new_status = status::observed_status(bd.status.as_ref(), &observed, &now);
    let newly_degraded = status::current_degraded_message(Some(&new_status))
        .filter(|m| status::current_degraded_message(bd.status.as_ref()) != Some(*m))
        .map(str::to_string);
    if bd.status.as_ref() != Some(&new_status) {
        status::patch(&bds, &name, &new_status)
            .await
            .map_err(Error::Status)?;
    }
    if let Some(message) = newly_degraded {
        let reason = new_status
            .conditions
            .iter()
            .find(|c| c.type_ == status::DEGRADED)
            .map_or("Degraded", |c| c.reason.as_str());
        publish(ctx, bd, EventType::Warning, reason, &message).await?;
    }

    // Pods and children report through watches; only the model check needs polling.
    Ok(if model.checking {
        Action::requeue(REQUEUE_MODEL_CHECK)
    } else if model.ready != Some(true) {
        Action::requeue(REQUEUE_MODEL_RETRY)
    } else {
        Action::requeue(REQUEUE_IDLE)
    })
}

fn model_request(ctx: &Context, bd: &BotDeployment, children: &Children) -> CheckRequest {
    CheckRequest {
        base_url: ctx
            .settings
            .ollama_url_override
            .clone()
            .unwrap_or_else(|| children.ollama_url.clone()),
        models: bd
            .spec
            .ollama
            .managed
            .as_ref()
            .filter(|m| !m.models.is_empty())
            .map_or_else(
                || children.models.clone(),
                |m| {
                    let mut all = m.models.clone();
                    all.extend(
                        children
                            .models
                            .iter()
                            .filter(|x| !m.models.contains(x))
                            .cloned(),
                    );
                    all
                },
            ),
        pull: bd.spec.ollama.managed.is_some(),
    }
}

/// Status `Degraded` with what to fix, a Warning event when the message is new, and no retry
/// until the spec (or a watched Secret) changes.
async fn report_invalid(
    bd: &BotDeployment,
    ctx: &Context,
    bds: &Api<BotDeployment>,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    tracing::warn!(
        reason,
        message,
        "the BotDeployment cannot be applied as it is"
    );
    ctx.metrics.invalid_specs.inc();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new_status = status::failed_status(
        bd.status.as_ref(),
        bd.metadata.generation,
        reason,
        message,
        &now,
    );
    let is_new = status::current_degraded_message(bd.status.as_ref()) != Some(message);
    if bd.status.as_ref() != Some(&new_status) {
        status::patch(bds, &bd.name_any(), &new_status)
            .await
            .map_err(Error::Status)?;
    }
    if is_new {
        publish(ctx, bd, EventType::Warning, reason, message).await?;
    }
    Ok(Action::await_change())
}

async fn publish(
    ctx: &Context,
    bd: &BotDeployment,
    type_: EventType,
    reason: &str,
    note: &str,
) -> Result<(), Error> {
    // Event notes are limited to 1 kB.
    let note: String = note.chars().take(1000).collect();
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder
        .publish(&event, &bd.object_ref(&()))
        .await
        .map_err(Error::Event)
}

/// The resourceVersion of every Secret the spec references (metadata only; never the data).
async fn secret_versions(
    client: &Client,
    ns: &str,
    bd: &BotDeployment,
) -> Result<SecretVersions, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    for name in validate::referenced_secrets(&bd.spec) {
        let meta = api
            .get_metadata_opt(&name)
            .await
            .map_err(|source| Error::SecretLookup {
                name: name.clone(),
                source,
            })?;
        out.insert(
            name,
            meta.map(|m| m.metadata.resource_version.unwrap_or_default()),
        );
    }
    Ok(out)
}

async fn list_pods(client: &Client, ns: &str, name: &str) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{NAME}={BOT_APP},{INSTANCE}={name}"));
    Ok(api.list(&lp).await.map_err(Error::ListPods)?.items)
}

/// What to do after a failed reconciliation: log, count, retry with a pause.
pub fn error_policy(bd: Arc<BotDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(bot = %key(&bd), step = error.step(), error = %error, "reconcile failed");
    ctx.metrics.reconcile_failed(error.step());
    Action::requeue(Duration::from_secs(15))
}

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
    let bd_stream = kube::runtime::reflector(
        writer,
        watcher(
            api::<BotDeployment>(&client, ns),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
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
            match ctx.settings.concurrency {
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

#[cfg(test)]
mod tests;
