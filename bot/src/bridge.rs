//! The stdio → streamable HTTP bridge: serves ONE stdio MCP server at `/mcp` (plus `/healthz`)
//! so that it can run as a Kubernetes sidecar (`ollama-mcp-bot bridge --port P --health-port H
//! -- CMD ARGS...`).
//!
//! `/mcp` is for the bot in the same pod only: it listens on 127.0.0.1 by default and refuses
//! any request whose peer address is not loopback (a `Host` header is the client's to choose, so
//! rmcp's Host check alone is no guard). The kubelet probes the pod IP, so `/healthz` can also be
//! served on a port of its own (`--health-port`, all interfaces) that serves nothing else.
//!
//! An rmcp server handler forwards `initialize` (the child's own capabilities and identity),
//! `tools/*`, `prompts/*` and `resources/*` to an rmcp client connected to the child. The child
//! is supervised: when it dies, requests fail with a JSON-RPC error that says so, `/healthz`
//! answers 503, and the child is restarted with backoff. Downstream sessions survive a restart
//! and are told that the tool list may have changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, GetPromptRequestParams, GetPromptResponse,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::config::McpServer;

mod upstream;
use upstream::Upstream;

/// Everything the bridge needs, without clap (the binary maps its flags onto this).
#[derive(Debug, Clone)]
pub struct BridgeArgs {
    pub listen: SocketAddr,
    pub command: String,
    pub args: Vec<String>,
    /// Extra environment for the child, on top of ours (a sidecar's env usually suffices).
    pub env: BTreeMap<String, String>,
    /// `Host` headers accepted on `/mcp`; empty = loopback only (the bot reaches its sidecars at
    /// 127.0.0.1). `["*"]` accepts any host.
    pub allowed_hosts: Vec<String>,
    /// Time the child has to complete the MCP handshake, per attempt.
    pub startup_timeout: Duration,
    /// Where `/healthz` alone is served as well (`--health-port`); `None`: nowhere else.
    pub health_listen: Option<SocketAddr>,
}

impl BridgeArgs {
    pub fn new(listen: SocketAddr, command: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            listen,
            command: command.into(),
            args,
            env: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            startup_timeout: McpServer::DEFAULT_STARTUP_TIMEOUT,
            health_listen: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(
        "no command given: put the MCP server's command after `--`, e.g. `bridge --port 8101 -- mcp-server-memory`"
    )]
    NoCommand,
    #[error("listening on {addr} failed: {source}; choose a free port")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

/// [`serve`] with every option.
pub async fn serve_with(
    args: BridgeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BridgeError> {
    if args.command.trim().is_empty() {
        return Err(BridgeError::NoCommand);
    }
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BridgeError::Bind { addr, source })
    };
    let listener = bind(args.listen).await?;
    let health = match args.health_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    serve_listeners(listener, health, args, shutdown).await
}

/// [`serve_with`] on a listener that is already bound (`args.listen` is ignored); tests bind
/// port 0 and read the address first.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    args: BridgeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BridgeError> {
    serve_listeners(listener, None, args, shutdown).await
}

/// [`serve_on`] plus a bound listener that serves `/healthz` only (`args.health_listen` is
/// ignored).
pub async fn serve_listeners(
    listener: tokio::net::TcpListener,
    health_listener: Option<tokio::net::TcpListener>,
    args: BridgeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BridgeError> {
    if args.command.trim().is_empty() {
        return Err(BridgeError::NoCommand);
    }
    let stop = CancellationToken::new();
    let upstream = Upstream::start(&args, stop.child_token());
    let handler = BridgeHandler {
        upstream: upstream.clone(),
        startup_timeout: args.startup_timeout,
    };

    let mut http_config =
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    if args.allowed_hosts.iter().any(|h| h == "*") {
        http_config = http_config.disable_allowed_hosts();
    } else if !args.allowed_hosts.is_empty() {
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        hosts.extend(args.allowed_hosts.iter().cloned());
        http_config = http_config.with_allowed_hosts(hosts);
    }
    let mcp = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        http_config,
    );
    let app = axum::Router::new()
        .route_service("/mcp", mcp)
        .merge(health_router(upstream.clone()))
        .layer(axum::middleware::from_fn(loopback_only));
    let addr = listener.local_addr().map_err(BridgeError::Serve)?;
    tracing::info!(%addr, command = %args.command, "bridge serving the MCP server at /mcp");
    if let Some(health_listener) = health_listener {
        let health_addr = health_listener.local_addr().map_err(BridgeError::Serve)?;
        tracing::info!(addr = %health_addr, "bridge serving /healthz alone");
        let app = health_router(upstream.clone());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let serve = axum::serve(health_listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "health server stopped");
            }
        });
    }

    let stopping = stop.clone();
    let graceful = async move {
        shutdown.await;
        // Ends open SSE streams and sessions, so the graceful shutdown can finish.
        stopping.cancel();
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful);
    let result = tokio::select! {
        r = server => r.map_err(BridgeError::Serve),
        // A client that keeps its connection open must not hold the sidecar forever.
        _ = async { stop.cancelled().await; tokio::time::sleep(Duration::from_secs(10)).await } => Ok(()),
    };
    stop.cancel();
    upstream.stopped().await;
    tracing::info!("bridge stopped");
    result
}

fn health_router(upstream: Upstream) -> axum::Router {
    axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let upstream = upstream.clone();
            async move { upstream.healthz() }
        }),
    )
}

/// Refuses every request that does not come from this host's loopback: the MCP endpoint drives
/// the server (a browser, a memory of what users said) and belongs to the bot in the same pod.
async fn loopback_only(
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return next.run(request).await;
    }
    tracing::warn!(%peer, path = %request.uri().path(), "refused a request from outside this host");
    (
        axum::http::StatusCode::FORBIDDEN,
        "this MCP bridge serves only clients on the same host (127.0.0.1); use the health port for probes\n",
    )
        .into_response()
}

/// What the bridge announces: the child's identity and the capabilities we forward.
fn downstream_info(child: &rmcp::model::ServerPeerInfo) -> ServerConfig {
    let mut caps = child.capabilities.clone();
    // Not forwarded: log streams, completions, resource subscriptions, task extensions.
    caps.logging = None;
    caps.completions = None;
    caps.extensions = None;
    if let Some(resources) = caps.resources.as_mut() {
        resources.subscribe = None;
    }
    // The bridge itself announces changes (a restarted child may list other tools).
    if let Some(tools) = caps.tools.as_mut() {
        tools.list_changed = Some(true);
    }
    let mut info = InitializeResult::new(caps);
    if let Some(server_info) = &child.server_info {
        info.server_info = server_info.clone();
    }
    info.instructions = child.instructions.clone();
    info
}

/// One downstream session's handler; all share the upstream.
#[derive(Clone)]
struct BridgeHandler {
    upstream: Upstream,
    startup_timeout: Duration,
}

impl rmcp::ServerHandler for BridgeHandler {
    fn get_info(&self) -> ServerConfig {
        self.upstream.snapshot().info.clone().unwrap_or_default()
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        // Session-based versions only: the bridge keeps one session per downstream client.
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(
            &ProtocolVersion::LATEST_WITH_INITIALIZE,
        ))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let mut info = self.upstream.ready_info(self.startup_timeout).await?;
        context.peer.set_peer_info(request.clone());
        info.protocol_version = self.negotiate_initialize(&request)?.protocol_version;
        Ok(info)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Ok(mut sessions) = self.upstream.sessions.lock() {
            sessions.retain(|p| !p.is_transport_closed());
            sessions.push(context.peer);
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let peer = self.upstream.peer()?;
        peer.list_tools(request)
            .await
            .map_err(|e| self.upstream.forward_error(e))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let peer = self.upstream.peer()?;
        tokio::select! {
            r = peer.call_tool_once(request) => r.map_err(|e| self.upstream.forward_error(e)),
            // The downstream client cancelled: dropping the call cancels it upstream too.
            _ = context.ct.cancelled() => Err(ErrorData::internal_error("the request was cancelled", None)),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let peer = self.upstream.peer()?;
        peer.list_prompts(request)
            .await
            .map_err(|e| self.upstream.forward_error(e))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let peer = self.upstream.peer()?;
        peer.get_prompt_once(request)
            .await
            .map_err(|e| self.upstream.forward_error(e))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let peer = self.upstream.peer()?;
        peer.list_resources(request)
            .await
            .map_err(|e| self.upstream.forward_error(e))
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let peer = self.upstream.peer()?;
        peer.list_resource_templates(request)
            .await
            .map_err(|e| self.upstream.forward_error(e))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let peer = self.upstream.peer()?;
        peer.read_resource_once(request)
            .await
            .map_err(|e| self.upstream.forward_error(e))
    }
}
