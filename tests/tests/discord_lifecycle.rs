//! End to end through the built `ollama-mcp-bot run`: the connection's life — invalid and missing
//! tokens, token rotation through the file, gateway reconnects without duplicate replies, 429s,
//! metrics and readiness, and the token never reaching the logs.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod discord_support;

use std::net::SocketAddr;
use std::time::Duration;

use discord_support::*;
use ollama_mcp_tests::discord_double::{DoubleConfig, World};
use ollama_mcp_tests::ollama_double::{OllamaDouble, Reply};
use ollama_mcp_tests::servers::{free_port, http_get};

const NEW_TOKEN: &str = "MTE4OTk.rotated.n3w-s3cr3t-value";

/// The bot's metrics text, once `needle` appears in it.
async fn metrics_with(addr: SocketAddr, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok((200, body)) = http_get(addr, "/metrics").await {
            if body.contains(needle) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "metrics never showed {needle:?}:\n{body}"
            );
        }
        assert!(std::time::Instant::now() < deadline, "no metrics at {addr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_token_exits_with_code_2_and_one_clear_line() {
    let mut h = Harness::prepare(DoubleConfig::new(TOKEN), echo_model().await, |_, _| {}).await;
    h.env = vec![("DISCORD_TOKEN".into(), "Bot not-the-right-token-xyz".into())];
    h.spawn_bot();
    assert_eq!(h.exit_code(WAIT).await, Some(2));
    let log = h.logs();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: Discord refused the bot token"),
        "{log}"
    );
    assert!(
        !log.contains("panicked") && !log.contains("stack backtrace"),
        "{log}"
    );
    assert!(
        !log.contains("not-the-right-token-xyz"),
        "the token leaked:\n{log}"
    );
    assert_eq!(
        h.discord.with(|w| w.identifies.len()),
        0,
        "no gateway attempts with a refused token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_or_token_file_exits_with_code_2() {
    let mut h = Harness::prepare(DoubleConfig::new(TOKEN), echo_model().await, |_, _| {}).await;
    h.env = Vec::new();
    h.spawn_bot();
    assert_eq!(h.exit_code(WAIT).await, Some(2));
    assert!(
        h.logs()
            .contains("error: no Discord token: set DISCORD_TOKEN"),
        "{}",
        h.logs()
    );
    h.env = vec![(
        "DISCORD_TOKEN_FILE".into(),
        "/nonexistent/secret/token".into(),
    )];
    h.spawn_bot();
    assert_eq!(h.exit_code(WAIT).await, Some(2));
    assert!(
        h.logs().contains("/nonexistent/secret/token"),
        "{}",
        h.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_reconnects_without_a_restart() {
    let mut h = Harness::prepare(DoubleConfig::new(TOKEN), echo_model().await, |_, _| {}).await;
    let file = h.dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    h.env = vec![("DISCORD_TOKEN_FILE".into(), file.display().to_string())];
    h.start_bot().await;
    let p = h.p;
    h.ask(
        p.alice,
        p.general,
        "before rotation",
        "echo: before rotation",
    )
    .await;
    let pid = h.bot.as_ref().and_then(|c| c.id());

    // The token is reset in the developer portal, then the Secret (file) is updated, as a
    // Kubernetes Secret mount does: a new file swapped in.
    h.discord.rotate_token(NEW_TOKEN);
    let staged = h.dir.path().join("token.new");
    std::fs::write(&staged, format!("{NEW_TOKEN}\n")).unwrap();
    std::fs::rename(&staged, &file).unwrap();
    h.discord
        .wait_for("an IDENTIFY with the new token", WAIT, |w: &World| {
            (w.attached
                && w.identifies
                    .last()
                    .is_some_and(|i| i.token_generation == Some(1)))
            .then_some(())
        })
        .await;
    let asked = h
        .ask(p.alice, p.general, "after rotation", "echo: after rotation")
        .await;
    assert_eq!(h.bot.as_ref().and_then(|c| c.id()), pid, "same process");
    h.discord.with(|w| {
        let reply = w.replies_to(asked)[0].id;
        let posted = w
            .rest_calls
            .iter()
            .rev()
            .find(|c| c.route == "create_message" && c.status == 200)
            .map(|c| c.token_generation);
        assert_eq!(
            posted,
            Some(Some(1)),
            "replies use the new token (reply {reply})"
        );
        assert!(
            w.identifies.iter().all(|i| i.token_generation.is_some()),
            "never identified with a dead token"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_reconnects_resume_without_duplicate_replies() {
    let h = Harness::start(echo_model().await, |_, _| {}).await;
    let p = h.p;
    let first = h.ask(p.alice, p.general, "first", "echo: first").await;

    // A network failure: a message sent meanwhile arrives by RESUME's replay, answered once.
    h.discord.drop_connection();
    let missed = h
        .discord
        .user_says(p.bob, p.general, &h.mention("while you were away"));
    h.reply_eq(missed, "echo: while you were away").await;
    h.discord
        .wait_for("a RESUME", WAIT, |w| {
            (w.resumes >= 1 && w.attached).then_some(())
        })
        .await;

    // Discord asks for a reconnect and then delivers recent events once more: no second answers.
    h.discord.redeliver_on_resume(8);
    h.discord.force_reconnect();
    h.discord
        .wait_for("a second RESUME", WAIT, |w| {
            (w.resumes >= 2 && w.attached).then_some(())
        })
        .await;
    let last = h.ask(p.alice, p.general, "after", "echo: after").await;
    h.discord.with(|w| {
        for m in [first, missed, last] {
            assert_eq!(
                w.replies_to(m).len(),
                1,
                "message {m} answered {} times\n",
                w.replies_to(m).len()
            );
        }
        assert_eq!(w.identifies.len(), 1, "resumed, not re-identified");
    });
    assert_eq!(h.ollama.chat_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_429s_are_waited_out_and_counted() {
    let port = free_port();
    let ollama = OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .unwrap();
    let h = Harness::start(ollama, |c, _| {
        c.metrics.listen = format!("127.0.0.1:{port}")
    })
    .await;
    let p = h.p;
    let text = (0..120)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    h.ollama.push_reply(Reply::Slow {
        per_chunk: Duration::from_millis(5),
        text: text.clone(),
    });
    h.discord
        .force_429("create_message", 1, Duration::from_millis(300));
    h.discord
        .force_429("edit_message", 2, Duration::from_millis(400));
    let asked = h
        .discord
        .user_says(p.alice, p.general, &h.mention("talk a while"));
    h.reply_eq(asked, &text).await;
    h.discord.with(|w| {
        assert_eq!(
            w.rate_limited.iter().filter(|r| r.forced).count(),
            3,
            "{:?}",
            w.rate_limited
        );
        assert!(w.exceeded().is_empty(), "{:?}", w.exceeded());
        assert_eq!(
            w.bot_messages().len(),
            1,
            "a retried create must not post twice"
        );
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let m = metrics_with(
        addr,
        "ollama_mcp_bot_discord_rate_limited_total{route=\"edit_message\"} 2",
    )
    .await;
    assert_eq!(
        metric_value(
            &m,
            "ollama_mcp_bot_discord_rate_limited_total{route=\"create_message\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_follow_the_connection() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut double = DoubleConfig::new(TOKEN);
    double.heartbeat_interval = Duration::from_millis(300);
    let mut h = Harness::prepare(double, echo_model().await, |c, _| {
        c.metrics.listen = format!("127.0.0.1:{port}")
    })
    .await;
    h.start_bot().await;
    let p = h.p;
    let deadline = std::time::Instant::now() + WAIT;
    while http_get(addr, "/readyz").await.map(|r| r.0).unwrap_or(0) != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never turned 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.ask(p.alice, p.general, "count me", "echo: count me")
        .await;
    let refused = h.discord.user_says(p.alice, p.general, &h.mention(""));
    h.reply_containing(refused, "without a question").await;
    h.discord.force_reconnect();
    h.discord
        .wait_for("a RESUME", WAIT, |w| {
            (w.resumes >= 1 && w.attached).then_some(())
        })
        .await;
    let m = metrics_with(addr, "ollama_mcp_bot_gateway_reconnects_total 1").await;
    assert_eq!(
        metric_value(&m, "ollama_mcp_bot_messages_received_total"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "ollama_mcp_bot_messages_total{outcome=\"answered\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "ollama_mcp_bot_messages_total{outcome=\"empty\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "ollama_mcp_bot_queue_depth"),
        Some(0.0),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "ollama_mcp_bot_discord_requests_total{route=\"create_message\",status=\"200\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{m}"
    );
    // Heartbeats every 300 ms; the bot reports their latency every few seconds.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let m = metrics_with(addr, "ollama_mcp_bot_gateway_latency_seconds ").await;
        if metric_value(&m, "ollama_mcp_bot_gateway_latency_seconds").unwrap_or(0.0) > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat latency measured:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(h.stop_bot().await, Some(0), "SIGTERM ends the bot cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_the_logs_even_at_trace_level() {
    let mut h = Harness::prepare(DoubleConfig::new(TOKEN), echo_model().await, |_, _| {}).await;
    h.env.push(("RUST_LOG".into(), "trace".into()));
    h.start_bot().await;
    let p = h.p;
    h.ask(p.alice, p.general, "secret?", "echo: secret?").await;
    h.discord.force_reconnect();
    h.discord
        .wait_for("a RESUME", WAIT, |w| {
            (w.resumes >= 1 && w.attached).then_some(())
        })
        .await;
    h.ask(p.alice, p.general, "still?", "echo: still?").await;
    h.stop_bot().await;
    let log = h.logs();
    assert!(
        log.len() > 10_000,
        "trace logging was on ({} bytes)",
        log.len()
    );
    let secret = TOKEN.split('.').next_back().unwrap();
    assert!(!log.contains(secret), "the token is in the logs");
    // Not as bytes either (a debug print of a frame's payload).
    let bytes = secret
        .bytes()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(at) = log.find(&bytes) {
        let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
        panic!(
            "the token is in the logs as bytes:\n{}",
            &log[line_start..(at + 300).min(log.len())]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_message_content_intent_exits_with_code_2_and_says_what_to_enable() {
    let mut double = DoubleConfig::new(TOKEN);
    double.privileged_intents = 0;
    let mut h = Harness::prepare(double, echo_model().await, |_, _| {}).await;
    h.spawn_bot();
    assert_eq!(h.exit_code(WAIT).await, Some(2), "{}", h.logs());
    let log = h.logs();
    assert!(
        log.lines()
            .last()
            .unwrap_or_default()
            .contains("MESSAGE CONTENT intent"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        h.discord.with(|w| w.identifies.len()),
        1,
        "no reconnect loop"
    );
}

/// Context switches so far of each thread of `pid` (voluntary + involuntary): each is a time
/// the thread slept and woke again.
fn switches_per_thread(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let count: u64 = ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
            .iter()
            .filter_map(|key| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .sum();
        out.insert(task.file_name().to_string_lossy().into_owned(), count);
    }
    out
}

/// Connected and idle, the bot sleeps between heartbeats: no timer of ours or of serenity wakes
/// it (issue 13: 92 wake-ups in 20 s, two a second from serenity's 500 ms gateway poll). It
/// counts context switches, which the machine's load does not make (a sleeping thread is not
/// preempted), rather than time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_idle_bot_does_not_wake_up() {
    let mut h = Harness::start(echo_model().await, |_, _| {}).await;
    // Start-up's blocking threads (SQLite) end 10 s after their last job: let them go first.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let pid = h.bot.as_ref().and_then(|c| c.id()).expect("bot pid");
    let heartbeats = h.discord.with(|w| w.heartbeats);
    let before = switches_per_thread(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = switches_per_thread(pid);
    // Threads that ended in the window take their count with them: counted from both ends only.
    let woke: u64 = after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    // The double's heartbeat interval (41 s) is longer than start-up plus the window.
    assert_eq!(
        h.discord.with(|w| w.heartbeats),
        heartbeats,
        "a heartbeat in the window"
    );
    assert!(
        woke <= 5,
        "the idle bot woke {woke} times in 10 s (threads before {before:?}, after {after:?}); log:\n{}",
        h.logs()
    );
    assert!(h.discord.connected(), "still connected");
    assert_eq!(h.stop_bot().await, Some(0), "SIGTERM ends the bot cleanly");
}
