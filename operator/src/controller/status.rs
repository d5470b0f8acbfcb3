//! Status: conditions derived from what was applied, what the pods report and the model check,
//! written with server-side apply on the status subresource.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};

use super::model_check::ModelReport;
use super::render::{Children, sidecars::container_name};
use super::validate::{EndpointKind, McpEndpoint, ValidatedBot};
use super::{FIELD_MANAGER, problems};
use crate::crd::{BotDeployment, BotDeploymentStatus, McpServerStatus};
use ollama_mcp_bot::status::{BotStatus, McpServerReport, ServerStateName};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const MODEL_READY: &str = "ModelReady";
/// Only when `spec.metrics.serviceMonitor` is on: whether the ServiceMonitor could be created.
/// A missing optional integration is its own condition, never `Degraded`, so that it does not
/// hide the bot's and the model's state.
pub const MONITORING_READY: &str = "MonitoringReady";
/// Reason of `MonitoringReady=False` (and of its Warning event).
pub const SERVICE_MONITOR_UNAVAILABLE: &str = "ServiceMonitorUnavailable";
/// The message of `MonitoringReady=False`.
pub const SERVICE_MONITOR_ADVICE: &str = "spec.metrics.serviceMonitor is true but the ServiceMonitor CRD \
     (monitoring.coreos.com/v1) is not installed: install the Prometheus operator, or set \
     serviceMonitor to false and scrape the `<name>-metrics` Service another way";

/// What happened to the requested ServiceMonitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMonitorState {
    NotRequested,
    Applied,
    /// Requested, but the cluster has no ServiceMonitor CRD.
    CrdMissing,
}

/// Everything status is derived from after a successful apply.
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub bot: &'a ValidatedBot<'a>,
    pub children: &'a Children,
    /// The bot Deployment as the API server returned it from the apply (with its status).
    pub deployment: &'a Deployment,
    /// The bot's pods.
    pub pods: &'a [Pod],
    /// The managed Ollama's Deployment as apply returned it (with its status), and its pods.
    pub ollama_deployment: Option<&'a Deployment>,
    pub ollama_pods: &'a [Pod],
    pub model: &'a ModelReport,
    /// What the bot's Ready pod says about its MCP servers (`GET /status`), if read.
    pub report: Option<&'a BotStatus>,
    pub service_monitor: ServiceMonitorState,
}

/// A condition to set; the transition time is kept when the status does not change.
struct Cond<'a> {
    type_: &'a str,
    status: &'a str,
    reason: &'a str,
    message: String,
}

fn conditions(
    prev: Option<&BotDeploymentStatus>,
    generation: Option<i64>,
    now: &Time,
    conds: Vec<Cond<'_>>,
) -> Vec<Condition> {
    conds
        .into_iter()
        .map(|c| {
            let previous = prev.and_then(|p| p.conditions.iter().find(|x| x.type_ == c.type_));
            let last_transition_time = match previous {
                Some(p) if p.status == c.status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            // `kubectl describe` shows an empty message as a blank line: say at least the reason.
            let message = if c.message.trim().is_empty() {
                format!("{} is {} ({})", c.type_, c.status, c.reason)
            } else {
                c.message
            };
            Condition {
                type_: c.type_.into(),
                status: c.status.into(),
                reason: c.reason.into(),
                message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The model check's result as the status holds it (written by an earlier run of the
/// operator), if it covers exactly `models` and was a finished check (True or False).
pub fn known_model_state(
    status: Option<&BotDeploymentStatus>,
    models: &[String],
) -> Option<super::model_check::Known> {
    let status = status?;
    let c = status.conditions.iter().find(|c| c.type_ == MODEL_READY)?;
    let ready = match c.status.as_str() {
        "True" => true,
        "False" => false,
        _ => return None,
    };
    let names: Vec<&str> = status.models.iter().map(|m| m.name.as_str()).collect();
    (names == models.iter().map(String::as_str).collect::<Vec<_>>()).then(|| {
        super::model_check::Known {
            ready,
            reason: c.reason.clone(),
            message: c.message.clone(),
            models: status.models.clone(),
        }
    })
}

/// Whether the Deployment has rolled out its current spec and its pod is ready.
pub fn deployment_ready(d: &Deployment) -> bool {
    let Some(s) = &d.status else { return false };
    let rolled_out = match (s.observed_generation, d.metadata.generation) {
        (Some(observed), Some(generation)) => observed >= generation,
        _ => false,
    };
    rolled_out && s.updated_replicas.unwrap_or(0) >= 1 && s.ready_replicas.unwrap_or(0) >= 1
}

/// Whether container `name` (a sidecar, i.e. an init container) is ready in a live pod.
fn sidecar_ready(pods: &[Pod], name: &str) -> bool {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.init_container_statuses.iter().flatten())
        .any(|cs| cs.name == name && cs.ready)
}

/// The status after a successful apply.
pub fn observed_status(
    prev: Option<&BotDeploymentStatus>,
    o: &Observed<'_>,
    now: &Time,
) -> BotDeploymentStatus {
    let ready_replicas = o
        .deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let deploy_ready = deployment_ready(o.deployment);
    let mut problems = problems::pod_problems(o.pods, "the bot's pod");
    problems.extend(problems::ollama_problems(
        o.ollama_deployment,
        o.ollama_pods,
    ));

    let (degraded, degraded_reason, degraded_message) = if problems.is_empty() {
        (
            false,
            "AsExpected",
            "nothing needs a person's attention".to_string(),
        )
    } else if problems.iter().all(|p| p.starts_with(problems::OLLAMA)) {
        (true, "OllamaFailing", problems.join("; "))
    } else {
        (true, "PodFailing", problems.join("; "))
    };

    let model = o.model;
    let (model_status, model_reason) = match model.ready {
        None => ("Unknown", model.reason.as_str()),
        Some(true) => ("True", model.reason.as_str()),
        Some(false) => ("False", model.reason.as_str()),
    };

    let (ready, ready_reason, ready_message) = if degraded {
        (false, degraded_reason, degraded_message.clone())
    } else if model.ready == Some(false) {
        (false, "ModelNotReady", model.message.clone())
    } else if !deploy_ready {
        (
            false,
            "DeploymentNotReady",
            format!("waiting for the bot's pod to become ready ({ready_replicas}/1 ready)"),
        )
    } else if model.ready.is_none() {
        (false, "ModelNotReady", model.message.clone())
    } else {
        (
            true,
            "Ready",
            "the bot's pod is ready and its models can call tools".to_string(),
        )
    };

    let (progressing, progressing_reason, progressing_message) = if !deploy_ready {
        (
            true,
            "RollingOut",
            format!("the bot's Deployment is rolling out ({ready_replicas}/1 ready)"),
        )
    } else if model.checking && model.ready.is_none() {
        (true, "CheckingModels", model.message.clone())
    } else {
        (
            false,
            "Complete",
            "every child is applied and the bot's pod is available".to_string(),
        )
    };

    let bool_str = |b: bool| if b { "True" } else { "False" };
    let mut conds = vec![
        Cond {
            type_: READY,
            status: bool_str(ready),
            reason: ready_reason,
            message: ready_message,
        },
        Cond {
            type_: PROGRESSING,
            status: bool_str(progressing),
            reason: progressing_reason,
            message: progressing_message,
        },
        Cond {
            type_: DEGRADED,
            status: bool_str(degraded),
            reason: degraded_reason,
            message: degraded_message,
        },
        Cond {
            type_: MODEL_READY,
            status: model_status,
            reason: model_reason,
            message: model.message.clone(),
        },
    ];

    match o.service_monitor {
        ServiceMonitorState::NotRequested => {}
        ServiceMonitorState::Applied => conds.push(Cond {
            type_: MONITORING_READY,
            status: "True",
            reason: "ServiceMonitorApplied",
            message: "the ServiceMonitor for the bot's metrics is applied".into(),
        }),
        ServiceMonitorState::CrdMissing => conds.push(Cond {
            type_: MONITORING_READY,
            status: "False",
            reason: SERVICE_MONITOR_UNAVAILABLE,
            message: SERVICE_MONITOR_ADVICE.into(),
        }),
    }

    let mcp_servers = o
        .bot
        .endpoints
        .iter()
        .map(|e| {
            let previous = prev.and_then(|p| p.mcp_servers.iter().find(|s| s.name == e.name));
            let reported = o
                .report
                .and_then(|r| r.mcp_servers.iter().find(|s| s.name == e.name));
            server_status(e, o.pods, reported, previous)
        })
        .collect();

    BotDeploymentStatus {
        observed_generation: o.generation,
        conditions: conditions(prev, o.generation, now, conds),
        ready_replicas: Some(ready_replicas),
        mcp_servers,
        ollama_url: Some(o.bot.ollama_url.clone()),
        models: model.models.clone(),
        config_hash: Some(o.children.config_hash.clone()),
    }
}

/// One MCP server: how the bot reaches it, whether its sidecar and the bot's connection are up,
/// its tools as the bot reported them (the last known ones while no report comes), and what is
/// wrong when it is not ready.
pub(super) fn server_status(
    e: &McpEndpoint,
    pods: &[Pod],
    reported: Option<&McpServerReport>,
    previous: Option<&McpServerStatus>,
) -> McpServerStatus {
    let container = container_name(&e.name);
    let sidecar_up = match e.kind {
        EndpointKind::Remote => true,
        _ => sidecar_ready(pods, &container),
    };
    let connected = reported.is_none_or(|r| r.state == ServerStateName::Ready);
    let message = if !sidecar_up {
        Some(format!("the sidecar container `{container}` is not ready"))
    } else {
        reported.and_then(|r| {
            let why = r.last_error.as_deref().unwrap_or("no reason given");
            match r.state {
                ServerStateName::Ready => None,
                ServerStateName::Starting => Some("the bot is connecting to it".to_string()),
                ServerStateName::Restarting => Some(format!("restarting after: {why}")),
                ServerStateName::Failed => Some(format!("the bot could not start it: {why}")),
            }
        })
    };
    let tools = match reported {
        Some(r) if r.state == ServerStateName::Ready => r.tools.clone(),
        Some(_) => Vec::new(),
        None => previous.map(|p| p.tools.clone()).unwrap_or_default(),
    };
    McpServerStatus {
        name: e.name.clone(),
        transport: e.kind.transport().into(),
        url: Some(e.url.clone()),
        ready: sidecar_up && connected,
        tools,
        message,
    }
}

/// The status of a spec that cannot be applied: `Degraded` says what to fix; what was observed
/// before is kept.
pub fn failed_status(
    prev: Option<&BotDeploymentStatus>,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    now: &Time,
) -> BotDeploymentStatus {
    let mut status = prev.cloned().unwrap_or_default();
    let model = prev.and_then(|p| p.conditions.iter().find(|c| c.type_ == MODEL_READY));
    let conds = vec![
        Cond {
            type_: READY,
            status: "False",
            reason,
            message: message.to_string(),
        },
        Cond {
            type_: PROGRESSING,
            status: "False",
            reason,
            message: "waiting for the spec to be fixed".into(),
        },
        Cond {
            type_: DEGRADED,
            status: "True",
            reason,
            message: message.to_string(),
        },
        Cond {
            type_: MODEL_READY,
            status: model.map_or("Unknown", |c| c.status.as_str()),
            reason: model.map_or("NotChecked", |c| c.reason.as_str()),
            message: model.map_or_else(String::new, |c| c.message.clone()),
        },
    ];
    status.conditions = conditions(prev, generation, now, conds);
    status.observed_generation = generation;
    status
}

/// The Degraded message currently in status, if Degraded is True (events are published only
/// when it changes).
pub fn current_degraded_message(status: Option<&BotDeploymentStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == DEGRADED && c.status == "True")
        .map(|c| c.message.as_str())
}

/// Writes the status with server-side apply.
pub async fn patch(
    api: &Api<BotDeployment>,
    name: &str,
    status: &BotDeploymentStatus,
) -> kube::Result<()> {
    let body = serde_json::json!({
        "apiVersion": "ollama-mcp.io/v1alpha1",
        "kind": "BotDeployment",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
