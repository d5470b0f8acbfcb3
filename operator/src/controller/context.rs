//! The shared state of every reconciliation, and how the controller runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::apply::DiscoveryCache;
use super::bot_report;
use super::model_check::{CheckTiming, ModelChecker};
use crate::crd::BotDeploymentStatus;
use crate::metrics::Metrics;

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
    pub(super) discovery: DiscoveryCache,
    /// The status this process last wrote, per BotDeployment: fresher than the watch cache, which
    /// may not have seen the write yet (a status-only change never triggers a reconcile, so a
    /// write skipped against a stale copy would wait for the next requeue).
    written: Mutex<HashMap<String, BotDeploymentStatus>>,
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
            written: Mutex::default(),
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

    pub(super) fn written_status(&self) -> MutexGuard<'_, HashMap<String, BotDeploymentStatus>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }
}
