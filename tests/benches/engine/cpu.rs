//! Target 2: engine CPU per turn with an instant model double in another process, the 4 real
//! MCP servers attached (their 24+ tools offered in every request) and the SQLite store on disk.
//!
//! Measured in this process with getrusage(RUSAGE_SELF) deltas around batches of turns driven
//! through `Engine::turn` (every thread counted: runtime workers and the blocking pool that runs
//! SQLite). The double and the MCP servers are other processes. Then the same through the
//! release binary, from `/proc/<pid>/stat`. Then one tool call through the hub against one raw
//! rmcp call to another instance of the same server.

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
    Chat, DoubleProcess, cpu_time, four_servers, ms, process_cpu, raw_connect, summary, table,
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
        r.tool_calls == 1 && r.reply.contains(&format!("Echo: hello {i}")),
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

pub async fn run(sizes: &Sizes) -> anyhow::Result<()> {
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
    let tools = hub.tools().len();
    let engine = Engine::new(
        Arc::new(OllamaClient::new(&config.ollama)?),
        hub.clone(),
        Store::open(&config.store.path)?,
        &config,
    );

    let plain_figures = measure(&engine, "bench-plain", plain, check_plain, sizes).await?;
    let tool_figures = measure(&engine, "bench-tool", tool, check_tool, sizes).await?;
    let overhead = tool_call_overhead(&hub, sizes).await?;
    hub.shutdown().await;

    let mut rows = Vec::new();
    for (name, f, target) in [
        ("plain turn", &plain_figures, "< 1 ms"),
        (
            "one-tool turn (`everything__echo`)",
            &tool_figures,
            "< 2 ms",
        ),
    ] {
        let c = summary(&f.cpu);
        let w = summary(&f.wall);
        let first = f.cpu.first().copied().unwrap_or(f64::NAN);
        let last = f.cpu.last().copied().unwrap_or(f64::NAN);
        rows.push(vec![
            name.to_string(),
            format!("{:.3}", c.median),
            format!("{:.3}", c.p90),
            format!("{first:.3} → {last:.3}"),
            format!("{:.2}", w.median),
            target.to_string(),
        ]);
    }
    table(
        &format!(
            "Engine CPU per turn, in-process (`Engine::turn`, {tools} tools offered, SQLite on disk; {} batches × {} turns after {} warm-up turns)",
            sizes.batches, sizes.per_batch, sizes.warmup
        ),
        &[
            "turn",
            "CPU median (ms)",
            "CPU p90 (ms)",
            "first → last batch (ms)",
            "wall median (ms)",
            "target",
        ],
        &rows,
    );

    let binary = binary_cpu(&double, sizes.binary_turns).await?;
    table(
        &format!(
            "The same through the release binary (`chat` on piped stdin, whole process, /proc/<pid>/stat over {} turns each)",
            sizes.binary_turns
        ),
        &["turn", "CPU per turn (ms)"],
        &[
            vec!["plain turn".into(), format!("{:.3}", binary.0)],
            vec!["one-tool turn".into(), format!("{:.3}", binary.1)],
        ],
    );

    let hw = summary(&overhead.hub_wall);
    let rw = summary(&overhead.raw_wall);
    let hc = summary(&overhead.hub_cpu);
    let rc = summary(&overhead.raw_cpu);
    table(
        &format!(
            "One `echo` call: McpHub vs a raw rmcp client on another instance of the same server ({} calls each, interleaved in batches of 10)",
            overhead.hub_wall.len()
        ),
        &[
            "path",
            "wall median (ms)",
            "wall p90 (ms)",
            "our CPU per call, median of batches (ms)",
        ],
        &[
            vec![
                "raw rmcp `call_tool`".into(),
                format!("{:.3}", rw.median),
                format!("{:.3}", rw.p90),
                format!("{:.3}", rc.median),
            ],
            vec![
                "`McpHub::call` (resolve, validate, timeout, adapt, metrics)".into(),
                format!("{:.3}", hw.median),
                format!("{:.3}", hw.p90),
                format!("{:.3}", hc.median),
            ],
            vec![
                "hub overhead".into(),
                format!("{:+.3}", hw.median - rw.median),
                format!("{:+.3}", hw.p90 - rw.p90),
                format!("{:+.3}", hc.median - rc.median),
            ],
        ],
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
async fn binary_cpu(double: &DoubleProcess, turns: usize) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let mut chat = Chat::spawn(dir.path(), &double.url, four_servers(dir.path()), |_| {})?;
    let pid = chat.pid()?;
    for i in 0..20 {
        chat.turn(&plain(i)).await?;
        chat.turn(&tool(i)).await?;
    }
    let mut per_turn = Vec::new();
    for kind in [plain as fn(usize) -> String, tool] {
        let before = process_cpu(pid)?;
        for i in 0..turns {
            let reply = chat.turn(&kind(i)).await?;
            ensure!(
                reply.starts_with("echo: Tell me") || reply.contains(&format!("Echo: hello {i}")),
                "unexpected reply {reply:?}"
            );
        }
        per_turn.push(ms(process_cpu(pid)? - before) / turns as f64);
    }
    chat.finish().await?;
    Ok((per_turn[0], per_turn[1]))
}
