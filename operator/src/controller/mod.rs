//! The BotDeployment controller: a thin `reconcile` that times itself and hands off to
//! validate (pure) → render (pure) → apply (server-side apply) → status.

pub mod apply;
pub mod bot_report;
mod context;
pub mod model_check;
pub mod problems;
pub mod render;
pub mod status;
pub mod validate;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, field};

pub use self::context::{Context, ControllerOptions};
use self::model_check::CheckRequest;
use self::render::Children;
use self::render::labels::{BOT_APP, INSTANCE, MANAGED_BY, MANAGED_BY_VALUE, NAME, Owner};
use self::status::Observed;
use self::validate::{SecretVersions, ValidatedBot};
pub use self::watch::{referencing, run};
use crate::crd::{BotDeployment, BotDeploymentStatus};

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

impl Context {
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

#[cfg(test)]
mod tests;
