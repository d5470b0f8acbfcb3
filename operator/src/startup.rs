//! Before the controller starts: the BotDeployment CRD must be served, or every watch fails
//! quietly in a backoff loop. The operator says what is missing at error level, stays not ready,
//! and checks again until the CRD appears or it is told to stop.

use std::time::{Duration, Instant};

use kube::Client;

/// How often the CRD check repeats while it is missing.
pub const CRD_RECHECK: Duration = Duration::from_secs(10);
/// The missing-CRD error is repeated at most this often.
const CRD_REPEAT_ERROR: Duration = Duration::from_secs(60);

const GROUP_VERSION: &str = "ollama-mcp.io/v1alpha1";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "the BotDeployment CRD (botdeployments.ollama-mcp.io, {GROUP_VERSION}) is not installed: \
         install it with `kubectl apply -f crds/botdeployments.ollama-mcp.io.yaml` (or \
         `kubectl apply -k manifests/install`, or the Helm chart with crds.create=true); \
         the operator checks again every {}s and stays not ready until then",
        CRD_RECHECK.as_secs()
    )]
    CrdMissing,
    #[error("asking the API server whether it serves BotDeployments: {0}")]
    Discovery(kube::Error),
}

/// Whether the API server serves BotDeployments (discovery: no RBAC needed).
pub async fn crd_served(client: &Client) -> Result<(), StartupError> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) if list.resources.iter().any(|r| r.name == "botdeployments") => Ok(()),
        Ok(_) => Err(StartupError::CrdMissing),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(StartupError::CrdMissing),
        Err(e) => Err(StartupError::Discovery(e)),
    }
}

/// Waits until the CRD is served, checking every `every`; each failure is logged (at most once
/// a minute while it stays the same). Cancel it by dropping the future (e.g. in a `select!`
/// with the shutdown signal).
pub async fn wait_for_crd(client: &Client, every: Duration) {
    let mut last_logged: Option<(Instant, String)> = None;
    loop {
        match crd_served(client).await {
            Ok(()) => {
                if last_logged.is_some() {
                    tracing::info!(
                        "the BotDeployment CRD is installed now; starting the controller"
                    );
                }
                return;
            }
            Err(e) => {
                let text = e.to_string();
                let repeat = last_logged
                    .as_ref()
                    .is_none_or(|(at, t)| *t != text || at.elapsed() >= CRD_REPEAT_ERROR);
                if repeat {
                    tracing::error!(error = %text, "cannot start the controller");
                    last_logged = Some((Instant::now(), text));
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
