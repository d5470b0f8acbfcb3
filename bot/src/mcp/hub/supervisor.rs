//! One supervisor task per server: connect, publish the tools, serve until the connection is
//! lost or the hub shuts down, restart with backoff; the clean shutdown of one server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::Tool;
use rmcp::service::QuitReason;
use tokio_util::sync::CancellationToken;

use super::super::ServerState;
use super::super::connection::{self, Connection, config_key};
use super::Server;
use crate::metrics::{ServerLabels, metrics};

/// First restart delay; doubled per consecutive failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A server that stayed up this long starts its backoff afresh when it next crashes.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Bound on one server's clean shutdown (rmcp closes stdin, waits, SIGTERMs, then kills).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

/// Delay before restart attempt `attempt` (1-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Keeps one server connected until shutdown. Never returns early except on shutdown or a
/// failure that retrying cannot fix.
pub(super) async fn supervise(server: Arc<Server>, shutdown: CancellationToken) {
    let name = server.config.name.clone();
    let mut attempt: u32 = 0;
    let mut ever_ready = false;
    let key = config_key(server.index);
    loop {
        let result = tokio::select! {
            r = connection::connect(&server.config, &key) => r,
            // Dropping a half-started connection kills its child.
            _ = shutdown.cancelled() => return,
        };
        let reason = match result {
            Ok(conn) => match list_tools(&server, &conn).await {
                Ok(tools) => {
                    let entries = server.entries(&tools);
                    tracing::info!(server = %name, tools = entries.len(), pid = conn.pid, "MCP server ready");
                    let peer = conn.client.peer().clone();
                    let lost = CancellationToken::new();
                    let lost_here = lost.clone();
                    server.publish(|l| {
                        l.state = ServerState::Ready;
                        l.peer = Some(peer);
                        l.pid = conn.pid;
                        l.tools = entries;
                        l.lost = lost_here;
                    });
                    metrics().set_server_up(&name, true);
                    ever_ready = true;
                    let up_since = Instant::now();
                    let stopped = serve_until_stopped(&server, conn, &lost, &shutdown).await;
                    metrics().set_server_up(&name, false);
                    server.publish(|l| {
                        l.peer = None;
                        l.pid = None;
                    });
                    let Some(reason) = stopped else { return };
                    if up_since.elapsed() >= STABLE_AFTER {
                        attempt = 0;
                    }
                    metrics()
                        .mcp_server_restarts
                        .get_or_create(&ServerLabels {
                            server: name.clone(),
                        })
                        .inc();
                    reason
                }
                Err(reason) => {
                    close(conn).await;
                    reason
                }
            },
            Err(e) => {
                let permanent = e.is_permanent();
                let reason = e.to_string();
                if permanent {
                    tracing::warn!(server = %name, reason = %reason, "MCP server cannot start");
                    server.publish(|l| l.state = ServerState::Failed { reason });
                    return;
                }
                reason
            }
        };
        attempt = attempt.saturating_add(1);
        let delay = backoff(attempt);
        if ever_ready {
            tracing::warn!(server = %name, attempt, reason = %reason, delay_ms = delay.as_millis() as u64, "MCP server stopped; restarting");
            server.publish(|l| l.state = ServerState::Restarting { attempt, reason });
        } else {
            // Warn once; later attempts of a server that never came up are routine.
            if attempt == 1 {
                tracing::warn!(server = %name, reason = %reason, "MCP server failed to start; retrying in the background");
            } else {
                tracing::debug!(server = %name, attempt, reason = %reason, "MCP server still failing to start");
            }
            server.publish(|l| l.state = ServerState::Failed { reason });
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Lists the tools of a fresh connection within the start-up timeout.
async fn list_tools(server: &Server, conn: &Connection) -> Result<Vec<Tool>, String> {
    let timeout = server.config.startup_timeout;
    match tokio::time::timeout(timeout, conn.client.peer().list_all_tools()).await {
        Ok(Ok(tools)) => Ok(tools),
        Ok(Err(e)) => Err(format!(
            "listing its tools failed: {e}{}",
            conn.stderr.suffix()
        )),
        Err(_) => Err(format!(
            "listing its tools took longer than {} s",
            timeout.as_secs()
        )),
    }
}

/// Serves a connected server: refreshes its tools when it says they changed. Returns why it
/// stopped, or `None` on shutdown (after closing it cleanly).
async fn serve_until_stopped(
    server: &Server,
    conn: Connection,
    lost: &CancellationToken,
    shutdown: &CancellationToken,
) -> Option<String> {
    let Connection {
        client,
        tools_changed,
        stderr,
        ..
    } = conn;
    let peer = client.peer().clone();
    let cancel = client.cancellation_token();
    let mut waiting = std::pin::pin!(client.waiting());
    loop {
        tokio::select! {
            quit = &mut waiting => {
                let why = match quit {
                    Ok(QuitReason::Closed) if server.transport() == "stdio" => "the process exited".to_string(),
                    Ok(QuitReason::Closed) => "the connection closed".to_string(),
                    Ok(QuitReason::JoinError(e)) | Err(e) => format!("its client task failed: {e}"),
                    Ok(other) => format!("{other:?}"),
                };
                return Some(format!("{why}{}", stderr.suffix()));
            }
            _ = tools_changed.notified() => {
                match tokio::time::timeout(server.config.startup_timeout, peer.list_all_tools()).await {
                    Ok(Ok(tools)) => {
                        let entries = server.entries(&tools);
                        tracing::info!(server = %server.config.name, tools = entries.len(), "MCP server tools changed");
                        server.publish(|l| l.tools = entries);
                    }
                    Ok(Err(e)) => tracing::warn!(server = %server.config.name, error = %e, "refreshing the tool list failed"),
                    Err(_) => tracing::warn!(server = %server.config.name, "refreshing the tool list timed out"),
                }
            }
            _ = lost.cancelled() => {
                cancel.cancel();
                let _ = tokio::time::timeout(SHUTDOWN_BOUND, &mut waiting).await;
                return Some(format!("the connection failed during a call{}", stderr.suffix()));
            }
            _ = shutdown.cancelled() => {
                cancel.cancel();
                if tokio::time::timeout(SHUTDOWN_BOUND, &mut waiting).await.is_err() {
                    tracing::warn!(server = %server.config.name, "MCP server did not shut down in time");
                }
                return None;
            }
        }
    }
}

async fn close(conn: Connection) {
    let _ = tokio::time::timeout(SHUTDOWN_BOUND, conn.client.cancel()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }
}
