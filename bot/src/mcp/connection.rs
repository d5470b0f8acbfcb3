//! Connecting to one MCP server: spawning a stdio child (in its own process group, stderr to our
//! tracing) or opening a streamable HTTP session, then the MCP handshake. Supervision (restarts,
//! tool refresh) lives in the hub; this module makes one attempt and explains a failure.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, TokioChildProcess};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::Notify;

use crate::config::{HttpServer, McpServer, McpTransport, StdioServer};

pub mod child_env;

/// Our side of an MCP session: identifies us and turns `tools/list_changed` into a wake-up.
#[derive(Clone)]
pub struct ClientSide {
    pub tools_changed: Arc<Notify>,
}

impl ClientSide {
    pub fn new() -> Self {
        Self {
            tools_changed: Arc::new(Notify::new()),
        }
    }
}

impl rmcp::ClientHandler for ClientSide {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        // notify_one stores a permit, so a change announced before the supervisor waits is kept.
        self.tools_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("ollama-mcp-bot", env!("CARGO_PKG_VERSION")),
        )
        // The newest version that still has an `initialize` handshake: every server we know of
        // speaks it, and rmcp negotiates down for older ones.
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

pub type Client = RunningService<RoleClient, ClientSide>;

/// The last lines a child wrote to stderr, quoted when it fails.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

const STDERR_TAIL_LINES: usize = 3;
const STDERR_LINE_CHARS: usize = 300;

impl StderrTail {
    fn push(&self, line: String) {
        if let Ok(mut tail) = self.0.lock() {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.chars().take(STDERR_LINE_CHARS).collect());
        }
    }

    /// " (its last stderr lines: ...)" or "" when it wrote nothing.
    pub fn suffix(&self) -> String {
        let lines: Vec<String> = self
            .0
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!(" (its last stderr lines: {})", lines.join(" | "))
        }
    }
}

/// A connected server.
pub struct Connection {
    pub client: Client,
    pub tools_changed: Arc<Notify>,
    /// Process id of a stdio child (the leader of its process group).
    pub pid: Option<u32>,
    pub stderr: StderrTail,
}

/// Why one connection attempt failed, phrased for the person who configured the server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The command does not exist or may not be run: retrying cannot help.
    #[error("{0}")]
    Spawn(String),
    /// The configuration cannot work (a missing variable, a malformed header): retrying cannot help.
    #[error("{0}")]
    Config(String),
    /// The server started (or was reached) but the MCP handshake failed.
    #[error("{0}")]
    Handshake(String),
    #[error("{0}")]
    Timeout(String),
}

impl ConnectError {
    /// Whether retrying the same configuration is pointless.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnectError::Spawn(_) | ConnectError::Config(_))
    }
}

/// `mcp.servers[3]`: where the person fixes this server in the configuration.
pub fn config_key(index: usize) -> String {
    format!("mcp.servers[{index}]")
}

/// One attempt to connect to `config`, bounded by its start-up timeout (handshake included).
/// `key` is where the person fixes this server (`mcp.servers[3]`), quoted in error messages.
pub async fn connect(config: &McpServer, key: &str) -> Result<Connection, ConnectError> {
    match &config.transport {
        McpTransport::Stdio(stdio) => connect_stdio(config, stdio, key).await,
        McpTransport::Http(http) => connect_http(config, http, key).await,
    }
}

async fn connect_stdio(
    config: &McpServer,
    stdio: &StdioServer,
    key: &str,
) -> Result<Connection, ConnectError> {
    let timeout = config.startup_timeout;
    let command = stdio.command.as_str();
    let mut cmd = tokio::process::Command::new(command);
    // A last resort when the runtime shuts down before rmcp's async clean-up runs.
    cmd.args(&stdio.args)
        .env_clear()
        .envs(child_env::child_env(stdio, std::env::vars_os()))
        .kill_on_drop(true);
    if let Some(dir) = &stdio.cwd {
        cmd.current_dir(dir);
    }
    child_env::die_with_parent(&mut cmd);
    let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
    // Its own process group: a shutdown or crash clean-up signals the whole tree (npx →
    // node, a browser under puppeteer), and a Ctrl-C in our terminal does not reach it.
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    let (process, stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(command, key, &e))?;
    let pid = process.id();
    let tail = StderrTail::default();
    let stderr_task =
        stderr.map(|s| tokio::spawn(forward_stderr(config.name.clone(), s, tail.clone())));
    let failure = match handshake(process, timeout, pid, tail.clone()).await {
        Ok(connection) => return Ok(connection),
        Err(failure) => failure,
    };
    // The child is gone or being killed: give its last stderr lines a moment to arrive.
    if let Some(task) = stderr_task {
        let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
    }
    let shown = shell_words(command, &stdio.args);
    Err(match failure {
        Some(e) => ConnectError::Handshake(format!(
            "`{shown}` stopped before completing the MCP handshake: {e}{}; check that it is an MCP server speaking stdio and that its arguments in {}.args are right",
            tail.suffix(),
            key
        )),
        None => ConnectError::Timeout(format!(
            "`{shown}` did not complete the MCP handshake within {} s{}; raise {}.startup_timeout_secs if it is just slow (a first `npx` run downloads the package)",
            timeout.as_secs(),
            tail.suffix(),
            key
        )),
    })
}

async fn connect_http(
    config: &McpServer,
    server: &HttpServer,
    key: &str,
) -> Result<Connection, ConnectError> {
    let timeout = config.startup_timeout;
    let url = server.url.as_str();
    let headers = http_headers(&config.name, server, key)?;
    let http = http_client()
        .map_err(|e| ConnectError::Config(format!("building the HTTP client for `{url}`: {e}")))?;
    let transport_config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
        .custom_headers(headers)
        .reinit_on_expired_session(true);
    let transport = StreamableHttpClientTransport::with_client(http, transport_config);
    let handshake = handshake(transport, timeout, None, StderrTail::default()).await;
    handshake.map_err(|failure| match failure {
        Some(e) => ConnectError::Handshake(format!(
            "cannot open an MCP session with `{url}`: {e}; check that the server runs and serves streamable HTTP there, or fix {key}.url"
        )),
        None => ConnectError::Timeout(format!(
            "`{url}` did not complete the MCP handshake within {} s; check that the server runs, or raise {key}.startup_timeout_secs",
            timeout.as_secs(),
        )),
    })
}

/// The MCP handshake within `timeout`. `Err(Some(why))`: the server failed it; `Err(None)`: it
/// did not finish in time.
async fn handshake<T, E, A>(
    transport: T,
    timeout: Duration,
    pid: Option<u32>,
    stderr: StderrTail,
) -> Result<Connection, Option<String>>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let side = ClientSide::new();
    match tokio::time::timeout(timeout, side.clone().serve(transport)).await {
        Ok(Ok(client)) => Ok(Connection {
            client,
            tools_changed: side.tools_changed,
            pid,
            stderr,
        }),
        Ok(Err(e)) => Err(Some(e.to_string())),
        Err(_) => Err(None),
    }
}

fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a default crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        // Custom headers may carry secrets: never replay them to wherever a redirect points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// `headers` as given plus `headers_env` read from the environment (values never logged).
fn http_headers(
    server_name: &str,
    config: &HttpServer,
    key: &str,
) -> Result<HashMap<http::HeaderName, http::HeaderValue>, ConnectError> {
    let mut out = HashMap::new();
    let name_of = |name: &str, field: &str| {
        http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConnectError::Config(format!(
                "{key}.{field}: `{name}` is not a valid HTTP header name"
            ))
        })
    };
    for (name, value) in &config.headers {
        let header = name_of(name, "headers")?;
        let value = http::HeaderValue::from_str(value).map_err(|_| {
            ConnectError::Config(format!(
                "{key}.headers.{name}: the value is not a valid HTTP header value"
            ))
        })?;
        out.insert(header, value);
    }
    for (name, var) in &config.headers_env {
        let header = name_of(name, "headers_env")?;
        let secret = std::env::var(var).map_err(|_| {
            ConnectError::Config(format!(
                "header `{name}` of server `{}` comes from environment variable `{var}`, which is not set; set it (on Kubernetes, map it from a Secret) or remove {key}.headers_env.{name}",
                server_name
            ))
        })?;
        let mut value = http::HeaderValue::from_str(&secret).map_err(|_| {
            ConnectError::Config(format!(
                "environment variable `{var}` (header `{name}` of server `{}`) is not a valid HTTP header value",
                server_name
            ))
        })?;
        value.set_sensitive(true);
        out.insert(header, value);
    }
    Ok(out)
}

fn spawn_error(command: &str, key: &str, e: &std::io::Error) -> ConnectError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            let hint = match command.rsplit('/').next().unwrap_or(command) {
                "npx" | "node" | "npm" => "install Node.js",
                "uvx" | "uv" => "install uv (https://docs.astral.sh/uv/)",
                "python" | "python3" | "pip" => "install Python 3",
                "docker" | "podman" => "install a container runtime",
                _ => "install it or give its full path",
            };
            ConnectError::Spawn(format!(
                "`{command}` not found: {hint}, or fix {key}.command"
            ))
        }
        std::io::ErrorKind::PermissionDenied => ConnectError::Spawn(format!(
            "`{command}` may not be run (permission denied): make it executable, or fix {key}.command"
        )),
        _ => ConnectError::Spawn(format!(
            "starting `{command}` failed: {e}; check {key}.command and {key}.cwd"
        )),
    }
}

fn shell_words(command: &str, args: &[String]) -> String {
    std::iter::once(command)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A child's stderr goes to our tracing at debug level: our stdout is the chat's output.
async fn forward_stderr(server: String, stderr: tokio::process::ChildStderr, tail: StderrTail) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if line.is_empty() {
                    continue;
                }
                tracing::debug!(target: "ollama_mcp_bot::mcp::stderr", server = %server, "{line}");
                tail.push(line);
            }
        }
    }
}
