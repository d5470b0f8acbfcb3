//! What a person must fix in the running workloads, read from the bot's pods and from the
//! managed Ollama's Deployment and pods (a pod the API server refuses, e.g. for a missing
//! RuntimeClass, never exists: only the Deployment's `ReplicaFailure` condition says why).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

/// How every line about the managed Ollama starts.
pub const OLLAMA: &str = "the managed Ollama";

/// Problems `pods` report that a person must fix (bad image, missing Secret key, crash loop,
/// unschedulable), one line each; `who` names them (`the bot's pod`).
pub fn pod_problems(pods: &[Pod], who: &str) -> Vec<String> {
    const FATAL: &[&str] = &[
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "RunContainerError",
    ];
    let mut out = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let Some(status) = &pod.status else { continue };
        for cond in status.conditions.iter().flatten() {
            if cond.type_ == "PodScheduled"
                && cond.status == "False"
                && cond.reason.as_deref() == Some("Unschedulable")
            {
                out.push(format!(
                    "{who} cannot be scheduled: {}",
                    cond.message.as_deref().unwrap_or("no reason given")
                ));
            }
        }
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in all {
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
                && let Some(reason) = w.reason.as_deref().filter(|r| FATAL.contains(r))
            {
                let msg = w
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                out.push(format!("container `{}` is {reason}{msg}", cs.name));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Problems of the managed Ollama: its Deployment cannot create pods (`ReplicaFailure`: a
/// RuntimeClass or quota that does not exist...), made no progress for its deadline, or its pods
/// fail (unbound PVC, image that cannot be pulled, crash loop).
pub fn ollama_problems(deployment: Option<&Deployment>, pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    let conditions = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        let message = c.message.as_deref().unwrap_or("no reason given");
        if c.type_ == "ReplicaFailure" && c.status == "True" {
            out.push(format!("{OLLAMA}: its pod cannot be created: {message}"));
        }
        if c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        {
            out.push(format!(
                "{OLLAMA}: its Deployment made no progress: {message}"
            ));
        }
    }
    out.extend(
        pod_problems(pods, "its pod")
            .into_iter()
            .map(|p| format!("{OLLAMA}: {p}")),
    );
    out
}
