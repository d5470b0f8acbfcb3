//! The Discord benchmarks of issue 3: the RELEASE `ollama-mcp-bot run` between the Discord double
//! (in this process) and the Ollama double (its own process, `--instant`), no MCP servers.
//!
//! ```text
//! cargo build --release -p ollama-mcp-bot
//! cargo bench -p ollama-mcp-tests --bench discord              # everything (~2 min)
//! cargo bench -p ollama-mcp-tests --bench discord -- --quick   # fewer messages
//! ```
//!
//! Measured, as llmcord was measured (figures in docs/BENCHMARKS.md):
//! - idle RSS of the bot process (connected, no conversation yet), and after 1000 conversations;
//! - mention → first POST of the reply (from the double dispatching MESSAGE_CREATE to the double
//!   receiving the reply's create-message request), one message at a time; this bounds "first
//!   token → first Discord message" from above, as the first token comes after the mention;
//! - CPU of the bot at 50 messages/s (Discord's global limit is 50 requests/s): user + system
//!   time from /proc over the wall time, per answered message, and the latency under that load;
//! - messages per second when messages arrive as fast as the double can send them.
//!
//! Discord's own limits are relaxed in the double (the bot would otherwise wait for them, which
//! measures Discord, not the bot). Each message has 60 words, and the model echoes it (about 70
//! words), so a reply is one message posted and then edited as the stream arrives.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ollama_mcp_tests::bot_process::{bot_binary, test_config, write_config};
use ollama_mcp_tests::discord_double::{DiscordDouble, DoubleConfig, Limit};
use tokio::process::{Child, Command};

#[path = "engine/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the engine benchmark; this one uses a few of its helpers"
)]
mod support;

use support::{DoubleProcess, ms, proc_status, process_cpu, summary, table};

const TOKEN: &str = "MTE4OTk.bench.token";
const CHANNELS: usize = 50;

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

async fn start(users: usize) -> anyhow::Result<Bench> {
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
    let bot = Command::new(bot_binary())
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("DISCORD_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .env_remove("DISCORD_TOKEN_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("spawning ollama-mcp-bot run")?;
    let pid = bot.id().context("bot pid")?;
    discord
        .wait_for("the bot to connect", Duration::from_secs(60), |w| {
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

fn fmt(v: f64) -> String {
    format!("{v:.2}")
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(quick))
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let conversations = if quick { 250 } else { 1000 };
    let sequential = if quick { 50 } else { 200 };
    let b = start(conversations).await?;
    support::note(&format!(
        "# Discord benchmarks (issue 3){}\n\nmachine: {} CPUs, load average {}",
        if quick { " — quick run" } else { "" },
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));

    // Idle: connected, commands registered, nothing asked yet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = b.rss_mib()?;

    // Mention → first POST, one message at a time (warm-up first).
    let warm: Vec<_> = (0..10).map(|i| b.send(i, 0)).collect();
    b.answered(&warm, Duration::from_secs(60)).await?;
    let mut first_post = Vec::new();
    let mut complete = Vec::new();
    for i in 0..sequential {
        let sent = [b.send(100_000 + i, i)];
        let (post, done) = b.answered(&sent, Duration::from_secs(30)).await?[0];
        first_post.push(ms(post));
        complete.push(ms(done));
    }
    let fp = summary(&first_post);
    let full = summary(&complete);

    // 50 messages per second, each from a different user: `conversations` new sessions.
    let cpu_before = process_cpu(b.pid)?;
    let started = Instant::now();
    let mut sent = Vec::with_capacity(conversations);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..conversations {
        tick.tick().await;
        sent.push(b.send(200_000 + i, i));
    }
    let under_load = b.answered(&sent, Duration::from_secs(120)).await?;
    let wall = started.elapsed();
    let cpu = process_cpu(b.pid)? - cpu_before;
    let load_fp = summary(&under_load.iter().map(|(p, _)| ms(*p)).collect::<Vec<_>>());
    let load_done = summary(&under_load.iter().map(|(_, d)| ms(*d)).collect::<Vec<_>>());
    let per_message = ms(cpu) / conversations as f64;
    let core_share = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = b.rss_mib()?;

    // As fast as messages can arrive.
    let burst = conversations;
    let cpu_before = process_cpu(b.pid)?;
    let started = Instant::now();
    let sent: Vec<_> = (0..burst).map(|i| b.send(300_000 + i, i)).collect();
    b.answered(&sent, Duration::from_secs(300)).await?;
    let burst_wall = started.elapsed();
    let burst_cpu = process_cpu(b.pid)? - cpu_before;
    let rate = burst as f64 / burst_wall.as_secs_f64();

    let rows = vec![
        vec![
            "idle RSS".into(),
            format!("{idle:.1} MiB"),
            "< 18 MiB".into(),
            "73.8 MiB".into(),
        ],
        vec![
            format!("RSS after {conversations} conversations"),
            format!("{after:.1} MiB ({:.2}× idle)", after / idle),
            "< 1.5× idle".into(),
            "189 MiB after 200".into(),
        ],
        vec![
            "mention → first POST (median / p90)".into(),
            format!("{} / {} ms", fmt(fp.median), fmt(fp.p90)),
            "< 9 ms median".into(),
            "46 ms".into(),
        ],
        vec![
            "mention → reply complete (median / p90)".into(),
            format!("{} / {} ms", fmt(full.median), fmt(full.p90)),
            "".into(),
            "".into(),
        ],
        vec![
            "CPU per answered message at 50 msg/s".into(),
            format!("{} ms", fmt(per_message)),
            "< 2.3 ms".into(),
            "46 ms".into(),
        ],
        vec![
            "CPU at 50 msg/s".into(),
            format!("{core_share:.1}% of one core"),
            "< 10%".into(),
            "saturates one core at 20–25 msg/s".into(),
        ],
        vec![
            "first POST under 50 msg/s (median / p90)".into(),
            format!("{} / {} ms", fmt(load_fp.median), fmt(load_fp.p90)),
            "no queueing".into(),
            "".into(),
        ],
        vec![
            "reply complete under 50 msg/s (median / p90)".into(),
            format!("{} / {} ms", fmt(load_done.median), fmt(load_done.p90)),
            "".into(),
            "".into(),
        ],
        vec![
            "messages per second, burst".into(),
            format!(
                "{rate:.0} msg/s ({} ms CPU each)",
                fmt(ms(burst_cpu) / burst as f64)
            ),
            "".into(),
            "20–25 msg/s".into(),
        ],
    ];
    table(
        "Discord bot, release build, instant model",
        &["measure", "ours", "target", "llmcord"],
        &rows,
    );
    drop(b);
    Ok(())
}
