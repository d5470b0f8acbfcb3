//! The bridge's side of the child: one supervised rmcp client, restarted with backoff, whose
//! state the HTTP sessions and `/healthz` read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{ErrorData, ServerConfig};
use rmcp::service::{Peer, QuitReason, RoleClient, RoleServer, ServiceError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{BridgeArgs, downstream_info};
use crate::config::{McpServer, McpTransport, StdioServer};
use crate::mcp::connection::{self, Connection};

/// The supervised connection to the child.
#[derive(Clone)]
pub(super) struct Upstream {
    state: watch::Receiver<Arc<UpstreamState>>,
    /// Downstream sessions, told when the child's tools may have changed.
    pub(super) sessions: Arc<Mutex<Vec<Peer<RoleServer>>>>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    label: Arc<str>,
}

#[derive(Clone)]
pub(super) struct UpstreamState {
    peer: Option<Peer<RoleClient>>,
    pub(super) info: Option<ServerConfig>,
    /// Why the child is down, as a predicate ("crashed (it exited)"); `None` while it is up or
    /// still starting for the first time.
    down: Option<String>,
}

impl Upstream {
    pub(super) fn start(args: &BridgeArgs, stop: CancellationToken) -> Upstream {
        let config = McpServer {
            name: args
                .command
                .rsplit('/')
                .next()
                .unwrap_or(&args.command)
                .to_string(),
            transport: McpTransport::Stdio(StdioServer {
                command: args.command.clone(),
                args: args.args.clone(),
                env: args.env.clone(),
                // A sidecar's environment is made for its server (Secrets mapped for it): the
                // child inherits all of it. The bot's own token never reaches a sidecar.
                env_inherit: std::env::vars_os()
                    .filter_map(|(name, _)| name.into_string().ok())
                    .collect(),
                cwd: None,
            }),
            tools: Default::default(),
            call_timeout: McpServer::DEFAULT_CALL_TIMEOUT,
            startup_timeout: args.startup_timeout.max(Duration::from_secs(1)),
        };
        let full = std::iter::once(args.command.as_str())
            .chain(args.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        // Quoted in every error message: long wrapper scripts are cut.
        let label: Arc<str> = match full.char_indices().nth(80) {
            Some((cut, _)) => format!("{} …", &full[..cut]).into(),
            None => full.into(),
        };
        let (tx, rx) = watch::channel(Arc::new(UpstreamState {
            peer: None,
            info: None,
            down: None,
        }));
        let upstream = Upstream {
            state: rx,
            sessions: Arc::new(Mutex::new(Vec::new())),
            task: Arc::new(Mutex::new(None)),
            label,
        };
        let task = tokio::spawn(supervise(config, tx, upstream.clone(), stop));
        if let Ok(mut slot) = upstream.task.lock() {
            *slot = Some(task);
        }
        upstream
    }

    pub(super) fn snapshot(&self) -> Arc<UpstreamState> {
        self.state.borrow().clone()
    }

    pub(super) fn healthz(&self) -> (axum::http::StatusCode, String) {
        let state = self.snapshot();
        match (&state.peer, &state.down) {
            (Some(_), _) => (axum::http::StatusCode::OK, "ok".into()),
            (None, Some(why)) => (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("MCP server down: it {why}"),
            ),
            (None, None) => (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "MCP server starting".into(),
            ),
        }
    }

    /// The child's client, or the JSON-RPC error to answer with.
    pub(super) fn peer(&self) -> Result<Peer<RoleClient>, ErrorData> {
        let state = self.snapshot();
        match (&state.peer, &state.down) {
            (Some(peer), _) => Ok(peer.clone()),
            (None, Some(why)) => Err(ErrorData::internal_error(
                format!(
                    "the MCP server `{}` {why}; the bridge is restarting it, retry in a few seconds",
                    self.label
                ),
                None,
            )),
            (None, None) => Err(ErrorData::internal_error(
                format!(
                    "the MCP server `{}` is still starting; retry in a few seconds",
                    self.label
                ),
                None,
            )),
        }
    }

    /// Waits up to `timeout` for the child to be up (initialize waits; other requests do not).
    pub(super) async fn ready_info(&self, timeout: Duration) -> Result<ServerConfig, ErrorData> {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| s.peer.is_some())).await;
        match waited {
            Ok(Ok(state)) => Ok(state.info.clone().unwrap_or_default()),
            _ => self.peer().map(|_| ServerConfig::default()),
        }
    }

    /// Maps a failed forward to the JSON-RPC error the downstream client gets.
    pub(super) fn forward_error(&self, e: ServiceError) -> ErrorData {
        match e {
            // The child's own protocol error goes through unchanged.
            ServiceError::McpError(e) => e,
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                ErrorData::internal_error(
                    format!(
                        "the MCP server `{}` crashed during the request; the bridge is restarting it, retry in a few seconds",
                        self.label
                    ),
                    None,
                )
            }
            other => ErrorData::internal_error(
                format!("forwarding to `{}` failed: {other}", self.label),
                None,
            ),
        }
    }

    async fn notify_tools_changed(&self) {
        let sessions: Vec<Peer<RoleServer>> = match self.sessions.lock() {
            Ok(mut s) => {
                s.retain(|p| !p.is_transport_closed());
                s.clone()
            }
            Err(_) => Vec::new(),
        };
        for peer in sessions {
            let _ = peer.notify_tool_list_changed().await;
        }
    }

    pub(super) async fn stopped(&self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Keeps the child running until `stop`; publishes its client and info.
async fn supervise(
    config: McpServer,
    tx: watch::Sender<Arc<UpstreamState>>,
    upstream: Upstream,
    stop: CancellationToken,
) {
    let key = "bridge";
    let mut attempt: u32 = 0;
    let mut restarted = false;
    let mut ever_up = false;
    loop {
        let connected = tokio::select! {
            r = connection::connect(&config, key) => r,
            _ = stop.cancelled() => return,
        };
        let why = match connected {
            Ok(Connection {
                client,
                tools_changed,
                stderr,
                pid,
            }) => {
                let peer = client.peer().clone();
                let info = peer.peer_info().map(|i| downstream_info(&i));
                tracing::info!(command = %upstream.label, pid, "bridge: MCP server ready");
                tx.send_replace(Arc::new(UpstreamState {
                    peer: Some(peer),
                    info,
                    down: None,
                }));
                if restarted {
                    upstream.notify_tools_changed().await;
                }
                let cancel = client.cancellation_token();
                let mut waiting = std::pin::pin!(client.waiting());
                let started = tokio::time::Instant::now();
                let quit = loop {
                    tokio::select! {
                        q = &mut waiting => break Some(q),
                        _ = tools_changed.notified() => upstream.notify_tools_changed().await,
                        _ = stop.cancelled() => {
                            cancel.cancel();
                            let _ = tokio::time::timeout(Duration::from_secs(15), &mut waiting).await;
                            break None;
                        }
                    }
                };
                let Some(quit) = quit else { return };
                if started.elapsed() >= Duration::from_secs(60) {
                    attempt = 0;
                }
                ever_up = true;
                match quit {
                    Ok(QuitReason::Closed) => format!("crashed (it exited{})", stderr.suffix()),
                    Ok(other) => format!("stopped ({other:?})"),
                    Err(e) => format!("crashed (its client task failed: {e})"),
                }
            }
            Err(e) if ever_up => format!("crashed and could not be started again yet: {e}"),
            Err(e) => format!("could not be started: {e}"),
        };
        attempt = attempt.saturating_add(1);
        restarted = true;
        let delay = crate::mcp::restart_backoff(attempt);
        tracing::warn!(command = %upstream.label, attempt, reason = %why, delay_ms = delay.as_millis() as u64, "bridge: MCP server down; restarting");
        tx.send_replace(Arc::new(UpstreamState {
            peer: None,
            info: None,
            down: Some(why),
        }));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return,
        }
    }
}
