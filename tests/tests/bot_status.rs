//! The bot's `GET /status` end to end: the BUILT `ollama-mcp-bot run` (Discord and Ollama
//! doubles) with the real memory MCP server and one that cannot start, read by the operator's
//! reader exactly as it reads a Ready bot pod.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod discord_support;

use std::collections::BTreeMap;

use discord_support::{Harness, echo_model};
use ollama_mcp_bot::config::McpServerConfig;
use ollama_mcp_bot::status::ServerStateName;
use ollama_mcp_operator::controller::bot_report::{self, BotReports};
use ollama_mcp_tests::servers;

const SECRET: &str = "s3cret-env-value-never-reported";

#[tokio::test]
async fn the_operator_reads_each_servers_state_and_tools_from_the_bot() {
    let port = servers::free_port();
    let data = tempfile::tempdir().unwrap();
    let memory = servers::parsed(McpServerConfig {
        name: "memory".into(),
        command: Some(
            servers::installed("node/node_modules/.bin/mcp-server-memory")
                .display()
                .to_string(),
        ),
        env: BTreeMap::from([
            (
                "MEMORY_FILE_PATH".to_string(),
                data.path().join("memory.json").display().to_string(),
            ),
            ("API_TOKEN".to_string(), SECRET.to_string()),
        ]),
        startup_timeout_secs: Some(60),
        ..Default::default()
    });
    let broken = servers::parsed(McpServerConfig {
        name: "broken".into(),
        command: Some("/nonexistent/mcp-server".into()),
        startup_timeout_secs: Some(5),
        ..Default::default()
    });
    let mut h = Harness::start(echo_model().await, |c, _| {
        c.mcp.servers = vec![memory, broken];
        c.metrics.listen = format!("127.0.0.1:{port}");
    })
    .await;
    let base = format!("http://127.0.0.1:{port}");

    // What the bot serves: names, states and tools, never an env value.
    let body = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains(SECRET), "{body}");
    assert!(!body.contains("MEMORY_FILE_PATH"), "{body}");

    // The operator's reader (the bot says ready a moment after it registered its commands).
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let report = bot_report::read(&http, &base)
            .await
            .unwrap_or_else(|e| panic!("{e}; bot log:\n{}", h.logs()));
        if report.ready || std::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(report.ready, "{report:?}");
    let names: Vec<&str> = report.mcp_servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["memory", "broken"]);
    let memory = &report.mcp_servers[0];
    assert_eq!(memory.state, ServerStateName::Ready, "{memory:?}");
    assert_eq!(memory.transport, "stdio");
    assert_eq!(memory.last_error, None);
    for tool in ["create_entities", "read_graph", "search_nodes"] {
        assert!(memory.tools.iter().any(|t| t == tool), "{memory:?}");
    }
    let broken = &report.mcp_servers[1];
    assert!(
        matches!(
            broken.state,
            ServerStateName::Failed | ServerStateName::Restarting
        ),
        "{broken:?}"
    );
    assert!(broken.tools.is_empty());
    assert!(
        broken.last_error.as_deref().is_some_and(|e| !e.is_empty()),
        "{broken:?}"
    );

    // As reconcile uses it: a report per bot, kept between reads.
    let reports = BotReports::default();
    let seen = reports.observe("bots/helper", Some(&base)).await;
    assert_eq!(seen.as_ref(), Some(&report));
    // No Ready pod: nothing is reported (and the old report is dropped).
    assert_eq!(reports.observe("bots/helper", None).await, None);

    h.stop_bot().await;
    // A bot that is gone: the read fails with the URL and the cause, within its bound.
    let started = std::time::Instant::now();
    let e = bot_report::read(&http, &base).await.expect_err("no bot");
    assert!(e.to_string().contains(&base), "{e}");
    assert!(started.elapsed() <= bot_report::TIMEOUT + std::time::Duration::from_secs(1));
}
