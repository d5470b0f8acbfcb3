//! The stdio → streamable HTTP bridge over the REAL `@modelcontextprotocol/server-memory`,
//! driven by an rmcp streamable HTTP client (and by our own hub).
#![allow(clippy::unwrap_used, reason = "test code")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ollama_mcp_bot::bridge::{self, BridgeArgs, BridgeError};
use ollama_mcp_bot::config::McpServerConfig;
use ollama_mcp_bot::mcp::{HubOptions, McpHub, OutcomeKind, ServerState, ToolHost};
use ollama_mcp_tests::servers::{
    self, http_get, my_descendants_running, process_alive, wait_until,
};
use rmcp::ServiceExt as _;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, GetPromptRequestParams,
    Implementation, ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{NotificationContext, RoleClient, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;
use tokio::sync::Notify;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A test client that counts `tools/list_changed` notifications.
#[derive(Clone)]
struct Client {
    tools_changed: Arc<Notify>,
}

impl rmcp::ClientHandler for Client {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("bridge-test", "1"),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

struct RunningBridge {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), BridgeError>>,
}

/// Starts the bridge on 127.0.0.1:0 over `sh -c SCRIPT` and waits for /healthz to say ok.
async fn start_bridge(script: String) -> RunningBridge {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start_bridge_on(listener, script).await
}

async fn start_bridge_on(listener: tokio::net::TcpListener, script: String) -> RunningBridge {
    let addr = listener.local_addr().expect("addr");
    let mut args = BridgeArgs::new(addr, "sh", vec!["-c".into(), script]);
    args.startup_timeout = Duration::from_secs(60);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bridge::serve_on(listener, args, async move {
        let _ = stopped.await;
    }));
    let healthy = wait_until_async(Duration::from_secs(60), || async move {
        matches!(http_get(addr, "/healthz").await, Ok((200, _)))
    })
    .await;
    assert!(
        healthy,
        "bridge /healthz never said ok: {:?}",
        http_get(addr, "/healthz").await
    );
    RunningBridge {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn wait_until_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_serves_memory_over_http_and_survives_a_crash() {
    init();
    let dir = tempfile::tempdir().expect("temp dir");
    let memory = servers::memory(dir.path());
    let broken = dir.path().join("broken");
    // A wrapper that refuses to start while `broken` exists, so the test controls the restart.
    let script = format!(
        "if [ -e '{broken}' ]; then echo 'refusing to start: marker present' >&2; exit 1; fi; \
         MEMORY_FILE_PATH='{file}' exec '{bin}'",
        broken = broken.display(),
        file = servers::stdio_of(&memory).env["MEMORY_FILE_PATH"],
        bin = servers::stdio_of(&memory).command,
    );
    let mut running = start_bridge(script.clone()).await;
    let url = format!("http://{}/mcp", running.addr);

    // initialize: the child's identity and capabilities come through.
    let handler = Client {
        tools_changed: Arc::new(Notify::new()),
    };
    let client = handler
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(url.clone()))
        .await
        .expect("initialize");
    let info = client.peer_info().expect("server info");
    assert!(
        info.server_info
            .as_ref()
            .is_some_and(|i| i.name.contains("memory")),
        "{info:?}"
    );
    assert!(info.capabilities.tools.is_some(), "{info:?}");

    // tools/list and a tools/call round trip.
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(
        names.contains(&"create_entities".to_string()) && names.contains(&"read_graph".to_string()),
        "{names:?}"
    );
    let created = client
        .call_tool(CallToolRequestParams::new("create_entities").with_arguments(
            json!({"entities": [{"name": "Grace", "entityType": "person", "observations": ["found a moth"]}]})
                .as_object()
                .cloned()
                .unwrap(),
        ))
        .await
        .expect("tools/call");
    assert_ne!(created.is_error, Some(true), "{created:?}");
    let graph = client
        .call_tool(CallToolRequestParams::new("read_graph"))
        .await
        .expect("read_graph");
    assert!(text_of(&graph).contains("found a moth"), "{graph:?}");
    // The child's own errors pass through as they are.
    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await;
    match unknown {
        Ok(r) => assert_eq!(r.is_error, Some(true), "{r:?}"),
        Err(ServiceError::McpError(e)) => assert!(e.message.contains("no_such_tool"), "{e:?}"),
        Err(e) => panic!("unexpected error for an unknown tool: {e}"),
    }

    // Our hub reaches the same server through the bridge.
    let hub = McpHub::start(
        &[servers::parsed(McpServerConfig {
            name: "memory".into(),
            url: Some(url.clone()),
            ..Default::default()
        })],
        HubOptions::default(),
    )
    .await;
    let hub_graph = hub.call("memory__read_graph", json!({})).await;
    assert_eq!(hub_graph.kind, OutcomeKind::Ok, "{}", hub_graph.content);
    assert!(hub_graph.content.contains("Grace"), "{}", hub_graph.content);

    // Kill the child, and keep it from coming back for now.
    let pids = my_descendants_running("mcp-server-memory");
    assert_eq!(
        pids.len(),
        1,
        "one memory server under the bridge: {pids:?}"
    );
    std::fs::write(&broken, "").expect("marker");
    servers::kill_hard(pids[0]);
    let down = wait_until_async(Duration::from_secs(20), || async move {
        matches!(http_get(running.addr, "/healthz").await, Ok((503, _)))
    })
    .await;
    assert!(down, "/healthz should report 503 while the server is down");
    let (_, body) = http_get(running.addr, "/healthz").await.expect("healthz");
    assert!(body.contains("MCP server down"), "{body}");

    let failed = client
        .call_tool(CallToolRequestParams::new("read_graph"))
        .await;
    match failed {
        Err(ServiceError::McpError(e)) => {
            assert!(
                e.message.contains("crashed") && e.message.contains("restarting it"),
                "{e:?}"
            )
        }
        other => {
            panic!("a call while the server is down must fail with a JSON-RPC error, got {other:?}")
        }
    }
    let via_hub = hub.call("memory__read_graph", json!({})).await;
    assert!(
        via_hub.is_error() && via_hub.content.contains("restarting"),
        "{via_hub:?}"
    );

    // Let it start again: the same session works, with the data it had.
    std::fs::remove_file(&broken).expect("remove marker");
    let up = wait_until_async(Duration::from_secs(60), || async move {
        matches!(http_get(running.addr, "/healthz").await, Ok((200, _)))
    })
    .await;
    assert!(up, "bridge did not restart the server");
    let graph = client
        .call_tool(CallToolRequestParams::new("read_graph"))
        .await
        .expect("read_graph after restart");
    assert!(text_of(&graph).contains("found a moth"), "{graph:?}");
    // Sessions are told that the tools may have changed.
    tokio::time::timeout(Duration::from_secs(20), handler.tools_changed.notified())
        .await
        .expect("tools/list_changed after the restart");
    let again = hub.call("memory__read_graph", json!({})).await;
    assert_eq!(again.kind, OutcomeKind::Ok, "{}", again.content);
    assert_eq!(hub.status()[0].state, ServerState::Ready);

    // Shutdown stops the child.
    let _ = client.cancel().await;
    let child = my_descendants_running("mcp-server-memory");
    assert_eq!(child.len(), 1, "{child:?}");
    let _ = running.stop.take().map(|s| s.send(()));
    let result = tokio::time::timeout(Duration::from_secs(30), &mut running.task)
        .await
        .expect("bridge stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    assert!(
        wait_until(Duration::from_secs(10), || !process_alive(child[0])).await,
        "child left running"
    );

    // The hub notices that its remote server went away, and reconnects when it is back.
    let gone = hub.call("memory__read_graph", json!({})).await;
    assert_eq!(
        gone.kind,
        OutcomeKind::ServerUnavailable,
        "{}",
        gone.content
    );
    let noticed = wait_until(Duration::from_secs(20), || {
        matches!(hub.status()[0].state, ServerState::Restarting { .. })
    })
    .await;
    assert!(noticed, "{:?}", hub.status()[0].state);
    let listener = tokio::net::TcpListener::bind(running.addr)
        .await
        .expect("bind the same address again");
    let mut again = start_bridge_on(listener, script).await;
    let back = wait_until(Duration::from_secs(60), || {
        hub.status()[0].state == ServerState::Ready
    })
    .await;
    assert!(back, "hub did not reconnect: {:?}", hub.status()[0].state);
    let graph = hub.call("memory__read_graph", json!({})).await;
    assert_eq!(graph.kind, OutcomeKind::Ok, "{}", graph.content);
    assert!(graph.content.contains("Grace"), "{}", graph.content);

    hub.shutdown().await;
    let _ = again.stop.take().map(|s| s.send(()));
    let result = tokio::time::timeout(Duration::from_secs(30), &mut again.task)
        .await
        .expect("bridge stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reports_a_command_that_cannot_start() {
    init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let args = BridgeArgs::new(addr, "ollama-mcp-no-such-command", Vec::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bridge::serve_on(listener, args, async move {
        let _ = stopped.await;
    }));
    let down = wait_until_async(Duration::from_secs(20), || async move {
        matches!(http_get(addr, "/healthz").await, Ok((503, body)) if body.contains("not found"))
    })
    .await;
    assert!(down, "healthz: {:?}", http_get(addr, "/healthz").await);
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("bridge stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");

    let empty = bridge::serve_with(
        BridgeArgs::new("127.0.0.1:0".parse().unwrap(), String::new(), Vec::new()),
        async {},
    )
    .await;
    assert!(matches!(empty, Err(BridgeError::NoCommand)), "{empty:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_forwards_prompts_and_resources() {
    init();
    let everything = servers::everything_stdio();
    let script = format!("exec '{}' stdio", servers::stdio_of(&everything).command);
    let mut running = start_bridge(script).await;
    let url = format!("http://{}/mcp", running.addr);
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bridge-test", "1"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    .serve(StreamableHttpClientTransport::from_uri(url))
    .await
    .expect("initialize");
    let info = client.peer_info().expect("server info");
    assert!(
        info.capabilities.prompts.is_some() && info.capabilities.resources.is_some(),
        "{info:?}"
    );

    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let simple = prompts
        .iter()
        .find(|p| {
            p.arguments
                .as_ref()
                .is_none_or(|a| a.iter().all(|a| a.required != Some(true)))
        })
        .expect("a prompt without required arguments");
    let prompt = client
        .get_prompt(GetPromptRequestParams::new(simple.name.clone()))
        .await
        .expect("prompts/get");
    assert!(!prompt.messages.is_empty(), "{prompt:?}");

    let resources = client.list_all_resources().await.expect("resources/list");
    let first = resources.first().expect("a resource");
    let read = client
        .read_resource(ReadResourceRequestParams::new(first.uri.clone()))
        .await
        .expect("resources/read");
    assert!(!read.contents.is_empty(), "{read:?}");

    let _ = client.cancel().await;
    let _ = running.stop.take().map(|s| s.send(()));
    let result = tokio::time::timeout(Duration::from_secs(30), &mut running.task)
        .await
        .expect("bridge stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}
