//! Logs and traces for both binaries: a `tracing` subscriber that writes text or JSON to stderr
//! Over 450 lines: 220 of them are its unit tests of the subscriber and OTLP settings.
//! (stdout belongs to the chat CLI), plus OpenTelemetry traces over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! The exporter honours the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`grpc`, the default here, or `http/protobuf`), `OTEL_SERVICE_NAME` (wins over the `service`
//! argument), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, timeouts.
//!
//! The operator uses this module too, through the crate's `telemetry` feature.

use std::io::IsTerminal as _;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How long dropping the guard may wait for the last spans to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::config::LogFormat;

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(TelemetryError::UnknownFormat(s.to_string())),
        }
    }
}

/// The OTLP wire protocol, from `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC (port 4317 by convention); needs a Tokio runtime when [`init`] runs.
    #[default]
    Grpc,
    /// HTTP with binary protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl FromStr for OtlpProtocol {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(TelemetryError::UnknownProtocol(other.to_string())),
        }
    }
}

/// Where traces go; `None` from [`OtlpSettings::from_env`] when no endpoint is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector endpoint, e.g. `http://otel-collector.monitoring:4317`. For HTTP this is the
    /// base URL: `/v1/traces` is appended as the OpenTelemetry specification says.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
}

impl OtlpSettings {
    /// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` and
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn from_env() -> Result<Option<Self>, TelemetryError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Self::from_env`], with the variables read through `get` (testable without touching
    /// the process environment).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TelemetryError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let (endpoint, signal_specific) = match non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(e) => (e, true),
            None => match non_empty("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(e) => (e, false),
                None => return Ok(None),
            },
        };
        let protocol = match non_empty("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| non_empty("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Some(p) => p.parse()?,
            None => OtlpProtocol::default(),
        };
        let endpoint = match (protocol, signal_specific) {
            // The generic endpoint is a base URL; the traces endpoint is used as is (OTel spec).
            (OtlpProtocol::HttpProtobuf, false) => {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            }
            _ => endpoint,
        };
        Ok(Some(Self { endpoint, protocol }))
    }
}

/// Why telemetry could not start. Each variant names the failed step.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("unknown log format `{0}`: use `text` or `json`")]
    UnknownFormat(String),
    #[error(
        "unknown OTLP protocol `{0}` in OTEL_EXPORTER_OTLP_PROTOCOL: use `grpc` or `http/protobuf`"
    )]
    UnknownProtocol(String),
    #[error(
        "invalid log filter in {source_name} (`{filter}`): {reason}; use e.g. `info,ollama_mcp_bot=debug`"
    )]
    Filter {
        source_name: &'static str,
        filter: String,
        reason: String,
    },
    #[error(
        "OTLP over gRPC needs a Tokio runtime: start telemetry inside the async runtime, or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
    )]
    NoRuntime,
    #[error("building the OTLP span exporter for {endpoint} failed: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error(
        "a global tracing subscriber is already installed; telemetry::init may run once per process"
    )]
    AlreadyInitialised,
}

/// Keeps the trace pipeline alive; dropping it flushes the spans still buffered and shuts the
/// exporter down. Hold it in `main` until the process ends.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// True when spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The batch processor runs on its own thread, so waiting here does not starve it.
            if let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                tracing::warn!(%error, "flushing traces at shutdown failed");
            }
        }
    }
}

/// Installs the process-wide subscriber: `format` lines on stderr filtered by `RUST_LOG` when set
/// (else by `filter`), and OTLP trace export when the OpenTelemetry endpoint variables are set.
/// A second call returns [`TelemetryError::AlreadyInitialised`].
pub fn init(
    service: &str,
    format: LogFormat,
    filter: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = env_filter(std::env::var("RUST_LOG").ok().as_deref(), filter)?;
    let settings = OtlpSettings::from_env()?;
    let provider = match &settings {
        Some(settings) => Some(tracer_provider(service, settings)?),
        None => None,
    };
    let guard = TelemetryGuard { provider };
    subscriber(format, filter, guard.provider.as_ref(), service)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    if let Some(settings) = settings {
        // W3C trace context, so that spans can be continued across HTTP calls.
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing::info!(endpoint = %settings.endpoint, protocol = ?settings.protocol, "exporting traces over OTLP");
    }
    Ok(guard)
}

/// The filter: `rust_log` (the `RUST_LOG` value) wins when set and non-empty, else `fallback`.
pub fn env_filter(rust_log: Option<&str>, fallback: &str) -> Result<EnvFilter, TelemetryError> {
    let (source_name, text) = match rust_log.filter(|v| !v.trim().is_empty()) {
        Some(v) => ("RUST_LOG", v),
        None => ("the log filter setting", fallback),
    };
    let filter = EnvFilter::builder()
        .parse(text)
        .map_err(|e| TelemetryError::Filter {
            source_name,
            filter: text.to_string(),
            reason: e.to_string(),
        })?;
    Ok(cap_secret_bearing_targets(filter))
}

/// WebSocket libraries log every frame's payload at trace level, and the Discord gateway's
/// IDENTIFY and RESUME frames carry the bot token: those targets never go below debug, whatever
/// `RUST_LOG` says (later directives for the same target win).
fn cap_secret_bearing_targets(mut filter: EnvFilter) -> EnvFilter {
    for target in ["tungstenite", "tokio_tungstenite"] {
        if let Ok(directive) = format!("{target}=debug").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// A tracer provider that batches spans to the OTLP collector in `settings`.
pub fn tracer_provider(
    service: &str,
    settings: &OtlpSettings,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter_error = |e: opentelemetry_otlp::ExporterBuildError| TelemetryError::Exporter {
        endpoint: settings.endpoint.clone(),
        reason: e.to_string(),
    };
    // reqwest and tonic are built without a default rustls provider; a process that exports
    // before installing one would see its HTTP client thread panic. Installing twice is harmless.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let exporter = match settings.protocol {
        OtlpProtocol::Grpc => {
            // tonic spawns its connection task on the current runtime.
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(TelemetryError::NoRuntime);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.clone())
                .build()
                .map_err(exporter_error)?
        }
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .build()
            .map_err(exporter_error)?,
    };
    let mut resource = Resource::builder();
    // OTEL_SERVICE_NAME (read by the default detectors) wins over the binary's own name.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build())
}

/// The subscriber [`init`] installs, built without installing it (tests use it with
/// `tracing::subscriber::with_default`).
pub fn subscriber(
    format: LogFormat,
    filter: EnvFilter,
    provider: Option<&SdkTracerProvider>,
    service: &str,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> {
    let fmt_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            // Colour codes only for a person at a terminal, never into collected logs.
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let otel_layer =
        provider.map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_string())));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn formats_parse_and_print() {
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!(" JSON ".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::default(), LogFormat::Text);
        assert_eq!(LogFormat::Json.to_string(), "json");
        let err = "yaml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(
            err.contains("`yaml`") && err.contains("`text` or `json`"),
            "{err}"
        );
    }

    #[test]
    fn websocket_frames_never_log_at_trace() {
        let f = env_filter(Some("trace,tungstenite=trace"), "info")
            .unwrap()
            .to_string();
        assert!(
            f.contains("tungstenite=debug") && f.contains("tokio_tungstenite=debug"),
            "{f}"
        );
        assert!(!f.contains("tungstenite=trace"), "{f}");
    }

    #[test]
    fn rust_log_wins_over_the_setting_and_bad_filters_say_where() {
        let f = env_filter(Some("warn,ollama_mcp_bot=trace"), "info").unwrap();
        assert!(f.to_string().contains("ollama_mcp_bot=trace"), "{f}");
        let f = env_filter(Some("  "), "debug").unwrap();
        assert!(f.to_string().split(',').any(|d| d == "debug"), "{f}");
        let err = env_filter(Some("info,[[["), "info")
            .unwrap_err()
            .to_string();
        assert!(err.contains("RUST_LOG") && err.contains("[[["), "{err}");
        let err = env_filter(None, "=no=").unwrap_err().to_string();
        assert!(err.contains("log filter setting"), "{err}");
    }

    #[test]
    fn otlp_settings_follow_the_opentelemetry_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(OtlpSettings::from_lookup(env(&[])).unwrap(), None);
        assert_eq!(
            OtlpSettings::from_lookup(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])).unwrap(),
            None
        );
        let s = OtlpSettings::from_lookup(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]))
            .unwrap();
        assert_eq!(
            s,
            Some(OtlpSettings {
                endpoint: "http://c:4317".into(),
                protocol: OtlpProtocol::Grpc
            })
        );
        let s = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://c:4318/v1/traces");
        let s = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://c:4318/custom");
        let err = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("http/json") && err.contains("http/protobuf"),
            "{err}"
        );
    }

    #[test]
    fn grpc_without_a_runtime_is_an_error_not_a_panic() {
        let settings = OtlpSettings {
            endpoint: "http://127.0.0.1:4317".into(),
            protocol: OtlpProtocol::Grpc,
        };
        let err = tracer_provider("t", &settings).unwrap_err();
        assert!(matches!(err, TelemetryError::NoRuntime), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grpc_exporter_builds_inside_a_runtime() {
        let settings = OtlpSettings {
            endpoint: "http://127.0.0.1:4317".into(),
            protocol: OtlpProtocol::Grpc,
        };
        let provider = tracer_provider("t", &settings).unwrap();
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap()
            .unwrap();
    }

    /// The only test in this crate that installs the global subscriber.
    #[test]
    fn init_twice_is_an_error() {
        let first = init("ollama-mcp-bot-test", LogFormat::Json, "info");
        // Another test in this binary may have installed one first; the second call must fail anyway.
        let second = init("ollama-mcp-bot-test", LogFormat::Text, "info");
        assert!(
            matches!(second, Err(TelemetryError::AlreadyInitialised)),
            "second init: {:?}",
            second.err()
        );
        drop(first);
    }

    /// Spans reach a collector: a fake OTLP/HTTP endpoint on 127.0.0.1 decodes the protobuf body.
    #[cfg(feature = "runtime")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_exported_over_otlp_http() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message as _;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, bytes::Bytes)>();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
                let tx = tx.clone();
                async move {
                    let ct = headers
                        .get(axum::http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send((ct, body));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let settings = OtlpSettings {
            endpoint: format!("http://{addr}/v1/traces"),
            protocol: OtlpProtocol::HttpProtobuf,
        };
        let provider = tracer_provider("telemetry-test", &settings).unwrap();
        let sub = subscriber(
            LogFormat::Text,
            env_filter(None, "info").unwrap(),
            Some(&provider),
            "telemetry-test",
        );
        tracing::subscriber::with_default(sub, || {
            let outer = tracing::info_span!("conversation_turn", model = "llama3.2");
            let _entered = outer.enter();
            tracing::info_span!("tool_call", server = "memory")
                .in_scope(|| tracing::info!("calling"));
        });
        // Shutdown flushes the batch; it blocks, so keep it off the async workers.
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
        shutdown.await.unwrap().unwrap();

        let (content_type, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the collector got no export within 30 s")
            .unwrap();
        assert_eq!(content_type, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(body).expect("a valid OTLP protobuf body");
        let resource_spans = &request.resource_spans[0];
        let service = resource_spans
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        assert!(
            service.contains("telemetry-test"),
            "service.name: {service}"
        );
        let spans: Vec<_> = resource_spans
            .scope_spans
            .iter()
            .flat_map(|s| s.spans.iter())
            .collect();
        let turn = spans
            .iter()
            .find(|s| s.name == "conversation_turn")
            .expect("the outer span");
        let tool = spans
            .iter()
            .find(|s| s.name == "tool_call")
            .expect("the inner span");
        assert_eq!(
            tool.parent_span_id, turn.span_id,
            "tool_call is a child of conversation_turn"
        );
        assert_eq!(tool.trace_id, turn.trace_id);
    }
}
