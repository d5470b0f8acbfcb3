//! Running the built `ollama-mcp-bot` binary in tests: locating it, writing its configuration,
//! and talking to a running `chat` over its standard streams.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ollama_mcp_bot::config::{BotConfig, McpServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// `target/<profile>/ollama-mcp-bot`, next to the test executable's `deps/` folder
/// (`scripts/test.sh` builds it before the tests run), or `$OLLAMA_MCP_BOT_BINARY`: the memory
/// benchmarks measure the `dist` build the images ship (docs/BENCHMARKS.md).
pub fn bot_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("OLLAMA_MCP_BOT_BINARY") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "OLLAMA_MCP_BOT_BINARY={} is not a file: build it first (`cargo build --profile dist -p ollama-mcp-bot`)",
            bin.display()
        );
        return bin;
    }
    binary("ollama-mcp-bot")
}

/// A binary of this workspace in the test executable's target folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A configuration for tests: the given Ollama URL, MCP servers, and a store in `dir`.
pub fn test_config(dir: &Path, ollama_url: &str, servers: Vec<McpServer>) -> BotConfig {
    let mut c = BotConfig::default();
    c.ollama.url = ollama_url.to_string();
    c.ollama.request_timeout_secs = 30;
    c.store.path = dir.join("bot.db").display().to_string();
    c.mcp.servers = servers;
    c.metrics.listen = String::new();
    c
}

/// Writes `config` as TOML into `dir/bot.toml` and returns the path.
pub fn write_config(dir: &Path, config: &BotConfig) -> PathBuf {
    let path = dir.join("bot.toml");
    std::fs::write(&path, config.to_toml()).expect("write config");
    path
}

/// `ollama-mcp-bot chat` with piped standard streams.
pub struct ChatProcess {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
    /// Every stderr line read so far.
    pub stderr_seen: Vec<String>,
}

/// The end of a chat run.
#[derive(Debug)]
pub struct ChatOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ChatProcess {
    pub fn spawn(config: &Path, session: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bot_binary());
        cmd.arg("chat")
            .arg("--config")
            .arg(config)
            .arg("--session")
            .arg(session)
            .args(extra_args);
        cmd.env_remove("RUST_LOG")
            .env_remove("OLLAMA_HOST")
            .env_remove("OLLAMA_MCP_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn ollama-mcp-bot chat");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Self {
            child,
            stdin,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("child still running")
    }

    /// Sends one message (one line).
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to chat");
        stdin.flush().await.expect("flush");
    }

    /// The next reply line on stdout, within `timeout`.
    pub async fn next_reply(&mut self, timeout: Duration) -> String {
        match tokio::time::timeout(timeout, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "no reply within {timeout:?} ({other:?}); stderr so far: {:?}",
                self.stderr_seen
            ),
        }
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    pub async fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                other => panic!(
                    "stderr never said {needle:?} ({other:?}); seen: {:?}",
                    self.stderr_seen
                ),
            }
        }
    }

    /// Closes stdin and collects the rest of the output and the exit code.
    pub async fn finish(mut self, timeout: Duration) -> ChatOutput {
        drop(self.stdin.take());
        let (out, err, seen) = (&mut self.stdout, &mut self.stderr, &mut self.stderr_seen);
        let collect = async {
            // Both streams at once: a child blocked on a full stderr pipe would never close stdout.
            let read_out = async {
                let mut stdout = String::new();
                while let Ok(Some(line)) = out.next_line().await {
                    stdout.push_str(&line);
                    stdout.push('\n');
                }
                stdout
            };
            let read_err = async {
                while let Ok(Some(line)) = err.next_line().await {
                    seen.push(line);
                }
            };
            let (stdout, ()) = tokio::join!(read_out, read_err);
            let status = self.child.wait().await.expect("wait for chat");
            (stdout, status.code())
        };
        let (stdout, code) = tokio::time::timeout(timeout, collect)
            .await
            .expect("chat did not exit at end of input");
        ChatOutput {
            code,
            stdout,
            stderr: self.stderr_seen.join("\n"),
        }
    }
}

/// Runs `chat` on `input` (one message per line) to the end.
pub async fn run_chat(config: &Path, session: &str, input: &str) -> ChatOutput {
    let mut p = ChatProcess::spawn(config, session, &[], &[]);
    for line in input.lines() {
        p.send(line).await;
    }
    p.finish(Duration::from_secs(120)).await
}
