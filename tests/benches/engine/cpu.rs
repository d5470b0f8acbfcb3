//! Target 2: engine CPU per turn with an instant model double in another process, the 4 real
//! MCP servers attached (their 24+ tools offered in every request) and the SQLite store on disk.
//!
//! Measured in this process with getrusage(RUSAGE_SELF) deltas around batches of turns driven
//! through `Engine::turn` (every thread counted: runtime workers and the blocking pool that runs
//! SQLite). The double and the MCP servers are other processes. The headline (issue 13) comes
//! first: the release binary, whole process, from `/proc/<pid>/task/*/schedstat`. Then one tool
//! call through the hub against one raw rmcp call to another instance of the same server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ollama_mcp_bot::config::BotConfig;
use ollama_mcp_bot::conversation::{Engine, Silent, TurnRequest, TurnResult};
use ollama_mcp_bot::llm::OllamaClient;
use ollama_mcp_bot::mcp::{HubOptions, McpHub, OutcomeKind, ServerState, ToolHost as _};
use ollama_mcp_bot::store::Store;
use ollama_mcp_tests::servers;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

use super::support::{
    Chat, DoubleProcess, chat_runtime, cpu_between, cpu_time, discord_runtime, four_servers,
    loadavg, ms, pin, raw_connect, reply_words, summary, table, threads_cpu,
};

pub struct Sizes {
    pub warmup: usize,
    pub batches: usize,
    pub per_batch: usize,
    /// Turns through the binary (its CPU clock ticks at 10 ms: many turns are needed).
    pub binary_turns: usize,
}

fn plain(i: usize) -> String {
    format!("Tell me one interesting thing about the number {i}, please.")
}

fn tool(i: usize) -> String {
    format!(r#"Say it back to me: [[call everything__echo {{"message": "hello {i}"}}]]"#)
}

fn check_plain(i: usize, r: &TurnResult) -> anyhow::Result<()> {
    ensure!(
        r.tool_calls == 0
            && r.reply.starts_with("echo: Tell me")
            && r.reply.contains(&i.to_string()),
        "unexpected plain turn {r:?}"
    );
    Ok(())
}

fn check_tool(i: usize, r: &TurnResult) -> anyhow::Result<()> {
    ensure!(
        // The first tool turn searches for the tool first (tools load on demand).
        (r.tool_calls == 1 || (i == 0 && r.tool_calls == 2))
            && r.reply.contains(&format!("Echo: hello {i}")),
        "the echo tool's real result did not come back: {r:?}"
    );
    Ok(())
}

struct TurnFigures {
    /// CPU per turn, one value per batch (ms).
    cpu: Vec<f64>,
    /// Wall time per turn (ms).
    wall: Vec<f64>,
}

async fn measure(
    engine: &Engine,
    session: &str,
    text: fn(usize) -> String,
    check: fn(usize, &TurnResult) -> anyhow::Result<()>,
    sizes: &Sizes,
) -> anyhow::Result<TurnFigures> {
    let mut i = 0;
    let turn = async |i: usize| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let result = engine
            .turn(TurnRequest::new(session, text(i)), &Silent)
            .await
            .with_context(|| format!("turn {i} of {session}"))?;
        let elapsed = started.elapsed();
        check(i, &result)?;
        Ok(elapsed)
    };
    for _ in 0..sizes.warmup {
        turn(i).await?;
        i += 1;
    }
    let mut figures = TurnFigures {
        cpu: Vec::new(),
        wall: Vec::new(),
    };
    for _ in 0..sizes.batches {
        let before = cpu_time();
        for _ in 0..sizes.per_batch {
            figures.wall.push(ms(turn(i).await?));
            i += 1;
        }
        figures
            .cpu
            .push(ms(cpu_time() - before) / sizes.per_batch as f64);
    }
    Ok(figures)
}

/// Figures of one runtime flavour.
struct Flavour {
    label: &'static str,
    tools: usize,
    plain: TurnFigures,
    tool: TurnFigures,
    overhead: Overhead,
}

async fn in_process(label: &'static str, sizes: &Sizes) -> anyhow::Result<Flavour> {
    let double = DoubleProcess::spawn(None).await?;
    let dir = tempfile::tempdir()?;
    let mut config = BotConfig::default();
    config.ollama.url = double.url.clone();
    config.store.path = dir.path().join("bot.db").display().to_string();
    config.mcp.servers = four_servers(dir.path());
    config.metrics.listen = String::new();

    let hub = McpHub::start(&config.mcp.servers, HubOptions::from_chat(&config.chat)).await;
    for s in hub.status() {
        ensure!(
            s.state == ServerState::Ready,
            "{} did not start: {:?}",
            s.name,
            s.state
        );
    }
    let engine = Engine::new(
        Arc::new(OllamaClient::new(&config.ollama)?),
        hub.clone(),
        Store::open(&config.store.path)?,
        &config,
    );
    let plain = measure(&engine, "bench-plain", plain, check_plain, sizes).await?;
    let tool = measure(&engine, "bench-tool", tool, check_tool, sizes).await?;
    let overhead = tool_call_overhead(&hub, sizes).await?;
    let tools = hub.tools().len();
    hub.shutdown().await;
    Ok(Flavour {
        label,
        tools,
        plain,
        tool,
        overhead,
    })
}

pub fn run(sizes: &Sizes) -> anyhow::Result<()> {
    // The headline (issue 13): the whole release `chat` process.
    let load = loadavg();
    let (plain_cpu, tool_cpu) = chat_runtime()?.block_on(binary_cpu(sizes.binary_turns))?;
    table(
        &format!(
            "`chat` CPU per turn, whole process (release binary on piped stdin, pinned to CPU 1, every thread's run time from /proc/<pid>/task/*/schedstat over {} turns of each kind after 40 warm-up turns; load average {load} → {})",
            sizes.binary_turns,
            loadavg()
        ),
        &["turn", "CPU per turn (ms)", "target (issue 13)"],
        &[
            vec![
                "plain turn".into(),
                format!("{plain_cpu:.3}"),
                "≤ 1.0 ms".into(),
            ],
            vec![
                "one-tool turn".into(),
                format!("{tool_cpu:.3}"),
                "≤ 2.0 ms".into(),
            ],
        ],
    );

    let flavours = [
        chat_runtime()?.block_on(in_process("current-thread (as `chat`)", sizes))?,
        discord_runtime()?.block_on(in_process("multi-thread (as `run`, Discord)", sizes))?,
    ];

    let mut rows = Vec::new();
    for f in &flavours {
        for (name, figures, target) in [
            ("plain turn", &f.plain, "< 1 ms"),
            ("one-tool turn", &f.tool, "< 2 ms"),
        ] {
            let c = summary(&figures.cpu);
            let w = summary(&figures.wall);
            let first = figures.cpu.first().copied().unwrap_or(f64::NAN);
            let last = figures.cpu.last().copied().unwrap_or(f64::NAN);
            rows.push(vec![
                f.label.to_string(),
                name.to_string(),
                format!("{:.3}", c.median),
                format!("{:.3}", c.p90),
                format!("{first:.3} → {last:.3}"),
                format!("{:.2}", w.median),
                target.to_string(),
            ]);
        }
    }
    table(
        &format!(
            "Engine CPU per turn, in-process (`Engine::turn`; {} tools offered; SQLite on disk; {} batches × {} turns after {} warm-up turns; plain replies of {} words)",
            flavours[0].tools,
            sizes.batches,
            sizes.per_batch,
            sizes.warmup,
            reply_words()
        ),
        &[
            "runtime",
            "turn",
            "CPU median (ms)",
            "CPU p90 (ms)",
            "first → last batch (ms)",
            "wall median (ms)",
            "target",
        ],
        &rows,
    );

    let mut rows = Vec::new();
    for f in &flavours {
        let o = &f.overhead;
        let (hw, rw) = (summary(&o.hub_wall), summary(&o.raw_wall));
        let (hc, rc) = (summary(&o.hub_cpu), summary(&o.raw_cpu));
        rows.push(vec![
            f.label.to_string(),
            format!("{:.3} / {:.3}", rw.median, rw.p90),
            format!("{:.3} / {:.3}", hw.median, hw.p90),
            format!("{:+.3}", hw.median - rw.median),
            format!("{:.3}", rc.median),
            format!("{:.3}", hc.median),
            format!("{:+.3}", hc.median - rc.median),
        ]);
    }
    table(
        &format!(
            "One `echo` call: `McpHub::call` vs a raw rmcp `call_tool` on another instance of the same server ({} calls each, interleaved in batches of 10; ms)",
            flavours[0].overhead.hub_wall.len()
        ),
        &[
            "runtime",
            "raw wall median / p90",
            "hub wall median / p90",
            "hub overhead (wall)",
            "raw CPU per call",
            "hub CPU per call",
            "hub overhead (CPU)",
        ],
        &rows,
    );

    Ok(())
}

struct Overhead {
    hub_wall: Vec<f64>,
    raw_wall: Vec<f64>,
    hub_cpu: Vec<f64>,
    raw_cpu: Vec<f64>,
}

async fn tool_call_overhead(hub: &McpHub, sizes: &Sizes) -> anyhow::Result<Overhead> {
    let raw = raw_connect(&servers::everything_stdio()).await?;
    raw.peer().list_all_tools().await?;
    let raw_call = async |i: usize| -> anyhow::Result<()> {
        let args = json!({"message": format!("m{i}")});
        let params = CallToolRequestParams::new("echo")
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let result = raw.peer().call_tool(params).await?;
        ensure!(result.is_error != Some(true), "raw echo failed: {result:?}");
        Ok(())
    };
    let hub_call = async |i: usize| -> anyhow::Result<()> {
        let outcome = hub
            .call("everything__echo", json!({"message": format!("m{i}")}))
            .await;
        ensure!(
            outcome.kind == OutcomeKind::Ok,
            "hub echo failed: {outcome:?}"
        );
        Ok(())
    };
    const BATCH: usize = 10;
    for i in 0..sizes.warmup {
        hub_call(i).await?;
        raw_call(i).await?;
    }
    let mut o = Overhead {
        hub_wall: Vec::new(),
        raw_wall: Vec::new(),
        hub_cpu: Vec::new(),
        raw_cpu: Vec::new(),
    };
    let batches = (sizes.batches * sizes.per_batch * 3 / 2)
        .div_ceil(BATCH)
        .max(2);
    for b in 0..batches {
        for which in [b % 2, 1 - b % 2] {
            let before = cpu_time();
            for i in 0..BATCH {
                let started = Instant::now();
                if which == 0 {
                    hub_call(i).await?;
                    o.hub_wall.push(ms(started.elapsed()));
                } else {
                    raw_call(i).await?;
                    o.raw_wall.push(ms(started.elapsed()));
                }
            }
            let cpu = ms(cpu_time() - before) / BATCH as f64;
            if which == 0 {
                o.hub_cpu.push(cpu);
            } else {
                o.raw_cpu.push(cpu);
            }
        }
    }
    let _ = raw.cancel().await;
    Ok(o)
}

/// CPU of the release `chat` per plain turn and per one-tool turn, whole process.
async fn binary_cpu(turns: usize) -> anyhow::Result<(f64, f64)> {
    let double = DoubleProcess::spawn(None).await?;
    let dir = tempfile::tempdir()?;
    let mut chat = Chat::spawn(dir.path(), &double.url, four_servers(dir.path()), |_| {})?;
    let pid = chat.pid()?;
    pin(pid)?;
    for i in 0..20 {
        chat.turn(&plain(i)).await?;
        chat.turn(&tool(i)).await?;
    }
    let mut per_turn = Vec::new();
    for kind in [plain as fn(usize) -> String, tool] {
        let before = threads_cpu(pid)?;
        for i in 0..turns {
            let reply = chat.turn(&kind(i)).await?;
            ensure!(
                reply.starts_with("echo: Tell me") || reply.contains(&format!("Echo: hello {i}")),
                "unexpected reply {reply:?}"
            );
        }
        per_turn.push(ms(cpu_between(&before, &threads_cpu(pid)?)?) / turns as f64);
    }
    chat.finish().await?;
    Ok((per_turn[0], per_turn[1]))
}
