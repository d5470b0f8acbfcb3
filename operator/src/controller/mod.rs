//! The BotDeployment controller: a thin `reconcile` that times itself and hands off to
//! validate (pure) → render (pure) → apply (server-side apply) → status.

pub mod apply;
pub mod bot_report;
pub mod model_check;
pub mod problems;
pub mod render;
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
use self::model_check::{CheckRequest, CheckTiming, ModelChecker};
use self::render::Children;
use self::render::labels::{BOT_APP, INSTANCE, MANAGED_BY, MANAGED_BY_VALUE, NAME, Owner};
use self::status::Observed;
use self::validate::{SecretVersions, ValidatedBot};
use crate::crd::{BotDeployment, BotDeploymentStatus};
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

/// How the controller runs (command-line flags of the operator).
#[derive(Debug, Clone, Default)]
pub struct ControllerOptions {
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
    pub options: ControllerOptions,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub models: ModelChecker,
    /// What each bot reports about its MCP servers (`GET /status` of its Ready pod).
    pub reports: bot_report::BotReports,
    discovery: DiscoveryCache,
    /// The status this process last wrote, per BotDeployment: fresher than the watch cache, which
    /// may not have seen the write yet (a status-only change never triggers a reconcile, so a
    /// write skipped against a stale copy would wait for the next requeue).
    written: std::sync::Mutex<std::collections::HashMap<String, BotDeploymentStatus>>,
}

impl Context {
    pub fn new(client: Client, options: ControllerOptions, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "ollama-mcp-operator".into(),
            instance: options.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            models: ModelChecker::new(options.model_check),
            discovery: DiscoveryCache::default(),
            reports: bot_report::BotReports::default(),
            written: std::sync::Mutex::default(),
            client,
            options,
            metrics,
        }
    }
}

impl Context {
    /// Forgets a BotDeployment that is gone: its model check (a pull in progress stops) and its
    /// share of the `managed_objects` / `bot_deployments` gauges.
    pub fn forget(&self, key: &str) {
        self.models.forget(key);
        self.reports.forget(key);
        self.metrics.set_children(key, Vec::new());
        self.written_status().remove(key);
    }

    fn written_status(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, BotDeploymentStatus>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status as the API server has it: the one this process last wrote, else the
    /// object's own (written by an earlier run).
    fn current_status(&self, bd: &BotDeployment) -> Option<BotDeploymentStatus> {
        self.written_status()
            .get(&key(bd))
            .cloned()
            .or_else(|| bd.status.clone())
    }

    /// Writes `status` unless the API server has it already.
    async fn write_status_if_changed(
        &self,
        bds: &Api<BotDeployment>,
        bd: &BotDeployment,
        current: Option<&BotDeploymentStatus>,
        status: &BotDeploymentStatus,
    ) -> Result<(), Error> {
        if current == Some(status) {
            return Ok(());
        }
        status::patch(bds, &bd.name_any(), status)
            .await
            .map_err(Error::Status)?;
        self.written_status().insert(key(bd), status.clone());
        Ok(())
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

/// `<namespace>/<name>`: the key of the model checker and of the per-object metrics.
pub fn key(bd: &BotDeployment) -> String {
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
    let owner = owner(bd)?;
    let ns = owner.namespace.as_str();
    let bds: Api<BotDeployment> = Api::namespaced(ctx.client.clone(), ns);

    // 1. Validate: the spec, with the metadata of the Secrets it references, resolved once.
    //    An invalid spec is reported and waits for a change.
    let secrets = secret_versions(&ctx.client, ns, bd).await?;
    let bot = match validate::validate(bd, &secrets, ctx.options.bot_image.as_deref()) {
        Ok(bot) => bot,
        Err(e) => return report_invalid(bd, ctx, &bds, "InvalidSpec", &e.to_string()).await,
    };
    // 2. Render the children (pure).
    let children = match render::render(&owner, &bot) {
        Ok(c) => c,
        Err(e) => return report_invalid(bd, ctx, &bds, "InvalidSpec", &e.to_string()).await,
    };
    // 3. Apply them: server-side apply, then deletion of those switched off.
    let applied = apply_children(bd, ctx, &bds, &owner, &children).await?;
    // 4. Observe the bot's pods and the model check.
    let (pods, ollama_pods) = list_pods(&ctx.client, ns, &owner.name).await?;
    let request = model_request(ctx, &bot);
    if let Some(known) = status::known_model_state(bd.status.as_ref(), &request.models) {
        ctx.models.remember(&key(bd), &request, known);
    }
    let model = ctx.models.observe(&key(bd), &request);
    let pod_url = bot_report::ready_pod_url(&pods);
    let report = ctx.reports.observe(&key(bd), pod_url.as_deref()).await;
    // 5. Report: the status when it changed, a Warning event when a problem is new.
    let observed = Observed {
        generation: bd.metadata.generation,
        bot: &bot,
        children: &children,
        deployment: &applied.deployment,
        pods: &pods,
        ollama_deployment: applied.ollama_deployment.as_ref(),
        ollama_pods: &ollama_pods,
        model: &model,
        report: report.as_ref(),
        service_monitor: applied.service_monitor,
    };
    write_status(bd, ctx, &bds, &observed).await?;

    // Pods and children report through watches; the model check and the bot's own report of
    // its MCP servers (while one is not up yet) need polling.
    let servers_settling = pod_url.is_some()
        && report.as_ref().is_none_or(|r| {
            r.mcp_servers
                .iter()
                .any(|s| s.state != ollama_mcp_bot::status::ServerStateName::Ready)
        });
    Ok(if model.checking {
        Action::requeue(REQUEUE_MODEL_CHECK)
    } else if servers_settling {
        Action::requeue(bot_report::REFRESH)
    } else if model.ready != Some(true) {
        Action::requeue(REQUEUE_MODEL_RETRY)
    } else {
        Action::requeue(REQUEUE_IDLE)
    })
}

/// The BotDeployment as the owner of its children.
fn owner(bd: &BotDeployment) -> Result<Owner, Error> {
    Ok(Owner {
        name: bd.name_any(),
        namespace: bd.namespace().ok_or(Error::MissingObjectKey("namespace"))?,
        reference: bd
            .controller_owner_ref(&())
            .ok_or(Error::MissingObjectKey("uid"))?,
    })
}

async fn apply_children(
    bd: &BotDeployment,
    ctx: &Context,
    bds: &Api<BotDeployment>,
    owner: &Owner,
    children: &Children,
) -> Result<apply::Applied, Error> {
    let uid = &owner.reference.uid;
    match apply::apply(&ctx.client, &owner.namespace, uid, children, &ctx.discovery).await {
        Ok(applied) => {
            ctx.metrics.set_children(&key(bd), applied.counts.clone());
            Ok(applied)
        }
        Err(e) => {
            // An API server refusal (422, 403) is something a person must fix: say so in status.
            if let Error::Apply {
                source: kube::Error::Api(s),
                ..
            } = &e
                && matches!(s.code, 403 | 422)
            {
                let _ = report_invalid(bd, ctx, bds, "ApplyRejected", &e.to_string()).await;
            }
            Err(e)
        }
    }
}

async fn write_status(
    bd: &BotDeployment,
    ctx: &Context,
    bds: &Api<BotDeployment>,
    observed: &Observed<'_>,
) -> Result<(), Error> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let current = ctx.current_status(bd);
    let new_status = status::observed_status(current.as_ref(), observed, &now);
    let newly_degraded = status::current_degraded_message(Some(&new_status))
        .filter(|m| status::current_degraded_message(current.as_ref()) != Some(*m))
        .map(str::to_string);
    ctx.write_status_if_changed(bds, bd, current.as_ref(), &new_status)
        .await?;
    if let Some(message) = newly_degraded {
        let reason = new_status
            .conditions
            .iter()
            .find(|c| c.type_ == status::DEGRADED)
            .map_or("Degraded", |c| c.reason.as_str());
        publish(ctx, bd, EventType::Warning, reason, &message).await?;
    }
    let monitoring_down = |s: Option<&BotDeploymentStatus>| {
        s.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == status::MONITORING_READY && c.status == "False")
        })
    };
    if monitoring_down(Some(&new_status)) && !monitoring_down(current.as_ref()) {
        let reason = status::SERVICE_MONITOR_UNAVAILABLE;
        publish(
            ctx,
            bd,
            EventType::Warning,
            reason,
            status::SERVICE_MONITOR_ADVICE,
        )
        .await?;
    }
    Ok(())
}

fn model_request(ctx: &Context, bot: &ValidatedBot<'_>) -> CheckRequest {
    CheckRequest {
        base_url: ctx
            .options
            .ollama_url_override
            .clone()
            .unwrap_or_else(|| bot.ollama_url.clone()),
        models: bot.checked_models.clone(),
        pull: bot.managed_ollama.is_some(),
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
    let current = ctx.current_status(bd);
    let new_status = status::failed_status(
        current.as_ref(),
        bd.metadata.generation,
        reason,
        message,
        &now,
    );
    let is_new = status::current_degraded_message(current.as_ref()) != Some(message);
    ctx.write_status_if_changed(bds, bd, current.as_ref(), &new_status)
        .await?;
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

/// The pods of the bot and of its managed Ollama (both carry the instance label).
async fn list_pods(client: &Client, ns: &str, name: &str) -> Result<(Vec<Pod>, Vec<Pod>), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "{INSTANCE}={name},{MANAGED_BY}={MANAGED_BY_VALUE}"
    ));
    let pods = api.list(&lp).await.map_err(Error::ListPods)?.items;
    Ok(pods
        .into_iter()
        .partition(|p| p.labels().get(NAME).map(String::as_str) == Some(BOT_APP)))
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

#[cfg(test)]
mod tests;
