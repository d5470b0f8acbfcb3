//! Issue 10's canary through the built `ollama-mcp-bot run` (the chat half is in security.rs):
//! the token from DISCORD_TOKEN_FILE, a `headers_env` value and a servers_json `env` value never
//! appear in the logs at trace level, `/metrics`, the SQLite file or another MCP child's
//! environment.
#![allow(clippy::unwrap_used)]

mod discord_support;

use std::time::Duration;

use discord_support::*;
use ollama_mcp_bot::config::McpTransport;
use ollama_mcp_tests::discord_double::DoubleConfig;
use ollama_mcp_tests::servers::{self, descendants, free_port, http_get};
use serde_json::json;

/// The part of the harness's token that is secret.
const TOKEN_SECRET: &str = "s3cr3t-t0ken-value";
const HEADER_SECRET: &str = "canary-run-header-41ad";
const JSON_SECRET: &str = "canary-run-json-77e0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_never_shows_a_secret() {
    assert!(TOKEN.contains(TOKEN_SECRET));
    let port = free_port();
    let (_http_guard, mut remote) = servers::everything_http().await;
    if let McpTransport::Http(h) = &mut remote.transport {
        h.headers_env
            .insert("Authorization".into(), "OMCP_TEST_RUN_HEADER".into());
    }
    let mut h = Harness::prepare(DoubleConfig::new(TOKEN), echo_model().await, |c, _| {
        c.metrics.listen = format!("127.0.0.1:{port}");
        c.mcp.servers = vec![remote];
    })
    .await;
    let everything = servers::everything_stdio();
    let McpTransport::Stdio(stdio) = &everything.transport else {
        unreachable!("a stdio server")
    };
    let json_file = h.dir.path().join("servers.json");
    std::fs::write(
        &json_file,
        json!({"mcpServers": {"pasted": {
            "command": stdio.command,
            "args": stdio.args,
            "env": {"PASTED_API_TOKEN": JSON_SECRET}
        }}})
        .to_string(),
    )
    .unwrap();
    h.config.mcp.servers_json = Some(json_file);
    let token_file = h.dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    h.env = vec![
        (
            "DISCORD_TOKEN_FILE".into(),
            token_file.display().to_string(),
        ),
        (
            "OMCP_TEST_RUN_HEADER".into(),
            format!("Bearer {HEADER_SECRET}"),
        ),
        ("RUST_LOG".into(), "trace".into()),
    ];
    h.start_bot().await;
    let p = &h.p;
    h.ask(p.alice, p.general, "hello", "echo: hello").await;

    let secrets = [TOKEN_SECRET, HEADER_SECRET, JSON_SECRET];
    let leaked = |text: &str| -> Vec<&str> {
        secrets
            .iter()
            .copied()
            .filter(|s| text.contains(s))
            .collect()
    };
    let (status, metrics) = http_get(([127, 0, 0, 1], port).into(), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(leaked(&metrics), Vec::<&str>::new(), "/metrics");

    let bot = h.bot.as_ref().and_then(|b| b.id()).expect("the bot runs");
    let children = descendants(bot);
    assert!(!children.is_empty(), "the pasted server runs below the bot");
    for pid in children {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
        assert!(
            !environ.contains(TOKEN_SECRET) && !environ.contains(HEADER_SECRET),
            "child {pid} got a secret of the bot"
        );
    }

    assert_eq!(h.stop_bot().await, Some(0), "{}", h.logs());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = h.logs();
    assert!(logs.lines().count() > 50, "trace logging was on");
    assert_eq!(leaked(&logs), Vec::<&str>::new(), "logs at trace level");
    for file in std::fs::read_dir(h.dir.path()).unwrap().flatten() {
        let name = file.file_name().to_string_lossy().to_string();
        if name.starts_with("bot.db") {
            let bytes = std::fs::read(file.path()).unwrap();
            assert_eq!(
                leaked(&String::from_utf8_lossy(&bytes)),
                Vec::<&str>::new(),
                "{name}"
            );
        }
    }
}

/// One owner of shutdown: on SIGTERM the gateway closes cleanly (a close frame) before the
/// process ends; when `main` raced `discord::run` for the signal, it could drop the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_the_gateway_cleanly_every_time() {
    let mut h = Harness::prepare(DoubleConfig::new(TOKEN), echo_model().await, |_, _| {}).await;
    for round in 1..=4 {
        h.start_bot().await;
        let closes = h.discord.with(|w| w.client_closes.len());
        assert_eq!(h.stop_bot().await, Some(0), "{}", h.logs());
        // The double reads the frame on its own task: give it a moment.
        let mut closed = Vec::new();
        for _ in 0..50 {
            closed = h.discord.with(|w| w.client_closes[closes..].to_vec());
            if closed.contains(&1000) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            closed.contains(&1000),
            "round {round}: the bot left without closing the gateway ({closed:?}):\n{}",
            h.logs()
        );
    }
}
