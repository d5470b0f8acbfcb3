//! The bot's Prometheus metrics (`ollama_mcp_bot_*`) and the /metrics /healthz /readyz server.
//!
//! One process-wide registry: every part records through [`metrics()`]. Labels carry only bounded
//! values (model, server, tool, outcome, route class), never user ids, prompts or error text.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelOutcomeLabels {
    pub model: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub server: String,
    pub tool: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolTimeLabels {
    pub server: String,
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestLabels {
    /// A bounded route class: "create_message", "edit_message", "typing", "interaction", ...
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
}

fn fast_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ]
    .into_iter()
}

/// Every metric the bot exports.
pub struct Metrics {
    pub messages_received: Counter,
    pub messages: Family<OutcomeLabels, Counter>,
    pub queue_depth: Gauge,
    pub active_sessions: Gauge,
    pub model_requests: Family<ModelOutcomeLabels, Counter>,
    pub model_request_duration: Family<ModelLabels, Histogram>,
    pub time_to_first_token: Family<ModelLabels, Histogram>,
    pub prompt_tokens: Family<ModelLabels, Counter>,
    pub completion_tokens: Family<ModelLabels, Counter>,
    pub tokens_per_second: Family<ModelLabels, Histogram>,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub tool_call_duration: Family<ToolTimeLabels, Histogram>,
    pub mcp_server_up: Family<ServerLabels, Gauge>,
    pub mcp_server_restarts: Family<ServerLabels, Counter>,
    pub discord_requests: Family<RestLabels, Counter>,
    pub discord_rate_limited: Family<RouteLabels, Counter>,
    pub gateway_latency_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub gateway_reconnects: Counter,
    pub store_write_duration: Histogram,
    pub build_info: Family<Vec<(String, String)>, Gauge>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Self {
        Self {
            messages_received: Counter::default(),
            messages: Family::default(),
            queue_depth: Gauge::default(),
            active_sessions: Gauge::default(),
            model_requests: Family::default(),
            model_request_duration: Family::new_with_constructor(|| {
                Histogram::new(seconds_buckets())
            }),
            time_to_first_token: Family::new_with_constructor(|| Histogram::new(seconds_buckets())),
            prompt_tokens: Family::default(),
            completion_tokens: Family::default(),
            tokens_per_second: Family::new_with_constructor(|| {
                Histogram::new([1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0])
            }),
            tool_calls: Family::default(),
            tool_call_duration: Family::new_with_constructor(|| Histogram::new(seconds_buckets())),
            mcp_server_up: Family::default(),
            mcp_server_restarts: Family::default(),
            discord_requests: Family::default(),
            discord_rate_limited: Family::default(),
            gateway_latency_seconds: Gauge::default(),
            gateway_reconnects: Counter::default(),
            store_write_duration: Histogram::new(fast_buckets()),
            build_info: Family::default(),
            registry: Registry::with_prefix("ollama_mcp_bot"),
        }
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "messages_received",
            "Messages addressed to the bot",
            self.messages_received.clone(),
        );
        r.register(
            "messages",
            "Messages handled, by outcome (answered, refused, rate_limited, error)",
            self.messages.clone(),
        );
        r.register(
            "queue_depth",
            "Messages waiting for the model",
            self.queue_depth.clone(),
        );
        r.register(
            "active_sessions",
            "Sessions with a turn in the last hour",
            self.active_sessions.clone(),
        );
        r.register(
            "model_requests",
            "Model requests by model and outcome",
            self.model_requests.clone(),
        );
        r.register(
            "model_request_duration_seconds",
            "Whole model request time",
            self.model_request_duration.clone(),
        );
        r.register(
            "time_to_first_token_seconds",
            "Time from request to the first streamed token",
            self.time_to_first_token.clone(),
        );
        r.register(
            "prompt_tokens",
            "Prompt tokens, as Ollama counted them",
            self.prompt_tokens.clone(),
        );
        r.register(
            "completion_tokens",
            "Completion tokens, as Ollama counted them",
            self.completion_tokens.clone(),
        );
        r.register(
            "tokens_per_second",
            "Generation speed per model request",
            self.tokens_per_second.clone(),
        );
        r.register(
            "tool_calls",
            "Tool calls by server, tool and outcome",
            self.tool_calls.clone(),
        );
        r.register(
            "tool_call_duration_seconds",
            "Tool call time by server and tool",
            self.tool_call_duration.clone(),
        );
        r.register(
            "mcp_server_up",
            "1 when the MCP server is connected",
            self.mcp_server_up.clone(),
        );
        r.register(
            "mcp_server_restarts",
            "Restarts of crashed MCP servers",
            self.mcp_server_restarts.clone(),
        );
        r.register(
            "discord_requests",
            "Discord REST requests by route class and status",
            self.discord_requests.clone(),
        );
        r.register(
            "discord_rate_limited",
            "Discord 429 answers by route class",
            self.discord_rate_limited.clone(),
        );
        r.register(
            "gateway_latency_seconds",
            "Discord gateway heartbeat latency",
            self.gateway_latency_seconds.clone(),
        );
        r.register(
            "gateway_reconnects",
            "Discord gateway reconnects",
            self.gateway_reconnects.clone(),
        );
        r.register(
            "store_write_duration_seconds",
            "Time to persist one turn",
            self.store_write_duration.clone(),
        );
        r.register(
            "build_info",
            "Version of the running bot",
            self.build_info.clone(),
        );
        self.build_info
            .get_or_create(&vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )])
            .set(1);
        self
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("encoding metrics failed");
        }
        out
    }

    pub fn model(&self, model: &str) -> ModelLabels {
        ModelLabels {
            model: model.to_string(),
        }
    }

    pub fn record_message(&self, outcome: &str) {
        self.messages
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn record_tool_call(&self, server: &str, tool: &str, outcome: &str, duration: Duration) {
        self.tool_calls
            .get_or_create(&ToolLabels {
                server: server.into(),
                tool: tool.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.tool_call_duration
            .get_or_create(&ToolTimeLabels {
                server: server.into(),
                tool: tool.into(),
            })
            .observe(duration.as_secs_f64());
    }

    pub fn set_server_up(&self, server: &str, up: bool) {
        self.mcp_server_up
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .set(i64::from(up));
    }

    pub fn record_discord_request(&self, route: &str, status: u16) {
        self.discord_requests
            .get_or_create(&RestLabels {
                route: route.into(),
                status: status.to_string(),
            })
            .inc();
        if status == 429 {
            self.discord_rate_limited
                .get_or_create(&RouteLabels {
                    route: route.into(),
                })
                .inc();
        }
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new().register())
}

/// Readiness as /readyz reports it; set by `run` once Discord and the MCP servers are up.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where `GET /status` reads the MCP servers from; set once the hub runs (empty before).
#[derive(Clone, Default)]
pub struct StatusSource(Arc<OnceLock<McpReporter>>);

type McpReporter = Box<dyn Fn() -> Vec<crate::status::McpServerReport> + Send + Sync>;

impl StatusSource {
    pub fn set_mcp(
        &self,
        report: impl Fn() -> Vec<crate::status::McpServerReport> + Send + Sync + 'static,
    ) {
        let _ = self.0.set(Box::new(report));
    }

    fn mcp(&self) -> Vec<crate::status::McpServerReport> {
        self.0.get().map(|f| f()).unwrap_or_default()
    }
}

/// The HTTP router: `/metrics`, `/healthz` (the process answers), `/readyz` (ready to serve),
/// `/status` (JSON: each MCP server's state and tools, for the operator).
pub fn router(ready: Readiness, status: StatusSource) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics().encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/status",
            get({
                let ready = ready.clone();
                move || {
                    let report = crate::status::BotStatus {
                        ready: ready.get(),
                        mcp_servers: status.mcp(),
                    };
                    async move { axum::Json(report) }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.get() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
}

/// Serves [`router`] on `addr` until the process ends.
pub async fn serve(addr: &str, ready: Readiness, status: StatusSource) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics server listening");
    axum::serve(listener, router(ready, status)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_prefix_and_eof() {
        let m = metrics();
        m.record_message("answered");
        m.record_tool_call("memory", "read_graph", "ok", Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains("ollama_mcp_bot_messages_total{outcome=\"answered\"}"),
            "{text}"
        );
        assert!(
            text.contains("ollama_mcp_bot_tool_call_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
