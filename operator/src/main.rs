//! `ollama-mcp-operator`: `run` the controller, print the `crd`, or print the `presets` table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use ollama_mcp_bot::shutdown::shutdown_signal;
use ollama_mcp_bot::telemetry;
use ollama_mcp_operator::controller::{self, Context, ControllerOptions};
use ollama_mcp_operator::http::{self, HttpState};
use ollama_mcp_operator::leader::{LeaseLock, LeaseTiming};
use ollama_mcp_operator::metrics::Metrics;
use ollama_mcp_operator::{crd_yaml, presets, startup};

#[derive(Parser)]
#[command(
    name = "ollama-mcp-operator",
    version,
    about = "Runs ollama-mcp Discord bots from BotDeployment resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print the BotDeployment CustomResourceDefinition as YAML.
    Crd,
    /// Print the MCP server presets as a Markdown table.
    Presets,
    /// Print the BotDeployment API reference (from the CRD's schema) as Markdown.
    ApiReference,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Bot image for BotDeployments that do not name one.
    #[arg(long, env = "BOT_IMAGE")]
    bot_image: Option<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Take part in leader election on a Lease in $POD_NAMESPACE; only the leader reconciles.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "ollama-mcp-operator")]
    lease_name: String,
    /// BotDeployments reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = controller::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Check models against this Ollama URL instead of the BotDeployment's (for an operator run
    /// outside the cluster, which cannot resolve in-cluster Service names).
    #[arg(long, env = "OLLAMA_URL_OVERRIDE")]
    ollama_url_override: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube and reqwest both use rustls; the process-wide provider must be chosen first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Crd => print(&crd_yaml()),
        Command::Presets => print(&presets::markdown_table()),
        Command::ApiReference => print(&ollama_mcp_operator::api_reference()),
        Command::Run(args) => run(args).await?,
    }
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "the crd and presets commands print their output"
)]
fn print(text: &str) {
    print!("{text}");
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Logs on stderr; OpenTelemetry traces when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let format = match args.log_format {
        LogFormat::Text => telemetry::LogFormat::Text,
        LogFormat::Json => telemetry::LogFormat::Json,
    };
    let _telemetry = telemetry::init("ollama-mcp-operator", format, "info,kube=warn")
        .context("setting up logging and tracing")?;
    let client = Client::try_default().await.context(
        "connecting to the Kubernetes API (in a pod: its service account; outside: $KUBECONFIG)",
    )?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        HttpState {
            metrics: Arc::clone(&metrics),
            ready: Arc::clone(&ready),
        },
        stopped(stop_rx.clone()),
    ));

    let options = ControllerOptions {
        bot_image: args.bot_image.filter(|i| !i.trim().is_empty()),
        ollama_url_override: args.ollama_url_override,
        instance: std::env::var("POD_NAME").ok(),
        concurrency: args.concurrency,
        ..Default::default()
    };
    if options.bot_image.is_none() {
        tracing::warn!("no --bot-image: BotDeployments must name spec.image");
    }
    let ctx = Arc::new(Context::new(client.clone(), options, Arc::clone(&metrics)));

    // Without the CRD every watch fails in a quiet backoff loop: say so, stay not ready, wait.
    tokio::select! {
        () = startup::wait_for_crd(&client, startup::CRD_RECHECK) => {}
        () = stopped(stop_rx.clone()) => return finish(server).await,
    }

    if args.leader_elect {
        let ns = std::env::var("POD_NAMESPACE")
            .context("--leader-elect needs POD_NAMESPACE (the namespace of the Lease; set it from the downward API)")?;
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("ollama-mcp-operator-{}", std::process::id()));
        let mut lock = LeaseLock::new(
            Api::<Lease>::namespaced(client, &ns),
            &args.lease_name,
            &identity,
            LeaseTiming::default(),
        );
        // A standby replica is healthy and ready; it just does not reconcile.
        ready.store(true, Ordering::Relaxed);
        tokio::select! {
            () = lock.acquire() => {}
            () = stopped(stop_rx.clone()) => return finish(server).await,
        }
        metrics.leader.set(1);
        tokio::select! {
            () = controller::run(ctx, args.namespace, stopped(stop_rx.clone())) => {
                if let Err(e) = lock.release().await {
                    tracing::warn!(error = %e, "releasing the leader Lease failed");
                }
            }
            () = lock.keep_renewing() => {
                metrics.leader.set(0);
                // Another replica may be reconciling already: stop at once and let the pod restart.
                anyhow::bail!("lost the leader Lease `{}`; exiting so that only one replica reconciles", args.lease_name);
            }
            () = past_grace(stop_rx.clone()) => {}
        }
    } else {
        ready.store(true, Ordering::Relaxed);
        tokio::select! {
            () = controller::run(ctx, args.namespace, stopped(stop_rx.clone())) => {}
            () = past_grace(stop_rx.clone()) => {}
        }
    }
    finish(server).await
}

/// How long reconciles in flight may finish after the shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves `SHUTDOWN_GRACE` after the shutdown signal: the process exits then whatever the
/// controller is doing (a watch in backoff, a slow API server).
async fn past_grace(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
    tracing::warn!(
        "reconciles did not finish within {}s of the shutdown signal; exiting",
        SHUTDOWN_GRACE.as_secs()
    );
}

async fn finish(server: tokio::task::JoinHandle<std::io::Result<()>>) -> anyhow::Result<()> {
    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")
}
