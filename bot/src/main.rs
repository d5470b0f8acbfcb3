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
use ollama_mcp_bot::store::Store;
use ollama_mcp_bot::{bridge, discord, metrics, terminal};

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
    },
    /// Serve one stdio MCP server as streamable HTTP at /mcp (the operator's sidecars use this).
    Bridge {
        #[arg(long, default_value_t = 8000)]
        port: u16,
        #[arg(long, default_value = "0.0.0.0")]
        host: std::net::IpAddr,
        /// The MCP server's command and arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Validate the configuration and print it (it holds no secrets; their sources are listed).
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
        Command::Chat { .. } => tokio::runtime::Builder::new_current_thread()
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
    runtime.block_on(async move {
        match cli.command {
            Command::CheckConfig { config } => check_config(config),
            Command::Chat {
                config,
                model,
                session,
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
                report(chat(config, model, session).await)
            }
            Command::Run { config } => {
                let Some(config) = load_config(config) else {
                    return ExitCode::from(EXIT_CONFIG);
                };
                let _telemetry = init_logging(&config, "ollama-mcp-bot");
                report(run(config).await)
            }
            Command::Bridge {
                port,
                host,
                command,
            } => {
                let _telemetry = init_logging(&BotConfig::default(), "ollama-mcp-bridge");
                report(run_bridge(SocketAddr::new(host, port), command).await)
            }
        }
    })
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
    println!("# secrets are never part of it; their sources:");
    for var in ["DISCORD_TOKEN", "DISCORD_TOKEN_FILE"] {
        let state = match std::env::var_os(var) {
            Some(v) if var.ends_with("_FILE") => format!("set ({})", PathBuf::from(v).display()),
            Some(_) => "set (redacted)".to_string(),
            None => "not set".to_string(),
        };
        println!("#   {var}: {state}");
    }
    for server in &config.mcp.servers {
        for (header, var) in &server.headers_env {
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
    print!("{}", config.to_toml());
    ExitCode::SUCCESS
}

fn init_logging(
    config: &BotConfig,
    service: &str,
) -> Option<ollama_mcp_bot::telemetry::TelemetryGuard> {
    let format = config.log.format.parse().unwrap_or_default();
    match ollama_mcp_bot::telemetry::init(service, format, &config.log.filter) {
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

async fn chat(
    config: BotConfig,
    model: Option<String>,
    session: String,
) -> anyhow::Result<ExitCode> {
    let (engine, hub) = start_engine(&config).await?;
    let ok = tokio::select! {
        ok = terminal::run(engine, hub.clone(), terminal::ChatOptions { session, model }) => ok,
        _ = tokio::signal::ctrl_c() => true,
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
    if !config.metrics.listen.is_empty() {
        let (addr, ready) = (config.metrics.listen.clone(), ready.clone());
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding the metrics server to {addr} (metrics.listen)"))?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics::router(ready)).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    let (engine, hub) = start_engine(&config).await?;
    let result = tokio::select! {
        result = discord::run(config, engine, hub.clone(), ready) => result,
        _ = shutdown_signal() => Ok(()),
    };
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

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn run_bridge(listen: SocketAddr, command: Vec<String>) -> anyhow::Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .context("bridge needs the MCP server's command after `--`")?;
    bridge::serve(listen, program.clone(), args.to_vec(), shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
