//! The MCP hub against the REAL MCP servers from `.test-deps` (memory, sequential thinking,
//! everything over stdio and streamable HTTP, fetch, puppeteer with Debian's Chromium).
#![allow(clippy::unwrap_used, reason = "test code")]

use std::time::Duration;

use ollama_mcp_bot::config::{McpServerConfig, McpTransport, ToolFilterConfig};
use ollama_mcp_bot::mcp::{HubOptions, McpHub, OutcomeKind, ServerState, ToolHost};
use ollama_mcp_tests::servers::{
    self, PageServer, descendants, process_alive, process_group_members, wait_until,
};
use serde_json::json;

/// `RUST_LOG=debug cargo test ...` shows the hub's logs (and the servers' stderr).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn state_of(hub: &McpHub, name: &str) -> ServerState {
    hub.status()
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.state)
        .expect("server in status")
}

/// Every stdio child of the hub and everything it started.
fn children(hub: &McpHub, names: &[&str]) -> Vec<u32> {
    let pids: Vec<u32> = names.iter().filter_map(|n| hub.server_pid(n)).collect();
    let mut all = pids.clone();
    all.extend(pids.iter().flat_map(|&p| descendants(p)));
    all.extend(pids.iter().flat_map(|&p| process_group_members(p)));
    all.sort_unstable();
    all.dedup();
    all
}

async fn assert_all_gone(pids: &[u32]) {
    let gone = wait_until(Duration::from_secs(20), || {
        pids.iter().all(|&p| !process_alive(p))
    })
    .await;
    let left: Vec<_> = pids.iter().filter(|&&p| process_alive(p)).collect();
    assert!(
        gone,
        "processes left after shutdown: {left:?} (of {pids:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_servers_ready_namespaced_filtered_and_callable() {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let site = PageServer::start(&[(
        "/article.html",
        "<html><head><title>Otters</title></head><body><h1>Sea otters</h1>\
         <p>Sea otters hold hands while sleeping so they do not drift apart.</p></body></html>"
            .to_string(),
    )])
    .await;
    let (http_guard, everything_http) = servers::everything_http().await;

    let mut memory = servers::memory(dir.path());
    memory.tools = ToolFilterConfig {
        deny: vec!["delete_entities".into()],
        ..Default::default()
    };
    let mut everything = servers::everything_stdio();
    everything.tools = ToolFilterConfig {
        allow: vec![
            "echo".into(),
            "get-sum".into(),
            "get-env".into(),
            "get-tiny-image".into(),
            "trigger-long-running-operation".into(),
        ],
        require_approval: vec!["get-env".into()],
        ..Default::default()
    };
    // A huge environment variable makes `get-env` return a huge result.
    if let McpTransport::Stdio(stdio) = &mut everything.transport {
        stdio.env.insert("HUGE_VALUE".into(), "x".repeat(50_000));
    }
    everything.call_timeout = Duration::from_secs(3);
    let configs = vec![
        memory,
        servers::sequential_thinking(),
        everything,
        everything_http,
        servers::fetch(),
    ];

    let hub = McpHub::start(
        &configs,
        HubOptions {
            max_result_chars: 4_000,
        },
    )
    .await;

    for s in hub.status() {
        assert_eq!(
            s.state,
            ServerState::Ready,
            "server {} not ready: {:?}",
            s.name,
            s.state
        );
        assert!(!s.tools.is_empty(), "server {} lists no tools", s.name);
    }
    let status = hub.status();
    let transport = |n: &str| status.iter().find(|s| s.name == n).map(|s| s.transport);
    assert_eq!(transport("memory"), Some("stdio"));
    assert_eq!(transport("everything_http"), Some("http"));

    // Tools: namespaced, filtered, schemas as object schemas without `$schema`.
    let tools = hub.tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in [
        "memory__create_entities",
        "memory__read_graph",
        "thinking__sequentialthinking",
        "everything__echo",
        "everything__get-sum",
        "everything_http__echo",
        "fetch__fetch",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.contains(&"memory__delete_entities"),
        "denied tool offered: {names:?}"
    );
    let everything_tools: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with("everything__"))
        .collect();
    assert_eq!(
        everything_tools.len(),
        5,
        "allow list not applied: {everything_tools:?}"
    );
    let sum = tools
        .iter()
        .find(|t| t.name == "everything__get-sum")
        .unwrap();
    assert_eq!(sum.parameters["type"], "object");
    assert!(
        sum.parameters.get("$schema").is_none(),
        "{}",
        sum.parameters
    );
    assert_eq!(sum.parameters["required"], json!(["a", "b"]));
    assert!(hub.needs_approval("everything__get-env"));
    assert!(!hub.needs_approval("everything__echo"));

    // memory: create, then read back.
    let created = hub
        .call(
            "memory__create_entities",
            json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["writes programs"]}]}),
        )
        .await;
    assert_eq!(created.kind, OutcomeKind::Ok, "{}", created.content);
    let graph = hub.call("memory__read_graph", json!({})).await;
    assert_eq!(graph.kind, OutcomeKind::Ok, "{}", graph.content);
    assert!(
        graph.content.contains("Ada") && graph.content.contains("writes programs"),
        "{}",
        graph.content
    );
    assert_eq!(
        (graph.server.as_str(), graph.tool.as_str()),
        ("memory", "read_graph")
    );

    // Invalid arguments: the schema error comes back and the server is not called (nothing created).
    let invalid = hub
        .call(
            "memory__create_entities",
            json!({"entities": [{"name": "Bob"}]}),
        )
        .await;
    assert_eq!(
        invalid.kind,
        OutcomeKind::InvalidArguments,
        "{}",
        invalid.content
    );
    assert!(
        invalid.content.contains("entityType"),
        "{}",
        invalid.content
    );
    let graph = hub.call("memory__read_graph", json!({})).await;
    assert!(
        !graph.content.contains("Bob"),
        "invalid call reached the server: {}",
        graph.content
    );
    let wrong_type = hub
        .call("everything__get-sum", json!({"a": "two", "b": 3}))
        .await;
    assert_eq!(wrong_type.kind, OutcomeKind::InvalidArguments);
    assert!(
        wrong_type.content.contains("at `/a`") && wrong_type.content.contains("number"),
        "{}",
        wrong_type.content
    );

    // sequential thinking
    let thought = hub
        .call(
            "thinking__sequentialthinking",
            json!({"thought": "First, list the facts.", "nextThoughtNeeded": true, "thoughtNumber": 1, "totalThoughts": 2}),
        )
        .await;
    assert_eq!(thought.kind, OutcomeKind::Ok, "{}", thought.content);
    assert!(
        thought.content.contains("thoughtNumber"),
        "{}",
        thought.content
    );

    // everything over stdio and over HTTP
    let echo = hub
        .call("everything__echo", json!({"message": "hello stdio"}))
        .await;
    assert_eq!(echo.kind, OutcomeKind::Ok, "{}", echo.content);
    assert!(echo.content.contains("hello stdio"), "{}", echo.content);
    let sum = hub
        .call("everything__get-sum", json!({"a": 2, "b": 40}))
        .await;
    assert!(sum.content.contains("42"), "{}", sum.content);
    let echo_http = hub
        .call("everything_http__echo", json!({"message": "hello http"}))
        .await;
    assert_eq!(echo_http.kind, OutcomeKind::Ok, "{}", echo_http.content);
    assert!(
        echo_http.content.contains("hello http"),
        "{}",
        echo_http.content
    );
    // A bare name that only one server has is accepted (models drop the prefix).
    let bare = hub.call("read_graph", json!({})).await;
    assert_eq!(
        (bare.kind, bare.server.as_str()),
        (OutcomeKind::Ok, "memory"),
        "{}",
        bare.content
    );
    // ... but `echo` exists on two servers, so it is ambiguous.
    let ambiguous = hub.call("echo", json!({"message": "x"})).await;
    assert_eq!(ambiguous.kind, OutcomeKind::UnknownTool);

    // Images are described, not dumped.
    let image = hub.call("everything__get-tiny-image", json!({})).await;
    assert_eq!(image.kind, OutcomeKind::Ok, "{}", image.content);
    assert!(
        image.content.contains("[image: image/png, "),
        "{}",
        image.content
    );
    assert!(
        image.content.len() < 2_000,
        "image data leaked into the text: {} chars",
        image.content.len()
    );

    // A huge result is cut with a note.
    let env = hub.call("everything__get-env", json!({})).await;
    assert_eq!(env.kind, OutcomeKind::Ok);
    assert!(
        env.content.contains("[truncated: 4000 of "),
        "{}",
        &env.content[env.content.len().saturating_sub(200)..]
    );
    assert!(env.content.chars().count() < 4_100);
    // The configured environment reached the child: the whole result counts HUGE_VALUE.
    let total: usize = env
        .content
        .rsplit_once("[truncated: 4000 of ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("total in the note");
    assert!(
        total > 50_000,
        "HUGE_VALUE missing from the child's environment: {total}"
    );

    // fetch reads the page from 127.0.0.1.
    let page = hub
        .call("fetch__fetch", json!({"url": site.url("/article.html")}))
        .await;
    assert_eq!(page.kind, OutcomeKind::Ok, "{}", page.content);
    assert!(
        page.content.contains("hold hands while sleeping"),
        "{}",
        page.content
    );

    // Unknown tools list the real names.
    let unknown = hub.call("memory__forget_everything", json!({})).await;
    assert_eq!(unknown.kind, OutcomeKind::UnknownTool);
    assert!(
        unknown.content.contains("memory__read_graph") && unknown.content.contains("fetch__fetch"),
        "{}",
        unknown.content
    );
    let denied = hub
        .call("memory__delete_entities", json!({"entityNames": ["Ada"]}))
        .await;
    assert_eq!(
        denied.kind,
        OutcomeKind::UnknownTool,
        "a denied tool must not run: {}",
        denied.content
    );
    let nowhere = hub.call("nosuchserver__x", json!({})).await;
    assert_eq!(nowhere.kind, OutcomeKind::UnknownTool);

    // The call timeout cancels a slow call and the server keeps working.
    let slow = hub
        .call(
            "everything__trigger-long-running-operation",
            json!({"duration": 30, "steps": 3}),
        )
        .await;
    assert_eq!(slow.kind, OutcomeKind::Timeout, "{}", slow.content);
    assert!(
        slow.content.contains("3 s") && slow.content.contains("call_timeout_secs"),
        "{}",
        slow.content
    );
    let after = hub
        .call("everything__echo", json!({"message": "still here"}))
        .await;
    assert_eq!(after.kind, OutcomeKind::Ok, "{}", after.content);

    // Every call was counted.
    let text = ollama_mcp_bot::metrics::metrics().encode();
    assert!(
        text.contains(
            r#"ollama_mcp_bot_tool_calls_total{server="memory",tool="read_graph",outcome="ok"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"tool="trigger-long-running-operation",outcome="timeout"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ollama_mcp_bot_mcp_server_up{server="memory"} 1"#),
        "{text}"
    );

    // A remote server that goes away is reported as unavailable, not as a tool error.
    servers::kill_hard(http_guard.pid().expect("http server pid"));
    let gone = hub
        .call("everything_http__echo", json!({"message": "anyone?"}))
        .await;
    assert_eq!(
        gone.kind,
        OutcomeKind::ServerUnavailable,
        "{}",
        gone.content
    );
    assert!(gone.content.contains("everything_http"), "{}", gone.content);
    let noticed = wait_until(Duration::from_secs(20), || {
        matches!(
            state_of(&hub, "everything_http"),
            ServerState::Restarting { .. }
        )
    })
    .await;
    assert!(
        noticed,
        "status should show the remote server reconnecting: {:?}",
        state_of(&hub, "everything_http")
    );

    // Shutdown leaves no child behind.
    for name in ["memory", "thinking", "everything", "fetch"] {
        assert!(
            hub.server_pid(name).is_some(),
            "stdio server {name} has no pid"
        );
    }
    let pids = children(&hub, &["memory", "thinking", "everything", "fetch"]);
    hub.shutdown().await;
    assert_all_gone(&pids).await;
    drop(http_guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_servers_fail_clearly_while_others_work() {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = McpServerConfig {
        name: "missing".into(),
        command: Some("ollama-mcp-no-such-command".into()),
        ..Default::default()
    };
    let exits = McpServerConfig {
        name: "exits".into(),
        command: Some("sh".into()),
        args: vec![
            "-c".into(),
            "echo 'config file not found' >&2; exit 3".into(),
        ],
        startup_timeout_secs: Some(30),
        ..Default::default()
    };
    let silent = McpServerConfig {
        name: "silent".into(),
        command: Some("sleep".into()),
        args: vec!["600".into()],
        startup_timeout_secs: Some(1),
        ..Default::default()
    };
    let no_secret = McpServerConfig {
        name: "remote".into(),
        url: Some("http://127.0.0.1:9/mcp".into()),
        headers_env: [(
            "Authorization".to_string(),
            "OLLAMA_MCP_TEST_UNSET_TOKEN".to_string(),
        )]
        .into(),
        ..Default::default()
    };
    // Headers reach the server: plain ones and secret ones read from the environment (PATH is
    // always set; editing the environment of a running test process is not allowed).
    let (seen, recorder) = header_recorder().await;
    let recorded = McpServerConfig {
        name: "recorded".into(),
        url: Some(format!("http://{recorder}/mcp")),
        headers: [("X-Plain".to_string(), "plain-value".to_string())].into(),
        headers_env: [("Authorization".to_string(), "PATH".to_string())].into(),
        startup_timeout_secs: Some(10),
        ..Default::default()
    };
    let configs = vec![
        servers::parsed(missing),
        servers::parsed(exits),
        servers::parsed(silent),
        servers::parsed(no_secret),
        servers::memory(dir.path()),
        servers::parsed(recorded),
    ];
    let hub = McpHub::start(&configs, HubOptions::default()).await;

    let failed = |name: &str| match state_of(&hub, name) {
        ServerState::Failed { reason } => reason,
        other => panic!("server {name} should have failed, is {other:?}"),
    };
    let reason = failed("missing");
    assert!(
        reason.contains("`ollama-mcp-no-such-command` not found")
            && reason.contains("mcp.servers[0].command"),
        "{reason}"
    );
    let reason = failed("exits");
    assert!(
        reason.contains("config file not found"),
        "stderr is quoted: {reason}"
    );
    assert!(reason.contains("mcp.servers[1]"), "{reason}");
    let reason = failed("silent");
    assert!(
        reason.contains("within 1 s") && reason.contains("mcp.servers[2].startup_timeout_secs"),
        "{reason}"
    );
    let reason = failed("remote");
    assert!(
        reason.contains("OLLAMA_MCP_TEST_UNSET_TOKEN") && reason.contains("Authorization"),
        "{reason}"
    );
    assert_eq!(state_of(&hub, "memory"), ServerState::Ready);
    let reason = failed("recorded");
    let secret = std::env::var("PATH").expect("PATH is set");
    assert!(
        !reason.contains(&secret),
        "a secret header value leaked: {reason}"
    );
    assert!(reason.contains("mcp.servers[5].url"), "{reason}");
    let headers = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("a request reached the server");
    assert_eq!(
        headers.get("x-plain").and_then(|v| v.to_str().ok()),
        Some("plain-value")
    );
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(secret.as_str())
    );

    let call = hub.call("missing__anything", json!({})).await;
    assert_eq!(
        call.kind,
        OutcomeKind::ServerUnavailable,
        "{}",
        call.content
    );
    assert!(call.content.contains("not found"), "{}", call.content);
    let ok = hub.call("memory__read_graph", json!({})).await;
    assert_eq!(ok.kind, OutcomeKind::Ok, "{}", ok.content);
    assert!(hub.tools().iter().all(|t| t.name.starts_with("memory__")));

    let pids = children(&hub, &["memory"]);
    hub.shutdown().await;
    assert_all_gone(&pids).await;
}

/// An HTTP endpoint that records the headers of every request and answers 503.
async fn header_recorder() -> (
    std::sync::Arc<std::sync::Mutex<Vec<axum::http::HeaderMap>>>,
    std::net::SocketAddr,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let store = store.clone();
        async move {
            store.lock().unwrap().push(headers);
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "down for a test",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (seen, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_call_is_reported_and_the_server_comes_back() {
    init_tracing();
    let hub = McpHub::start(&[servers::everything_stdio()], HubOptions::default()).await;
    assert_eq!(state_of(&hub, "everything"), ServerState::Ready);
    let first_pid = hub.server_pid("everything").expect("child pid");
    let restarts_before = restarts("everything");

    let slow = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.call(
                "everything__trigger-long-running-operation",
                json!({"duration": 30, "steps": 30}),
            )
            .await
        })
    };
    // Let the request reach the server; if the kill came first, the outcome would be the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    servers::kill_hard(first_pid);
    let outcome = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("the in-flight call ends soon after the crash")
        .expect("call task");
    assert_eq!(
        outcome.kind,
        OutcomeKind::ServerUnavailable,
        "{}",
        outcome.content
    );
    assert!(
        outcome.content.contains("crashed during the call"),
        "{}",
        outcome.content
    );

    // It comes back by itself, with its tools, under a new pid.
    let back = wait_until(Duration::from_secs(60), || {
        state_of(&hub, "everything") == ServerState::Ready
            && hub.server_pid("everything").is_some_and(|p| p != first_pid)
    })
    .await;
    assert!(
        back,
        "server did not come back: {:?}",
        state_of(&hub, "everything")
    );
    assert!(
        restarts("everything") > restarts_before,
        "restart not counted"
    );
    assert!(hub.tools().iter().any(|t| t.name == "everything__echo"));
    let echo = hub
        .call("everything__echo", json!({"message": "back"}))
        .await;
    assert_eq!(echo.kind, OutcomeKind::Ok, "{}", echo.content);

    // An idle crash is noticed too.
    let second_pid = hub.server_pid("everything").expect("pid");
    servers::kill_hard(second_pid);
    let noticed = wait_until(Duration::from_secs(20), || {
        matches!(state_of(&hub, "everything"), ServerState::Restarting { .. })
            || hub
                .server_pid("everything")
                .is_some_and(|p| p != second_pid)
    })
    .await;
    assert!(noticed, "idle crash not noticed");
    let back = wait_until(Duration::from_secs(60), || {
        state_of(&hub, "everything") == ServerState::Ready
    })
    .await;
    assert!(back, "server did not come back after an idle crash");

    let pids = children(&hub, &["everything"]);
    hub.shutdown().await;
    assert_all_gone(&pids).await;
    assert!(!process_alive(first_pid) && !process_alive(second_pid));
}

fn restarts(server: &str) -> u64 {
    let text = ollama_mcp_bot::metrics::metrics().encode();
    let prefix = format!("ollama_mcp_bot_mcp_server_restarts_total{{server=\"{server}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puppeteer_drives_chromium_on_a_local_page() {
    init_tracing();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/setup-test-deps.sh (it installs Debian's chromium)"
    );
    let site = PageServer::start(&[(
        "/index.html",
        "<html><head><title>Puppet Show</title></head><body><p id='greeting'>Hello from 127.0.0.1</p></body></html>"
            .to_string(),
    )])
    .await;
    let hub = McpHub::start(&[servers::puppeteer()], HubOptions::default()).await;
    assert_eq!(state_of(&hub, "puppeteer"), ServerState::Ready);

    let nav = hub
        .call(
            "puppeteer__puppeteer_navigate",
            json!({"url": site.url("/index.html")}),
        )
        .await;
    assert_eq!(nav.kind, OutcomeKind::Ok, "{}", nav.content);
    let eval = hub
        .call(
            "puppeteer__puppeteer_evaluate",
            json!({"script": "document.title + ' / ' + document.getElementById('greeting').textContent"}),
        )
        .await;
    assert_eq!(eval.kind, OutcomeKind::Ok, "{}", eval.content);
    assert!(
        eval.content.contains("Puppet Show / Hello from 127.0.0.1"),
        "{}",
        eval.content
    );
    let shot = hub
        .call(
            "puppeteer__puppeteer_screenshot",
            json!({"name": "page", "width": 320, "height": 200}),
        )
        .await;
    assert_eq!(shot.kind, OutcomeKind::Ok, "{}", shot.content);
    assert!(
        shot.content.contains("[image: image/png, "),
        "{}",
        shot.content
    );

    // Chromium runs below the server (in a process group of its own); shutdown takes it down too.
    let pid = hub.server_pid("puppeteer").expect("pid");
    let tree = children(&hub, &["puppeteer"]);
    assert!(
        tree.len() > 2,
        "chromium should be running under the server: {tree:?}"
    );
    hub.shutdown().await;
    assert_all_gone(&tree).await;
    assert!(!process_alive(pid));
}
