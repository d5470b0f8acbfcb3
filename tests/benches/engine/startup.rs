//! Target 1: ready with the 4 real MCP servers within their own parallel start-up + 100 ms.
//!
//! Per repetition (the order rotates, after one unmeasured warm-up round that fills the page
//! cache): each server alone through `McpHub::start`, each alone through a raw rmcp client,
//! all four at once through raw rmcp clients (the servers' own parallel start-up, CPU contention
//! on this 2-core machine included), and all four through `McpHub::start`. Then the binary:
//! `chat` started, a first message sent at once; start-to-ready is the time to its reply minus
//! the time of a second, identical turn.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ollama_mcp_bot::config::McpServer;
use ollama_mcp_bot::mcp::{HubOptions, McpHub, ServerState};

use super::support::{Chat, DoubleProcess, four_servers, ms, note, raw_connect, summary, table};

async fn hub_start(servers: &[McpServer]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let hub = McpHub::start(servers, HubOptions::default()).await;
    let elapsed = started.elapsed();
    let status = hub.status();
    hub.shutdown().await;
    for s in status {
        ensure!(
            s.state == ServerState::Ready && !s.tools.is_empty(),
            "{} did not start: {:?}",
            s.name,
            s.state
        );
    }
    Ok(elapsed)
}

/// Spawn, handshake and list every tool: what "ready" means for the hub too.
async fn raw_ready(
    config: &McpServer,
) -> anyhow::Result<rmcp::service::RunningService<rmcp::service::RoleClient, ()>> {
    let client = raw_connect(config).await?;
    let tools = client.peer().list_all_tools().await?;
    ensure!(!tools.is_empty(), "{} listed no tools", config.name);
    Ok(client)
}

async fn raw_start(servers: &[McpServer]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let clients = futures::future::try_join_all(servers.iter().map(raw_ready)).await?;
    let elapsed = started.elapsed();
    for client in clients {
        let _ = client.cancel().await;
    }
    Ok(elapsed)
}

pub async fn run(reps: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let servers = four_servers(dir.path());
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    let mut hub_alone: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut raw_alone: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut raw_all, mut hub_all) = (Vec::new(), Vec::new());

    // Warm-up: every binary and module in the page cache; fetch's Python bytecode compiled.
    raw_start(&servers).await?;
    hub_start(&servers).await?;

    for rep in 0..reps {
        let mut order = servers.clone();
        order.rotate_left(rep % servers.len());
        for s in &order {
            let t = hub_start(std::slice::from_ref(s)).await?;
            hub_alone.entry(s.name.clone()).or_default().push(ms(t));
            let t = raw_start(std::slice::from_ref(s)).await?;
            raw_alone.entry(s.name.clone()).or_default().push(ms(t));
        }
        // Alternate which of the two all-four runs goes first.
        if rep % 2 == 0 {
            raw_all.push(ms(raw_start(&order).await?));
            hub_all.push(ms(hub_start(&order).await?));
        } else {
            hub_all.push(ms(hub_start(&order).await?));
            raw_all.push(ms(raw_start(&order).await?));
        }
    }

    let mut rows = Vec::new();
    let mut max_alone: f64 = 0.0;
    for name in &names {
        let h = summary(&hub_alone[name]);
        let r = summary(&raw_alone[name]);
        max_alone = max_alone.max(h.median);
        rows.push(vec![
            format!("`{name}` alone"),
            format!("{:.0}", r.median),
            format!("{:.0}", h.median),
            format!("{:.0}", h.p90),
        ]);
    }
    let ra = summary(&raw_all);
    let ha = summary(&hub_all);
    rows.push(vec![
        "all 4 at once".into(),
        format!("{:.0}", ra.median),
        format!("{:.0}", ha.median),
        format!("{:.0}", ha.p90),
    ]);
    table(
        &format!(
            "Start-up to ready (ms, medians of {reps} runs; ready = handshake + full tool list)"
        ),
        &["servers", "raw rmcp", "McpHub::start", "McpHub p90"],
        &rows,
    );
    note(&format!(
        "\nAll 4 via McpHub: {:.0} ms = max(alone) {:.0} ms {:+.0} ms; = the servers' own parallel start-up (raw, all 4) {:.0} ms {:+.0} ms. Target: ≤ +100 ms.",
        ha.median,
        max_alone,
        ha.median - max_alone,
        ra.median,
        ha.median - ra.median
    ));

    binary_start_to_ready(reps).await
}

/// `chat` from exec to answering: first reply time minus a second turn's time.
async fn binary_start_to_ready(reps: usize) -> anyhow::Result<()> {
    let double = DoubleProcess::spawn(None).await?;
    let mut ready = Vec::new();
    let mut first = Vec::new();
    for _ in 0..reps {
        let dir = tempfile::tempdir()?;
        let started = Instant::now();
        let mut chat = Chat::spawn(dir.path(), &double.url, four_servers(dir.path()), |_| {})?;
        let reply = chat.turn("hello").await?;
        let first_reply = started.elapsed();
        ensure!(
            reply.starts_with("echo: hello"),
            "unexpected reply {reply:?}"
        );
        let again = Instant::now();
        let reply = chat.turn("hello").await?;
        let turn = again.elapsed();
        ensure!(
            reply.starts_with("echo: hello"),
            "unexpected reply {reply:?}"
        );
        chat.finish().await.context("chat after the start-up run")?;
        first.push(ms(first_reply));
        ready.push(ms(first_reply.saturating_sub(turn)));
    }
    let r = summary(&ready);
    let f = summary(&first);
    table(
        &format!(
            "`ollama-mcp-bot chat` (release) with the 4 servers: exec → ready (ms, {reps} runs)"
        ),
        &["measure", "median", "p90"],
        &[
            vec![
                "exec → first reply".into(),
                format!("{:.0}", f.median),
                format!("{:.0}", f.p90),
            ],
            vec![
                "exec → ready (first reply − one turn)".into(),
                format!("{:.0}", r.median),
                format!("{:.0}", r.p90),
            ],
        ],
    );
    Ok(())
}
