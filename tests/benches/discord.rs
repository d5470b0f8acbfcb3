//! The Discord benchmarks of issue 3: the RELEASE `ollama-mcp-bot run` between the Discord double
//! (in this process) and the Ollama double (its own process, `--instant`), no MCP servers.
//!
//! ```text
//! cargo build --release -p ollama-mcp-bot
//! cargo bench -p ollama-mcp-tests --bench discord              # everything (~2 min)
//! cargo bench -p ollama-mcp-tests --bench discord -- --quick   # fewer messages
//! cargo bench -p ollama-mcp-tests --bench discord -- --floor   # the same, for `discord-floor`
//! ```
//!
//! `--floor` runs `tests/src/bin/discord-floor.rs` in the bot's place: the same Discord and HTTP
//! libraries doing only what cannot be left out (one Ollama stream, one reply POST per message),
//! so that its CPU per message is what ours cannot go below. It combines with `--callgrind`.
//!
//! Measured, as llmcord was measured (figures in docs/BENCHMARKS.md):
//! - idle RSS of the bot process (connected, no conversation yet), and after 1000 conversations;
//! - mention → first POST of the reply (from the double dispatching MESSAGE_CREATE to the double
//!   receiving the reply's create-message request), one message at a time (at most ten a
//!   second, inside the global budget); this bounds "first token → first Discord message" from
//!   above, as the first token comes after the mention;
//! - CPU of the bot at 50 messages/s (Discord's global limit is 50 requests/s): user + system
//!   time from /proc over the wall time, per answered message, and the latency under that load;
//! - messages per second when messages arrive as fast as the double can send them.
//!
//! Discord's own limits are relaxed in the double (the bot would otherwise wait for them, which
//! measures Discord, not the bot). Each message has 60 words, and the model echoes it (about 70
//! words), so a reply is one message posted and then edited as the stream arrives.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ollama_mcp_tests::bot_process::{binary, bot_binary, test_config, write_config};
use ollama_mcp_tests::discord_double::{DiscordDouble, DoubleConfig, Limit};
use tokio::process::{Child, Command};

#[path = "engine/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the engine benchmark; this one uses a few of its helpers"
)]
mod support;

use support::{
    DoubleProcess, ProcessCounters, ms, proc_status, process_counters, process_cpu, summary, table,
};

const TOKEN: &str = "MTE4OTk.bench.token";
const CHANNELS: usize = 50;
/// One-at-a-time messages start at least this far apart (see `run`).
const SEQUENTIAL_SPACING: Duration = Duration::from_millis(100);

struct Bench {
    discord: DiscordDouble,
    channels: Vec<u64>,
    users: Vec<u64>,
    // Killed on drop.
    _bot: Child,
    pid: u32,
    _ollama: DoubleProcess,
    _dir: tempfile::TempDir,
}

/// A 60-word message: the model's echo of it is then exactly `echo: <message>`.
fn message(i: usize) -> String {
    let words: Vec<String> = (0..57).map(|w| format!("word{}", (i + w) % 97)).collect();
    format!("bench message {i} {}", words.join(" "))
}

async fn start(users: usize, wrapper: Option<&std::path::Path>) -> anyhow::Result<Bench> {
    let ollama = DoubleProcess::spawn(None).await?;
    let mut config = DoubleConfig::new(TOKEN);
    for route in [
        "create_message",
        "edit_message",
        "delete_message",
        "typing",
        "webhook",
    ] {
        config
            .limits
            .insert(route, Limit::new(100_000, Duration::from_secs(1)));
    }
    config.global_limit = Limit::new(1_000_000, Duration::from_secs(1));
    let discord = DiscordDouble::start_with(config).await;
    let guild = discord.add_guild("bench");
    let channels: Vec<u64> = (0..CHANNELS)
        .map(|i| discord.add_text_channel(guild, &format!("c{i}")))
        .collect();
    let users: Vec<u64> = (0..users)
        .map(|i| discord.add_user(&format!("user{i}")))
        .collect();
    for u in &users {
        discord.add_member(guild, *u, &[]);
    }
    let dir = tempfile::tempdir()?;
    let mut bot_config = test_config(dir.path(), &ollama.url, Vec::new());
    bot_config.discord.api_base = discord.api_base();
    bot_config.discord.rate_limit.messages = 1_000_000;
    bot_config.discord.rate_limit.per_seconds = 1;
    bot_config.discord.rate_limit.max_concurrent_per_guild = 64;
    bot_config.discord.max_queue = 100_000;
    bot_config.log.filter = "warn".into();
    let path = write_config(dir.path(), &bot_config);
    let log = std::fs::File::create(dir.path().join("bot.log"))?;
    // The bot on one core, as the issue measured it; `--callgrind` runs it under callgrind
    // (instruction counts do not change with the machine's load).
    let program = if floor() {
        binary("discord-floor")
    } else {
        bot_binary()
    };
    let tool = std::env::var("OLLAMA_MCP_BENCH_WRAPPER").unwrap_or_default();
    let tool: Vec<&str> = tool.split_whitespace().collect();
    let mut command = match (wrapper, which("taskset")) {
        // Any other tool around the bot, e.g. `valgrind --tool=massif --massif-out-file=m.out`
        // to see what holds its heap after the conversations (docs/BENCHMARKS.md, Discord).
        (None, _) if !tool.is_empty() => {
            let mut c = Command::new(tool[0]);
            c.args(&tool[1..]).arg(&program);
            c
        }
        (Some(out), _) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&program);
            c
        }
        (None, true) => {
            let mut c = Command::new("taskset");
            c.args(["-c", "1"]).arg(&program);
            c
        }
        (None, false) => Command::new(&program),
    };
    if floor() {
        command
            .env("DISCORD_API_BASE", discord.api_base())
            .env("OLLAMA_URL", &ollama.url)
            .env("OLLAMA_MODEL", &bot_config.ollama.model);
    } else {
        command.arg("run").arg("--config").arg(&path);
    }
    let bot = command
        .env("DISCORD_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .env_remove("DISCORD_TOKEN_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", program.display()))?;
    let pid = bot.id().context("bot pid")?;
    discord
        .wait_for("the bot to connect", Duration::from_secs(300), |w| {
            (w.attached && !w.registrations.is_empty()).then_some(())
        })
        .await;
    Ok(Bench {
        discord,
        channels,
        users,
        _bot: bot,
        pid,
        _ollama: ollama,
        _dir: dir,
    })
}

impl Bench {
    fn mention(&self, i: usize) -> String {
        format!("<@{}> {}", self.discord.bot_id(), message(i))
    }

    /// Sends message `i` from user `user` in channel `i % CHANNELS`; returns its id and the
    /// reply it must get.
    fn send(&self, i: usize, user: usize) -> (u64, String) {
        let channel = self.channels[i % self.channels.len()];
        let id = self.discord.user_says(
            self.users[user % self.users.len()],
            channel,
            &self.mention(i),
        );
        (id, format!("echo: {}", message(i)))
    }

    /// Waits until every message has its complete reply; returns (first POST latency, time
    /// until complete) per message.
    async fn answered(
        &self,
        sent: &[(u64, String)],
        timeout: Duration,
    ) -> anyhow::Result<Vec<(Duration, Duration)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.discord.with(|w| {
                let mut out = Vec::with_capacity(sent.len());
                for (id, expected) in sent {
                    let reply = w
                        .replies_to(*id)
                        .into_iter()
                        .next()
                        .filter(|r| r.content == *expected);
                    let (Some(reply), Some(asked)) = (reply, w.messages.get(id)) else {
                        return None;
                    };
                    let finished = reply.edited_at.last().copied().unwrap_or(reply.created_at);
                    out.push((
                        reply.created_at - asked.created_at,
                        finished - asked.created_at,
                    ));
                }
                Some(out)
            });
            if let Some(d) = done {
                return Ok(d);
            }
            ensure!(
                Instant::now() < deadline,
                "not every message was answered within {timeout:?}\n{}",
                self.discord.summary()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn rss_mib(&self) -> anyhow::Result<f64> {
        Ok(proc_status(self.pid, "VmRSS")? as f64 / 1024.0)
    }
}

/// `--floor`: measure `discord-floor` instead of the bot.
fn floor() -> bool {
    std::env::args().any(|a| a == "--floor")
}

fn fmt(v: f64) -> String {
    format!("{v:.2}")
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Context switches of every thread of `pid` so far (voluntary + involuntary): each is a time
/// the bot woke up (or was put to sleep) for any reason.
fn context_switches(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        for key in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// CPU, REST writes and latencies while `count` messages arrive at `per_second`.
struct Paced {
    cpu_per_message: f64,
    /// User and system CPU and minor page faults over the phase, and the context switches of
    /// the threads alive at both ends (divided by `count` in the report).
    spent: ProcessCounters,
    switches: u64,
    core_share: f64,
    first_post: support::Summary,
    complete: support::Summary,
    busiest_second: usize,
    writes: usize,
    first: usize,
    count: usize,
}

async fn paced(b: &Bench, per_second: u32, count: usize, offset: usize) -> anyhow::Result<Paced> {
    let before = process_counters(b.pid)?;
    let switches_before = context_switches(b.pid)?;
    let started = Instant::now();
    let mut sent = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    for i in 0..count {
        tick.tick().await;
        sent.push(b.send(offset + i, i));
    }
    // `answered` fails unless every message has exactly one complete reply: none lost or cut.
    let done = b.answered(&sent, Duration::from_secs(300)).await?;
    let wall = started.elapsed();
    let spent = process_counters(b.pid)? - before;
    // A blocking thread that exited takes its switches along: never below zero.
    let switches = context_switches(b.pid)?.saturating_sub(switches_before);
    let cpu = spent.user + spent.system;
    let (busiest_second, writes, first) = b.discord.with(|w| {
        let writes = w.writes_since(started);
        let posts = w
            .rest_calls
            .iter()
            .filter(|c| c.at >= started && c.route == "create_message")
            .count();
        (w.busiest_second_writes(started), writes.len(), posts)
    });
    Ok(Paced {
        cpu_per_message: ms(cpu) / count as f64,
        spent,
        switches,
        core_share: cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        first_post: summary(&done.iter().map(|(p, _)| ms(*p)).collect::<Vec<_>>()),
        complete: summary(&done.iter().map(|(_, d)| ms(*d)).collect::<Vec<_>>()),
        busiest_second,
        writes,
        first,
        count,
    })
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick");
    let callgrind = std::env::args().any(|a| a == "--callgrind");
    let runtime = tokio::runtime::Runtime::new()?;
    if callgrind {
        runtime.block_on(instructions())
    } else {
        runtime.block_on(run(quick))
    }
}

/// `--callgrind`: instructions the bot executes per answered message (user space only, every
/// thread), from callgrind's counters zeroed after a warm-up and dumped after `N` messages sent
/// one at a time (valgrind runs the bot ~50× slower, so no paced load).
async fn instructions() -> anyhow::Result<()> {
    const N: usize = 40;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("callgrind.out");
    let b = start(N + 10, Some(&out)).await?;
    let warm: Vec<_> = (0..5).map(|i| b.send(i, 0)).collect();
    b.answered(&warm, Duration::from_secs(300)).await?;
    let control = |arg: &str| {
        std::process::Command::new("callgrind_control")
            .args([arg, &b.pid.to_string()])
            .output()
    };
    let zeroed = control("-z")?;
    ensure!(
        zeroed.status.success(),
        "callgrind_control -z {}: {}",
        b.pid,
        String::from_utf8_lossy(&zeroed.stdout)
    );
    for i in 0..N {
        let sent = [b.send(100_000 + i, i)];
        b.answered(&sent, Duration::from_secs(300)).await?;
    }
    let dumped = control("-d")?;
    ensure!(
        dumped.status.success(),
        "callgrind_control -d {}: {}",
        b.pid,
        String::from_utf8_lossy(&dumped.stdout)
    );
    // The dump is written by the bot's process a moment after the request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir.path())? {
        let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        // The dump that `-d` asked for (one file: threads are not separated).
        if let Some(n) = text
            .lines()
            .find_map(|l| l.strip_prefix("summary: ").or(l.strip_prefix("totals: ")))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            && text.contains("Trigger: dump")
        {
            total += n;
        }
    }
    ensure!(total > 0, "no callgrind dump in {}", dir.path().display());
    // `OLLAMA_MCP_BENCH_KEEP=1`: keep the dump for `callgrind_annotate` (a binary with symbols:
    // the `dist` build, via OLLAMA_MCP_BOT_BINARY).
    if std::env::var_os("OLLAMA_MCP_BENCH_KEEP").is_some() {
        support::note(&format!("callgrind dumps kept in {}", dir.keep().display()));
        return Ok(());
    }
    support::note(&format!(
        "instructions per answered message (callgrind, {N} messages one at a time): {:.0}",
        total as f64 / N as f64
    ));
    drop(b);
    Ok(())
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let at_50 = if quick { 250 } else { 1000 };
    let at_10 = if quick { 50 } else { 200 };
    let sequential = if quick { 50 } else { 200 };
    let b = start(at_50, None).await?;
    support::note(&format!(
        "# Discord benchmarks (issues 3, 13){}{}\n\nmachine: {} CPUs, load average {} at the start",
        if quick { " — quick run" } else { "" },
        if floor() {
            " — discord-floor, not the bot"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(0, usize::from),
        support::loadavg(),
    ));

    // Idle: connected, commands registered, nothing asked yet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = b.rss_mib()?;
    let kib = |key: &str| proc_status(b.pid, key).map(|k| k as f64 / 1024.0);
    let (anon, file, shmem) = (kib("RssAnon")?, kib("RssFile")?, kib("RssShmem")?);
    let idle_window = Duration::from_secs(20);
    let heartbeats_before = b.discord.with(|w| w.heartbeats);
    let switches_before = context_switches(b.pid)?;
    tokio::time::sleep(idle_window).await;
    let wakeups = context_switches(b.pid)? - switches_before;
    let heartbeats = b.discord.with(|w| w.heartbeats) - heartbeats_before;
    let idle_load = support::loadavg();

    // Mention → first POST, one message at a time (warm-up first), at most ten a second: sent
    // back to back, each reply's POST and edits (~2.3 requests) would ask for more than the
    // global budget's 40 requests a second, and the figure would be the budget's queue, not the
    // bot's latency (the 10 and 50 msg/s phases below measure the bot under load).
    let warm: Vec<_> = (0..10).map(|i| b.send(i, 0)).collect();
    b.answered(&warm, Duration::from_secs(60)).await?;
    let mut first_post = Vec::new();
    let mut complete = Vec::new();
    for i in 0..sequential {
        let next = Instant::now() + SEQUENTIAL_SPACING;
        let sent = [b.send(100_000 + i, i)];
        let (post, done) = b.answered(&sent, Duration::from_secs(30)).await?[0];
        first_post.push(ms(post));
        complete.push(ms(done));
        tokio::time::sleep_until(next.into()).await;
    }
    let fp = summary(&first_post);
    let full = summary(&complete);

    // 10, then 50 messages per second, each from a different user.
    let ten = paced(&b, 10, at_10, 150_000).await?;
    let fifty = paced(&b, 50, at_50, 200_000).await?;
    let paced_load = support::loadavg();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = b.rss_mib()?;
    let (after_anon, after_file) = (kib("RssAnon")?, kib("RssFile")?);
    let after_threads = proc_status(b.pid, "Threads")?;

    // As fast as messages can arrive.
    let burst = at_50;
    let cpu_before = process_cpu(b.pid)?;
    let started = Instant::now();
    let sent: Vec<_> = (0..burst).map(|i| b.send(300_000 + i, i)).collect();
    b.answered(&sent, Duration::from_secs(300)).await?;
    let burst_wall = started.elapsed();
    let burst_cpu = process_cpu(b.pid)? - cpu_before;
    let rate = burst as f64 / burst_wall.as_secs_f64();

    let row = |a: &str, b: String, c: &str, d: &str| vec![a.into(), b, c.into(), d.into()];
    let rows = vec![
        row(
            "idle RSS (total / anonymous / file / shmem)",
            format!("{idle:.1} MiB ({anon:.1} / {file:.1} / {shmem:.1})"),
            "≤ 13 MiB",
            "71.7 MiB",
        ),
        row(
            "idle wake-ups per 20 s (context switches, all threads)",
            format!(
                "{wakeups} ({heartbeats} gateway heartbeat(s) in the window; load {idle_load})"
            ),
            "≤ 10 besides the heartbeat",
            "1",
        ),
        row(
            &format!("RSS after {} conversations", at_10 + at_50 + sequential),
            format!(
                "{after:.1} MiB ({:.2}× idle; {after_anon:.1} anonymous / {after_file:.1} file; {after_threads} threads)",
                after / idle
            ),
            "< 1.5× idle",
            "189 MiB after 200",
        ),
        row(
            "mention → first POST, one at a time (median / p90)",
            format!("{} / {} ms", fmt(fp.median), fmt(fp.p90)),
            "< 9 ms median",
            "46 ms",
        ),
        row(
            "mention → reply complete, one at a time (median / p90)",
            format!("{} / {} ms", fmt(full.median), fmt(full.p90)),
            "",
            "",
        ),
        row(
            "CPU per answered message at 10 / 50 msg/s",
            format!(
                "{} / {} ms (load {paced_load})",
                fmt(ten.cpu_per_message),
                fmt(fifty.cpu_per_message)
            ),
            "≤ 0.9 ms",
            "37 / 32 ms",
        ),
        row(
            "CPU per message at 10 / 50 msg/s: user + system; minor faults; context switches",
            [&ten, &fifty]
                .iter()
                .map(|p| {
                    let each = |d: Duration| fmt(ms(d) / p.count as f64);
                    format!(
                        "{} + {} ms; {:.1}; {:.1}",
                        each(p.spent.user),
                        each(p.spent.system),
                        p.spent.minor_faults as f64 / p.count as f64,
                        p.switches as f64 / p.count as f64
                    )
                })
                .collect::<Vec<_>>()
                .join(" / "),
            "",
            "",
        ),
        row(
            "CPU at 10 / 50 msg/s",
            format!(
                "{:.1} / {:.1} % of one core",
                ten.core_share, fifty.core_share
            ),
            "",
            "",
        ),
        row(
            "REST writes in the busiest 1-s window at 50 msg/s (all routes)",
            format!(
                "{} ({} writes for {at_50} replies, {} of them POSTs)",
                fifty.busiest_second, fifty.writes, fifty.first
            ),
            "≤ 50",
            "186",
        ),
        row(
            "REST writes in the busiest 1-s window at 10 msg/s",
            format!(
                "{} ({} writes for {at_10} replies)",
                ten.busiest_second, ten.writes
            ),
            "",
            "",
        ),
        row(
            "first POST at 10 / 50 msg/s (median / p90)",
            format!(
                "{} / {} ms, {} / {} ms",
                fmt(ten.first_post.median),
                fmt(ten.first_post.p90),
                fmt(fifty.first_post.median),
                fmt(fifty.first_post.p90)
            ),
            "",
            "",
        ),
        row(
            "reply complete at 10 / 50 msg/s (median / p90)",
            format!(
                "{} / {} ms, {} / {} ms",
                fmt(ten.complete.median),
                fmt(ten.complete.p90),
                fmt(fifty.complete.median),
                fmt(fifty.complete.p90)
            ),
            "",
            "",
        ),
        row(
            "messages per second, burst",
            format!(
                "{rate:.0} msg/s ({} ms CPU each)",
                fmt(ms(burst_cpu) / burst as f64)
            ),
            "",
            "20–25 msg/s",
        ),
    ];
    table(
        "Discord bot, release build pinned to one core, instant model",
        &["measure", "ours", "target", "llmcord"],
        &rows,
    );
    if std::env::var_os("OLLAMA_MCP_BENCH_WRAPPER").is_some() {
        // A tool around the bot (massif) writes its report when the bot exits: stop it as an
        // operator would (SIGTERM) and wait, instead of killing it.
        let mut b = b;
        std::process::Command::new("kill")
            .args(["-TERM", &b.pid.to_string()])
            .status()?;
        tokio::time::timeout(Duration::from_secs(120), b._bot.wait()).await??;
        return Ok(());
    }
    drop(b);
    Ok(())
}
