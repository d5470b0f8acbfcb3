//! The REAL MCP servers installed under `<repo>/.test-deps` by `scripts/setup-test-deps.sh`, as
//! [`McpServer`]s, plus a static page server on 127.0.0.1 for fetch and puppeteer tests.
//!
//! ```no_run
//! # async fn demo() {
//! let dir = tempfile::tempdir().expect("dir");
//! let servers = vec![
//!     ollama_mcp_tests::servers::memory(dir.path()),
//!     ollama_mcp_tests::servers::everything_stdio(),
//! ];
//! let (_guard, http) = ollama_mcp_tests::servers::everything_http().await;
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ollama_mcp_bot::config::{McpServer, McpServerConfig, McpTransport, StdioServer};

/// Root of the repository (the parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `<repo>/.test-deps`, where the set-up script installs the servers.
pub fn deps_dir() -> PathBuf {
    repo_root().join(".test-deps")
}

/// An installed executable under `.test-deps`; panics with what to run when it is missing.
pub fn installed(relative: &str) -> PathBuf {
    let path = deps_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-test-deps.sh (it installs the real MCP servers the tests use)",
        path.display()
    );
    path
}

fn node_bin(name: &str) -> String {
    installed(&format!("node/node_modules/.bin/{name}"))
        .display()
        .to_string()
}

/// A configuration written by hand, parsed as the bot parses its file (panics when invalid).
pub fn parsed(raw: McpServerConfig) -> McpServer {
    McpServer::try_from(raw).unwrap_or_else(|e| panic!("test server configuration: {e}"))
}

/// The command, arguments and environment of a stdio server (panics for an HTTP one).
pub fn stdio_of(server: &McpServer) -> &StdioServer {
    match &server.transport {
        McpTransport::Stdio(s) => s,
        McpTransport::Http(_) => panic!("{} is not a stdio server", server.name),
    }
}

fn stdio(name: &str, command: String, args: &[&str], env: &[(&str, &str)]) -> McpServer {
    parsed(McpServerConfig {
        name: name.into(),
        command: Some(command),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        // Generous: a loaded 2-core CI machine starts node slowly.
        startup_timeout_secs: Some(60),
        ..Default::default()
    })
}

/// `@modelcontextprotocol/server-memory`, keeping its graph in `dir/memory.json`.
pub fn memory(dir: &Path) -> McpServer {
    let file = dir.join("memory.json").display().to_string();
    stdio(
        "memory",
        node_bin("mcp-server-memory"),
        &[],
        &[("MEMORY_FILE_PATH", &file)],
    )
}

/// `@modelcontextprotocol/server-sequential-thinking` (thought logging to stderr off).
pub fn sequential_thinking() -> McpServer {
    stdio(
        "thinking",
        node_bin("mcp-server-sequential-thinking"),
        &[],
        &[("DISABLE_THOUGHT_LOGGING", "true")],
    )
}

/// `@modelcontextprotocol/server-everything` over stdio.
pub fn everything_stdio() -> McpServer {
    stdio(
        "everything",
        node_bin("mcp-server-everything"),
        &["stdio"],
        &[],
    )
}

/// `mcp-server-fetch` (PyPI) allowed to fetch from 127.0.0.1. Its first fetch may install things
/// of its own: the call timeout is generous.
pub fn fetch() -> McpServer {
    let mut c = stdio(
        "fetch",
        installed("venv/bin/mcp-server-fetch").display().to_string(),
        &["--allow-private-ips", "--ignore-robots-txt"],
        &[],
    );
    c.call_timeout = Duration::from_secs(180);
    c
}

/// `@modelcontextprotocol/server-puppeteer` driving Debian's Chromium, headless.
pub fn puppeteer() -> McpServer {
    let mut c = stdio(
        "puppeteer",
        node_bin("mcp-server-puppeteer"),
        &[],
        &[
            ("ALLOW_DANGEROUS", "true"),
            (
                "PUPPETEER_LAUNCH_OPTIONS",
                r#"{"headless":true,"executablePath":"/usr/bin/chromium","args":["--no-sandbox","--disable-gpu","--disable-dev-shm-usage"]}"#,
            ),
        ],
    );
    c.call_timeout = Duration::from_secs(120);
    c
}

/// A running `mcp-server-everything streamableHttp`; killed (with its process group) on drop.
pub struct HttpServerGuard {
    child: Option<tokio::process::Child>,
    pub url: String,
}

impl HttpServerGuard {
    /// Process id of the server (the tests kill it to simulate a crash).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
}

impl Drop for HttpServerGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // kill_on_drop is set too; start_kill makes it immediate.
            let _ = child.start_kill();
        }
    }
}

/// Starts `mcp-server-everything streamableHttp` on a free port and waits until it accepts
/// connections; returns the guard and the config (`name = "everything_http"`) for its URL.
pub async fn everything_http() -> (HttpServerGuard, McpServer) {
    let bin = node_bin("mcp-server-everything");
    // The port is free when we look; another process may take it before node binds. Retry then.
    for _ in 0..5 {
        let port = free_port();
        let mut child = tokio::process::Command::new(&bin)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp-server-everything streamableHttp");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                let url = format!("http://127.0.0.1:{port}/mcp");
                let config = parsed(McpServerConfig {
                    name: "everything_http".into(),
                    url: Some(url.clone()),
                    startup_timeout_secs: Some(60),
                    ..Default::default()
                });
                return (
                    HttpServerGuard {
                        child: Some(child),
                        url,
                    },
                    config,
                );
            }
            if child.try_wait().ok().flatten().is_some() {
                break; // exited: most likely the port was taken; try another
            }
            assert!(
                Instant::now() < deadline,
                "mcp-server-everything streamableHttp did not listen on {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("mcp-server-everything streamableHttp exited at start five times");
}

/// A port that was free a moment ago on 127.0.0.1, and never handed out before in this process:
/// the kernel may give a just-released port to the next `bind(0)`, so two servers started one
/// after the other by one test (an MCP server, then the bot's metrics) could otherwise get the
/// same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// A tiny static web server on 127.0.0.1 serving fixed pages; stops on drop.
pub struct PageServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    /// Serves `pages` (path such as `/hello.html` → HTML body) with `text/html`.
    pub async fn start(pages: &[(&str, String)]) -> PageServer {
        use axum::http::{StatusCode, Uri, header};
        let pages: std::sync::Arc<BTreeMap<String, String>> = std::sync::Arc::new(
            pages
                .iter()
                .map(|(p, b)| (p.to_string(), b.clone()))
                .collect(),
        );
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let pages = pages.clone();
            async move {
                match pages.get(uri.path()) {
                    Some(body) => (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        body.clone(),
                    ),
                    None => (
                        StatusCode::NOT_FOUND,
                        [(header::CONTENT_TYPE, "text/plain")],
                        "not found".to_string(),
                    ),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind page server");
        let addr = listener.local_addr().expect("page server address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PageServer { addr, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a process with this pid still exists (a zombie counts as gone: it no longer runs).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; `Z` is a zombie, `X` dead.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Every live process whose process group is `pgid` (a stdio server's whole tree).
pub fn process_group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .is_some_and(|stat| {
                    // After "comm)": state ppid pgrp ...
                    let mut fields = stat
                        .rsplit_once(')')
                        .map(|(_, r)| r.split_whitespace())
                        .into_iter()
                        .flatten();
                    let state = fields.next();
                    let _ppid = fields.next();
                    let pgrp = fields.next().and_then(|p| p.parse::<u32>().ok());
                    pgrp == Some(pgid) && !matches!(state, Some("Z") | Some("X"))
                })
        })
        .collect()
}

/// Every live process below `pid` in the process tree (children, grandchildren, ...), including
/// those that moved to a process group of their own (puppeteer starts Chromium detached).
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse::<u32>().ok()?;
            (state != "Z" && state != "X").then_some((p, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Live descendants of this test process whose command line contains `needle`.
pub fn my_descendants_running(needle: &str) -> Vec<u32> {
    descendants(std::process::id())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A plain HTTP/1.1 GET (no client library needed): the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Sends SIGKILL to `pid` (simulating a crash).
pub fn kill_hard(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
