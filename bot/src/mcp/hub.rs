//! The MCP hub: starts every configured server concurrently, keeps each one supervised (tool
//! list refreshed on `list_changed`, a crashed server restarted with backoff), and runs tool
//! calls with validation, a timeout and bounded results.
//!
//! Each server has one supervisor task that owns its rmcp client and publishes a snapshot
//! ([`Live`]) through a `watch` channel. Callers clone the snapshot (an `Arc`) and never hold a
//! lock across an `.await`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{Peer, RoleClient, ServiceError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::adapter;
use super::connection::config_key;
use super::validate::ArgumentValidator;
use super::{OutcomeKind, ServerState, ServerStatus, ToolHost, ToolOutcome, split_namespaced};
use crate::config::{ChatConfig, McpServer};
use crate::metrics::metrics;
use crate::tool::ToolSpec;

mod supervisor;
pub(crate) use supervisor::backoff;
use supervisor::supervise;

/// How the hub treats tool results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubOptions {
    /// Results longer than this many characters are cut, with a note; 0 = no limit.
    pub max_result_chars: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self::from_chat(&ChatConfig::default())
    }
}

impl HubOptions {
    pub fn from_chat(chat: &ChatConfig) -> Self {
        Self {
            max_result_chars: chat.max_tool_result_chars,
        }
    }
}

/// One tool as offered to the model.
#[derive(Clone)]
struct ToolEntry {
    /// The name the server gives it.
    name: String,
    spec: ToolSpec,
    validator: ArgumentValidator,
}

/// What callers see of one server at a moment.
#[derive(Clone)]
struct Live {
    state: ServerState,
    peer: Option<Peer<RoleClient>>,
    pid: Option<u32>,
    /// Kept while the server restarts, so the model's tool list stays stable.
    tools: Arc<[ToolEntry]>,
    /// Cancelled by a call that saw this connection fail. An HTTP client does not end when its
    /// server goes away, so the supervisor learns it from the calls and reconnects; a token per
    /// connection keeps a late report from dropping the next, healthy one.
    lost: CancellationToken,
}

struct Server {
    config: McpServer,
    index: usize,
    live: watch::Sender<Arc<Live>>,
}

impl Server {
    fn snapshot(&self) -> Arc<Live> {
        self.live.borrow().clone()
    }

    fn publish(&self, f: impl FnOnce(&mut Live)) {
        self.live.send_modify(|live| {
            let mut next = (**live).clone();
            f(&mut next);
            *live = Arc::new(next);
        });
    }

    fn transport(&self) -> &'static str {
        self.config.kind()
    }

    fn entries(&self, tools: &[Tool]) -> Arc<[ToolEntry]> {
        tools
            .iter()
            .filter(|t| self.config.tools.allows(&t.name))
            .map(|t| {
                let spec = adapter::tool_spec(&self.config.name, t);
                let validator =
                    ArgumentValidator::new(&spec.name, &t.input_schema, &spec.parameters);
                ToolEntry {
                    name: t.name.to_string(),
                    spec,
                    validator,
                }
            })
            .collect()
    }
}

/// The running MCP servers. See the module documentation.
pub struct McpHub {
    servers: Vec<Arc<Server>>,
    options: HubOptions,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl McpHub {
    /// Starts every server concurrently and returns once each is `Ready` or `Failed` (so the
    /// time taken is that of the slowest server, bounded by its `startup_timeout_secs`). Never
    /// fails as a whole: a server that cannot start is reported in [`McpHub::status`] and the
    /// others work.
    pub async fn start(servers: &[McpServer], options: HubOptions) -> Arc<McpHub> {
        let started = Instant::now();
        let shutdown = CancellationToken::new();
        let mut list = Vec::with_capacity(servers.len());
        let mut tasks = Vec::with_capacity(servers.len());
        for (index, config) in servers.iter().enumerate() {
            let (live, _) = watch::channel(Arc::new(Live {
                state: ServerState::Starting,
                peer: None,
                pid: None,
                tools: Arc::from(Vec::new()),
                lost: CancellationToken::new(),
            }));
            let server = Arc::new(Server {
                config: config.clone(),
                index,
                live,
            });
            metrics().set_server_up(&config.name, false);
            tasks.push(tokio::spawn(supervise(server.clone(), shutdown.clone())));
            list.push(server);
        }
        for server in &list {
            let mut rx = server.live.subscribe();
            // The supervisor bounds each attempt by the start-up timeout, so this ends.
            let _ = rx.wait_for(|l| l.state != ServerState::Starting).await;
        }
        let hub = Arc::new(McpHub {
            servers: list,
            options,
            shutdown,
            tasks: Mutex::new(tasks),
        });
        let status = hub.status();
        let ready = status
            .iter()
            .filter(|s| s.state == ServerState::Ready)
            .count();
        tracing::info!(
            ready,
            failed = status.len() - ready,
            tools = hub.tools().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "MCP servers started"
        );
        hub
    }

    /// Every configured server with its state and (filtered) tool names.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers
            .iter()
            .map(|s| {
                let live = s.snapshot();
                ServerStatus {
                    name: s.config.name.clone(),
                    transport: s.transport(),
                    state: live.state.clone(),
                    tools: live.tools.iter().map(|t| t.name.clone()).collect(),
                }
            })
            .collect()
    }

    /// [`Self::status`] as `GET /status` reports it (names, states and tools only).
    pub fn report(&self) -> Vec<crate::status::McpServerReport> {
        self.status()
            .into_iter()
            .map(ServerStatus::report)
            .collect()
    }

    /// Process id of a stdio server's child while it runs (diagnostics and tests).
    pub fn server_pid(&self, server: &str) -> Option<u32> {
        self.servers
            .iter()
            .find(|s| s.config.name == server)
            .and_then(|s| s.snapshot().pid)
    }

    /// Stops every server: clients are cancelled, stdio children (and their process groups)
    /// exit or are killed. Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let tasks = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for task in tasks {
            let _ = task.await;
        }
    }

    fn server(&self, name: &str) -> Option<&Arc<Server>> {
        self.servers.iter().find(|s| s.config.name == name)
    }

    /// Finds the server and tool a model-facing name means. Models sometimes drop the
    /// `server__` prefix; a bare name that matches exactly one tool is accepted.
    fn resolve(&self, name: &str) -> Resolved {
        if let Some((server, tool)) = split_namespaced(name)
            && let Some(s) = self.server(server)
        {
            let live = s.snapshot();
            return match live.tools.iter().find(|t| t.name == tool) {
                Some(entry) => Resolved::Tool(s.clone(), live.clone(), entry.clone()),
                None if matches!(
                    live.state,
                    ServerState::Failed { .. } | ServerState::Starting
                ) =>
                {
                    Resolved::Unavailable(s.clone(), live.state.clone())
                }
                None => Resolved::Unknown(Some(s.clone())),
            };
        }
        let mut found = None;
        for s in &self.servers {
            let live = s.snapshot();
            for entry in live.tools.iter().filter(|t| t.name == name) {
                if found.is_some() {
                    return Resolved::Unknown(None);
                }
                found = Some(Resolved::Tool(s.clone(), live.clone(), entry.clone()));
            }
        }
        found.unwrap_or(Resolved::Unknown(None))
    }

    fn all_tool_names(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(|s| {
                s.snapshot()
                    .tools
                    .iter()
                    .map(|t| t.spec.name.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    async fn run_call(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> (String, String, OutcomeKind, String) {
        let (server, live, entry) = match self.resolve(name) {
            Resolved::Tool(s, live, entry) => (s, live, entry),
            Resolved::Unavailable(s, state) => {
                let text = unavailable_text(&s.config.name, &state);
                return (
                    s.config.name.clone(),
                    "unknown".into(),
                    OutcomeKind::ServerUnavailable,
                    text,
                );
            }
            Resolved::Unknown(server) => {
                let names = self.all_tool_names();
                let list = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                let text = match &server {
                    Some(s) => format!(
                        "Unknown tool `{name}`: server `{}` has no such tool (or it is not allowed). Available tools: {list}",
                        s.config.name
                    ),
                    None => format!("Unknown tool `{name}`. Available tools: {list}"),
                };
                // Unknown names come from the model: never use them as metric labels.
                let label = server
                    .map(|s| s.config.name.clone())
                    .unwrap_or_else(|| "unknown".into());
                return (label, "unknown".into(), OutcomeKind::UnknownTool, text);
            }
        };
        let server_name = server.config.name.clone();
        let tool = entry.name.clone();
        let arguments = match entry.validator.check(arguments) {
            Ok(a) => a,
            Err(text) => return (server_name, tool, OutcomeKind::InvalidArguments, text),
        };
        let Some(peer) = live.peer.clone() else {
            let text = unavailable_text(&server_name, &live.state);
            return (server_name, tool, OutcomeKind::ServerUnavailable, text);
        };
        let timeout = server.config.call_timeout;
        let params = CallToolRequestParams::new(tool.clone()).with_arguments(arguments);
        let (kind, text) = match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Err(_) => (
                OutcomeKind::Timeout,
                format!(
                    "`{}` did not finish within {} s (the call timeout of server `{server_name}`, {}.call_timeout_secs); the call was cancelled",
                    entry.spec.name,
                    timeout.as_secs(),
                    config_key(server.index)
                ),
            ),
            Ok(Ok(result)) => {
                let text =
                    adapter::truncate(adapter::result_text(&result), self.options.max_result_chars);
                if result.is_error == Some(true) {
                    (OutcomeKind::ToolError, text)
                } else {
                    (OutcomeKind::Ok, text)
                }
            }
            Ok(Err(ServiceError::McpError(e))) => (
                OutcomeKind::ToolError,
                format!("Server `{server_name}` rejected the call: {}", e.message),
            ),
            Ok(Err(ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                live.lost.cancel();
                (
                    OutcomeKind::ServerUnavailable,
                    lost_text(&server_name, server.transport()),
                )
            }
            Ok(Err(e)) => (
                OutcomeKind::ServerUnavailable,
                format!("Calling `{}` failed: {e}", entry.spec.name),
            ),
        };
        (server_name, tool, kind, text)
    }
}

enum Resolved {
    Tool(Arc<Server>, Arc<Live>, ToolEntry),
    Unavailable(Arc<Server>, ServerState),
    Unknown(Option<Arc<Server>>),
}

fn unavailable_text(server: &str, state: &ServerState) -> String {
    match state {
        ServerState::Restarting { attempt, reason } => format!(
            "Server `{server}` is restarting (attempt {attempt}) after it stopped: {reason}. Try again in a few seconds."
        ),
        ServerState::Failed { reason } => format!("Server `{server}` is not available: {reason}"),
        ServerState::Starting => {
            format!("Server `{server}` is still starting. Try again in a few seconds.")
        }
        ServerState::Ready => {
            format!("Server `{server}` is not connected. Try again in a few seconds.")
        }
    }
}

fn lost_text(server: &str, transport: &str) -> String {
    if transport == "stdio" {
        format!(
            "Server `{server}` crashed during the call; it is being restarted. Try again in a few seconds."
        )
    } else {
        format!(
            "Server `{server}` could not be reached or dropped the connection during the call. Try again later."
        )
    }
}

impl Drop for McpHub {
    fn drop(&mut self) {
        // Supervisors cancel their clients, which kills the children, even without shutdown().
        self.shutdown.cancel();
    }
}

#[async_trait::async_trait]
impl ToolHost for McpHub {
    fn tools(&self) -> Vec<ToolSpec> {
        self.servers
            .iter()
            .flat_map(|s| {
                s.snapshot()
                    .tools
                    .iter()
                    .map(|t| t.spec.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn needs_approval(&self, name: &str) -> bool {
        match self.resolve(name) {
            Resolved::Tool(server, _, entry) => server.config.tools.needs_approval(&entry.name),
            _ => false,
        }
    }

    async fn call(&self, name: &str, arguments: serde_json::Value) -> ToolOutcome {
        let started = Instant::now();
        let (server, tool, kind, content) = self.run_call(name, arguments).await;
        let duration = started.elapsed();
        metrics().record_tool_call(&server, &tool, kind.as_str(), duration);
        if kind != OutcomeKind::Ok {
            tracing::info!(server = %server, tool = %tool, outcome = kind.as_str(), "tool call did not succeed");
        }
        ToolOutcome {
            server,
            tool,
            content,
            kind,
            duration,
        }
    }
}
