//! What every section of the engine benchmark needs: CPU clocks, statistics, the Ollama double
//! in its own process, the four real MCP servers, a raw rmcp client, and `chat` as a child.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ollama_mcp_bot::config::{BotConfig, McpServer, McpTransport};
use ollama_mcp_tests::bot_process::{bot_binary, test_config, write_config};
use ollama_mcp_tests::servers;
use rmcp::ServiceExt as _;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// User + system CPU time of this whole process (every thread), from getrusage(RUSAGE_SELF).
pub fn cpu_time() -> Duration {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => timeval(u.user_time()) + timeval(u.system_time()),
        Err(_) => Duration::ZERO,
    }
}

fn timeval(t: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
}

/// User + system CPU time of another process, from `/proc/<pid>/stat` (clock-tick resolution,
/// threads that already exited included).
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let c = process_counters(pid)?;
    Ok(c.user + c.system)
}

/// What another process has spent so far (threads that already exited included): user and
/// system CPU time (clock-tick resolution) and minor page faults, from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessCounters {
    pub user: Duration,
    pub system: Duration,
    pub minor_faults: u64,
}

impl std::ops::Sub for ProcessCounters {
    type Output = Self;
    fn sub(self, before: Self) -> Self {
        Self {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
            minor_faults: self.minor_faults.saturating_sub(before.minor_faults),
        }
    }
}

pub fn process_counters(pid: u32) -> anyhow::Result<ProcessCounters> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After "comm)": state is field 3, minflt 10, utime 14 and stime 15 (1-based, as in proc(5)).
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc stat line")?
            .parse::<u64>()?)
    };
    let hz = clock_ticks() as f64;
    let tick = |n: u64| Duration::from_secs_f64(n as f64 / hz);
    Ok(ProcessCounters {
        user: tick(field(14)?),
        system: tick(field(15)?),
        minor_faults: field(10)?,
    })
}

/// CPU time of every live thread of another process, in nanoseconds, from
/// `/proc/<pid>/task/*/schedstat` (the scheduler's own run time: no 10 ms ticks), and the ids of
/// those threads. Threads that exited are not in it: compare the ids before and after.
pub fn threads_cpu(pid: u32) -> anyhow::Result<(Duration, Vec<u32>)> {
    let mut total = 0u64;
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A thread may exit between the listing and the read.
        let Ok(line) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        total += line
            .split_whitespace()
            .next()
            .context("empty schedstat")?
            .parse::<u64>()?;
        tids.push(tid);
    }
    tids.sort_unstable();
    Ok((Duration::from_nanos(total), tids))
}

/// CPU of `pid` between two [`threads_cpu`] readings; an error when a thread exited between
/// them (its time would be missing).
pub fn cpu_between(
    before: &(Duration, Vec<u32>),
    after: &(Duration, Vec<u32>),
) -> anyhow::Result<Duration> {
    let lost: Vec<&u32> = before.1.iter().filter(|t| !after.1.contains(t)).collect();
    anyhow::ensure!(
        lost.is_empty(),
        "thread(s) {lost:?} exited during the measurement: their CPU would be missing"
    );
    Ok(after.0.saturating_sub(before.0))
}

/// Pins every thread of `pid` (and the threads they start later) to CPU 1, as the issue did.
pub fn pin(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset")?;
    ensure!(status.success(), "taskset failed: {status}");
    Ok(())
}

/// The load average now (1, 5 and 15 minutes), for the report.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`) or as a count (`Threads`).
pub fn proc_status(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and 90th percentile of a sample (nearest rank).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub p90: f64,
}

pub fn summary(values: &[f64]) -> Summary {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i]
        }
    };
    Summary {
        median: rank(0.5),
        p90: rank(0.9),
    }
}

/// A markdown table on stdout.
#[allow(clippy::print_stdout, reason = "the benchmark's report goes to stdout")]
pub fn table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    println!("\n### {title}\n");
    println!("| {} |", headers.join(" | "));
    println!(
        "|{}|",
        headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}

#[allow(clippy::print_stdout, reason = "the benchmark's report goes to stdout")]
pub fn note(text: &str) {
    println!("{text}");
}

/// The four MCP servers of the measurement, as the tests configure them.
pub fn four_servers(dir: &Path) -> Vec<McpServer> {
    vec![
        servers::memory(dir),
        servers::sequential_thinking(),
        servers::everything_stdio(),
        servers::fetch(),
    ]
}

/// Words in the double's plain replies (`--reply-words=N` on the benchmark's command line).
pub static REPLY_WORDS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The double's default reply length unless `--reply-words` says otherwise.
pub fn reply_words() -> usize {
    REPLY_WORDS.get().copied().unwrap_or(60)
}

/// The runtime `ollama-mcp-bot chat` runs on (bot/src/main.rs).
pub fn chat_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The runtime `ollama-mcp-bot run` (Discord) runs on.
pub fn discord_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
}

/// The Ollama double in a process of its own, so that its CPU is not counted as ours.
pub struct DoubleProcess {
    // Killed on drop.
    _child: Child,
    // Closing it tells the double to exit (`--exit-on-eof`), even if we die without killing it.
    _stdin: ChildStdin,
    pub url: String,
}

impl DoubleProcess {
    /// `--instant`, recording `/api/chat` bodies into `record` if given.
    pub async fn spawn(record: Option<&Path>) -> anyhow::Result<Self> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(path) = record {
            args.extend(["--record".into(), path.into()]);
        }
        Self::spawn_with(&args).await
    }

    /// `--instant`, recording the `/api/chat` bodies into `record` and what each prompt cost
    /// (the double's prompt-cache model) into `evals`.
    pub async fn spawn_logging(record: &Path, evals: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(&[
            "--record".into(),
            record.into(),
            "--eval-log".into(),
            evals.into(),
        ])
        .await
    }

    async fn spawn_with(extra: &[std::ffi::OsString]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ollama-double"));
        cmd.args(["--port", "0", "--instant", "--exit-on-eof"]);
        cmd.arg("--reply-words").arg(reply_words().to_string());
        cmd.args(extra);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning ollama-double")?;
        let stdin = child.stdin.take().context("double stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("double stdout")?).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("ollama-double did not say where it listens within 30 s")??
            .context("ollama-double exited before listening")?;
        let url = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from ollama-double: {first:?}"))?
            .to_string();
        Ok(Self {
            _child: child,
            _stdin: stdin,
            url,
        })
    }
}

/// A raw rmcp client on a stdio server, spawned the plain way (no process group, stderr
/// discarded): the baseline the hub is compared with.
pub async fn raw_connect(config: &McpServer) -> anyhow::Result<RunningService<RoleClient, ()>> {
    let McpTransport::Stdio(stdio) = &config.transport else {
        bail!("{} is not a stdio server", config.name);
    };
    let mut cmd = Command::new(&stdio.command);
    cmd.args(&stdio.args).envs(&stdio.env).kill_on_drop(true);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {}", config.name))?;
    ().serve(transport)
        .await
        .with_context(|| format!("MCP handshake with {}", config.name))
}

/// `ollama-mcp-bot chat` (the RELEASE build next to this benchmark) on piped stdin, stderr into
/// a file (a full stderr pipe would stall it).
pub struct Chat {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    pub stderr_path: PathBuf,
}

impl Chat {
    /// Writes a test configuration for `servers` into `dir` and starts `chat` on it.
    pub fn spawn(
        dir: &Path,
        ollama_url: &str,
        servers: Vec<McpServer>,
        edit: impl FnOnce(&mut BotConfig),
    ) -> anyhow::Result<Self> {
        let mut config = test_config(dir, ollama_url, servers);
        edit(&mut config);
        let path = write_config(dir, &config);
        let stderr_path = dir.join("chat.stderr");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut child = Command::new(bot_binary())
            .arg("chat")
            .arg("--config")
            .arg(&path)
            .args(["--session", "bench"])
            .env_remove("RUST_LOG")
            .env_remove("OLLAMA_HOST")
            .env_remove("OLLAMA_MCP_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("spawning ollama-mcp-bot chat")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("chat stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            stdout,
            stderr_path,
        })
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("chat has exited")
    }

    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("chat stdin closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    pub async fn reply(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match tokio::time::timeout(timeout, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            other => bail!(
                "chat gave no reply within {timeout:?} ({other:?}); its stderr: {}",
                std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
            ),
        }
    }

    /// Sends one message and waits for its reply.
    pub async fn turn(&mut self, line: &str) -> anyhow::Result<String> {
        self.send(line).await?;
        self.reply(Duration::from_secs(180)).await
    }

    /// Closes stdin and waits for a clean exit.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("chat did not exit at end of input")??;
        if !status.success() {
            bail!(
                "chat exited with {status}; its stderr: {}",
                std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
            );
        }
        Ok(())
    }
}
