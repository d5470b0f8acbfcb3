//! The operator's Prometheus metrics (`ollama_mcp_operator_*`). Labels are bounded: error
//! reasons are the failed step's name, kinds are Kubernetes kinds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    pub reconciliations: Counter,
    pub reconcile_errors: Family<ReasonLabels, Counter>,
    pub reconcile_duration: Histogram,
    /// Children applied, by kind, summed over every BotDeployment.
    pub managed_objects: Family<KindLabels, Gauge>,
    pub bot_deployments: Gauge,
    pub invalid_specs: Counter,
    pub leader: Gauge,
    pub registry: Registry,
    /// Per BotDeployment: the children counts last applied (to keep `managed_objects` a sum).
    per_object: Mutex<HashMap<String, Vec<(&'static str, i64)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ollama_mcp_operator");
        let m = Self {
            reconciliations: Counter::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            managed_objects: Family::default(),
            bot_deployments: Gauge::default(),
            invalid_specs: Counter::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
            per_object: Mutex::default(),
        };
        registry.register(
            "reconciliations",
            "Reconciliations of BotDeployments",
            m.reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciliations by the step that failed",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconciliation took",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "managed_objects",
            "Objects the operator keeps, by kind",
            m.managed_objects.clone(),
        );
        registry.register(
            "bot_deployments",
            "BotDeployments the operator keeps",
            m.bot_deployments.clone(),
        );
        registry.register(
            "invalid_specs",
            "Reconciliations that found an invalid spec",
            m.invalid_specs.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            m.leader.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Starts timing a reconciliation; the duration is recorded when the guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciliations.inc();
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records the children of one BotDeployment (empty when it is gone or invalid).
    pub fn set_children(&self, key: &str, counts: Vec<(&'static str, i64)>) {
        let mut per = self.per_object.lock().unwrap_or_else(|e| e.into_inner());
        if counts.is_empty() {
            per.remove(key);
        } else {
            per.insert(key.to_string(), counts);
        }
        let mut totals: HashMap<&'static str, i64> = crate::controller::apply::MANAGED_KINDS
            .iter()
            .map(|k| (*k, 0))
            .collect();
        for counts in per.values() {
            for (kind, n) in counts {
                *totals.entry(kind).or_default() += n;
            }
        }
        self.bot_deployments
            .set(i64::try_from(per.len()).unwrap_or(i64::MAX));
        for (kind, n) in totals {
            self.managed_objects
                .get_or_create(&KindLabels {
                    kind: kind.to_string(),
                })
                .set(n);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_prefixed_metrics() {
        let m = Metrics::default();
        drop(m.reconcile_started());
        m.reconcile_failed("apply");
        m.set_children("ns/a", vec![("Deployment", 1), ("ConfigMap", 1)]);
        m.set_children("ns/b", vec![("Deployment", 1)]);
        let text = m.encode();
        assert!(
            text.contains("ollama_mcp_operator_reconciliations_total 1"),
            "{text}"
        );
        assert!(
            text.contains("ollama_mcp_operator_reconcile_errors_total{reason=\"apply\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ollama_mcp_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("ollama_mcp_operator_managed_objects{kind=\"Deployment\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ollama_mcp_operator_bot_deployments 2"),
            "{text}"
        );
        m.set_children("ns/b", Vec::new());
        let text = m.encode();
        assert!(
            text.contains("ollama_mcp_operator_managed_objects{kind=\"Deployment\"} 1"),
            "{text}"
        );
    }
}
