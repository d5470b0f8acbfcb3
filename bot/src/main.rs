//! `ollama-mcp-bot`: run (Discord) | chat (terminal) | bridge (stdio MCP → HTTP) | check-config.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the CLI's edge: messages for the person at the terminal

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use ollama_mcp_bot::config::{self, BotConfig};
use ollama_mcp_bot::conversation::Engine;
use ollama_mcp_bot::llm::OllamaClient;
use ollama_mcp_bot::mcp::{HubOptions, McpHub};
use ollama_mcp_bot::store::{Retention, Store};
use ollama_mcp_bot::{bridge, discord, metrics, shutdown, terminal};

#[derive(Parser)]
#[command(
    name = "ollama-mcp-bot",
    version,
    about = "Chat through Ollama models with tools from MCP servers, in Discord or a terminal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Discord and answer there (token from DISCORD_TOKEN or DISCORD_TOKEN_FILE).
    Run {
        /// TOML configuration file (default: $OLLAMA_MCP_CONFIG, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Runtime worker threads: 1 (the default) runs everything on one thread, as cheap per
        /// message as more for a bot of a few guilds, with fewer threads to wake; more spread a
        /// busy bot over cores. SQLite always runs on threads of its own.
        #[arg(long, env = "OLLAMA_MCP_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        worker_threads: u16,
    },
    /// Chat in the terminal on the same engine. From a pipe, each line is one message.
    Chat {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Model for this run (must be allowed by ollama.models).
        #[arg(long, short)]
        model: Option<String>,
        /// Conversation to continue; history persists in the store under this id.
        #[arg(long, short, default_value = "terminal")]
        session: String,
        /// Run tools listed in `tools.require_approval` without asking (needed to run them at
        /// all when standard input is not a terminal).
        #[arg(long)]
        approve_all: bool,
    },
    /// Serve one stdio MCP server as streamable HTTP at /mcp (the operator's sidecars use this).
    Bridge {
        /// Port of /mcp (and /healthz).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Address of /mcp. Requests from a non-loopback peer are refused whatever it is.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Also serve /healthz, and nothing else, on this port on all interfaces (for probes).
        #[arg(long)]
        health_port: Option<u16>,
        /// The MCP server's command and arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Validate the configuration and print it (env and header values redacted; secret sources listed).
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Exit code for configuration errors, so scripts can tell them from runtime failures.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube/reqwest/rmcp share rustls 0.23; it needs one process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match &cli.command {
        // One person types into `chat`: a single-threaded runtime serves them with less CPU per
        // turn (no cross-thread wake-ups for every streamed chunk) and less memory (no worker
        // threads); docs/BENCHMARKS.md has the figures.
        Command::Chat { .. }
        | Command::Run {
            worker_threads: 1, ..
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        // Several workers only pay off for busy bots: for a small one they cost the same CPU
        // per message and more threads (docs/BENCHMARKS.md, Discord).
        Command::Run { worker_threads, .. } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(*worker_threads))
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::CheckConfig { config } => check_config(config),
            Command::Chat {
                config,
                model,
                session,
                approve_all,
            } => {
                let Some(config) = load_config(config) else {
                    return ExitCode::from(EXIT_CONFIG);
                };
                // The terminal is the chat's screen: only warnings unless asked for more.
                let mut quiet = config.clone();
                if quiet.log.filter == ollama_mcp_bot::config::LogConfig::default().filter {
                    quiet.log.filter = "warn".into();
                }
                let _telemetry = init_logging(&quiet, "ollama-mcp-bot-chat");
                let options = terminal::ChatOptions {
                    session,
                    model,
                    approve_all,
                };
                report(chat(config, options).await)
            }
            Command::Run { config, .. } => {
                let Some(config) = load_config(config) else {
                    return ExitCode::from(EXIT_CONFIG);
                };
                let _telemetry = init_logging(&config, "ollama-mcp-bot");
                report(run(config).await)
            }
            Command::Bridge {
                port,
                host,
                health_port,
                command,
            } => {
                let _telemetry = init_logging(&BotConfig::default(), "ollama-mcp-bridge");
                let health = health_port.map(|p| SocketAddr::new([0, 0, 0, 0].into(), p));
                report(run_bridge(SocketAddr::new(host, port), health, command).await)
            }
        }
    });
    // Do not wait for a blocking read of stdin (`chat`'s prompt) to finish: the work is done.
    runtime.shutdown_background();
    code
}

fn load_config(path: Option<PathBuf>) -> Option<BotConfig> {
    let path = config::config_path(path.as_deref());
    match BotConfig::load(path.as_deref()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    let Some(config) = load_config(path.clone()) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let source = config::config_path(path.as_deref()).map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    );
    println!("# effective configuration (from {source}, environment overrides applied)");
    println!(
        "# secrets are not shown: env and header values of MCP servers appear as <set, N chars>; sources:"
    );
    for var in ["DISCORD_TOKEN", "DISCORD_TOKEN_FILE"] {
        let state = match std::env::var_os(var) {
            Some(v) if var.ends_with("_FILE") => format!("set ({})", PathBuf::from(v).display()),
            Some(_) => "set (redacted)".to_string(),
            None => "not set".to_string(),
        };
        println!("#   {var}: {state}");
    }
    for server in &config.mcp.servers {
        let ollama_mcp_bot::config::McpTransport::Http(http) = &server.transport else {
            continue;
        };
        for (header, var) in &http.headers_env {
            let state = if std::env::var_os(var).is_some() {
                "set (redacted)"
            } else {
                "NOT SET"
            };
            println!(
                "#   {var} (header {header} of MCP server {}): {state}",
                server.name
            );
        }
    }
    print!("{}", config.to_toml_redacted());
    ExitCode::SUCCESS
}

fn init_logging(
    config: &BotConfig,
    service: &str,
) -> Option<ollama_mcp_bot::telemetry::TelemetryGuard> {
    match ollama_mcp_bot::telemetry::init(service, config.log.format, &config.log.filter) {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!("warning: logging set-up failed: {e}");
            None
        }
    }
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            // One readable line per cause; no backtrace for the user.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The parts every front end needs: the store, the model client, the MCP servers, the engine.
async fn start_engine(config: &BotConfig) -> anyhow::Result<(Engine, Arc<McpHub>)> {
    let store = Store::open(&config.store.path)?;
    // Detached: it prunes until the process ends.
    store.spawn_pruning(Retention::from_config(&config.store));
    let model = OllamaClient::new(&config.ollama).context("setting up the Ollama client")?;
    let hub = McpHub::start(
        &config.mcp.servers,
        HubOptions {
            max_result_chars: config.chat.max_tool_result_chars,
        },
    )
    .await;
    let engine = Engine::new(Arc::new(model), hub.clone(), store, config);
    Ok((engine, hub))
}

async fn chat(config: BotConfig, options: terminal::ChatOptions) -> anyhow::Result<ExitCode> {
    let (engine, hub) = start_engine(&config).await?;
    let shutdown = shutdown::on_signal();
    let ok = tokio::select! {
        ok = terminal::run(engine, hub.clone(), options) => ok,
        () = shutdown.cancelled() => true,
    };
    hub.shutdown().await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run(config: BotConfig) -> anyhow::Result<ExitCode> {
    let ready = metrics::Readiness::default();
    let status = metrics::StatusSource::default();
    if !config.metrics.listen.is_empty() {
        let (addr, ready, status) = (config.metrics.listen.clone(), ready.clone(), status.clone());
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding the metrics server to {addr} (metrics.listen)"))?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics::router(ready, status)).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    let shutdown = shutdown::on_signal();
    let (engine, hub) = start_engine(&config).await?;
    status.set_mcp({
        let hub = hub.clone();
        move || hub.report()
    });
    // discord::run owns the order of shutdown: the gateway closes, then the MCP servers stop.
    let result = discord::run(config, engine, hub.clone(), ready, shutdown).await;
    hub.shutdown().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // Configuration problems (a bad token, missing intents) get their own exit code so
            // that a crash loop is recognisable; the message says what to fix.
            eprintln!("error: {e}");
            Ok(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)))
        }
    }
}

async fn run_bridge(
    listen: SocketAddr,
    health: Option<SocketAddr>,
    command: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .context("bridge needs the MCP server's command after `--`")?;
    let mut options = bridge::BridgeArgs::new(listen, program.clone(), args.to_vec());
    options.health_listen = health;
    bridge::serve_with(options, shutdown::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
