//! Issue 10 through the built binary: nothing leaks (canary secrets), nothing is left running
//! (children die with the bot, SIGTERM shuts down cleanly), approval cannot be bypassed from a
//! pipe, and the bridge's `/mcp` is unreachable from outside the host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ollama_mcp_bot::config::{McpServer, McpServerConfig, McpTransport, ToolFilterConfig};
use ollama_mcp_bot::llm::Role;
use ollama_mcp_tests::bot_process::{ChatProcess, bot_binary, test_config, write_config};
use ollama_mcp_tests::ollama_double::{OllamaDouble, Reply, SeenRequest};
use ollama_mcp_tests::servers::{
    self, descendants, free_port, http_get, process_alive, wait_until,
};
use serde_json::json;

/// An MCP server (stdio) that answers the handshake and `tools/list`, then ignores the end of
/// its input and SIGTERM: the careless server that outlives a bot which only closes stdin.
const STUBBORN_SERVER: &str = r#"
import json, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if "id" not in msg:
        continue
    if msg.get("method") == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "stubborn", "version": "1"}}
    elif msg.get("method") == "tools/list":
        result = {"tools": []}
    else:
        result = None
    reply = {"jsonrpc": "2.0", "id": msg["id"]}
    if result is None:
        reply["error"] = {"code": -32601, "message": "unknown method"}
    else:
        reply["result"] = result
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
while True:
    time.sleep(1)
"#;

fn stubborn(dir: &Path) -> McpServer {
    let script = dir.join("stubborn_mcp.py");
    std::fs::write(&script, STUBBORN_SERVER).expect("write the stubborn server");
    servers::parsed(McpServerConfig {
        name: "stubborn".into(),
        command: Some("python3".into()),
        args: vec!["-u".into(), script.display().to_string()],
        startup_timeout_secs: Some(60),
        ..Default::default()
    })
}

/// Live descendants of `pid` whose command line contains `needle`.
fn descendants_running(pid: u32, needle: &str) -> Vec<u32> {
    descendants(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

async fn double_calling(tool: &'static str, args: serde_json::Value) -> OllamaDouble {
    OllamaDouble::builder()
        .model("llama3.2", &["completion", "tools"])
        .responder(move |req: &SeenRequest| {
            if let Some(m) = req.messages.last().filter(|m| m.role == Role::Tool) {
                return Reply::text(format!("RESULT: {}", m.content.replace('\n', " ")));
            }
            if req
                .last_user_message()
                .is_some_and(|u| u.starts_with("call"))
            {
                return Reply::tool_call(tool, args.clone());
            }
            Reply::text("plain answer")
        })
        .start()
        .await
        .expect("start the Ollama double")
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Starts `chat` with the stubborn server and returns it with the server's pid.
async fn chat_with_stubborn(dir: &Path, double: &OllamaDouble) -> (ChatProcess, u32) {
    let config = write_config(dir, &test_config(dir, &double.url(), vec![stubborn(dir)]));
    let mut chat = ChatProcess::spawn(&config, "s", &[], &[]);
    // The hub has started its servers once the first turn is answered.
    chat.send("hello").await;
    assert_eq!(
        chat.next_reply(Duration::from_secs(90)).await,
        "plain answer"
    );
    let bot = chat.pid();
    let server = descendants_running(bot, "stubborn_mcp.py");
    assert_eq!(
        server.len(),
        1,
        "one stubborn server below the bot: {server:?}"
    );
    (chat, server[0])
}

#[tokio::test(flavor = "multi_thread")]
async fn children_die_with_the_bot_even_on_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_calling("stubborn__none", json!({})).await;
    let (chat, server) = chat_with_stubborn(dir.path(), &double).await;
    signal(chat.pid(), "KILL");
    let gone = wait_until(Duration::from_secs(10), || !process_alive(server)).await;
    if !gone {
        signal(server, "KILL"); // leave nothing behind, then fail
    }
    assert!(gone, "the MCP server outlived `kill -9` of the bot");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_chat_down_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_calling("stubborn__none", json!({})).await;
    let (mut chat, server) = chat_with_stubborn(dir.path(), &double).await;
    signal(chat.pid(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(60), chat.child.wait())
        .await
        .expect("chat exits after SIGTERM")
        .expect("wait");
    let gone = wait_until(Duration::from_secs(10), || !process_alive(server)).await;
    if !gone {
        signal(server, "KILL");
    }
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must end `chat` through its shutdown, not kill it: {status:?}"
    );
    assert!(gone, "the MCP server outlived the shut-down bot");
}

/// A model that calls `everything__echo` for a message starting with "call", and a config in
/// which that tool needs approval.
async fn echo_needs_approval(dir: &Path) -> (OllamaDouble, std::path::PathBuf) {
    let double = double_calling("everything__echo", json!({"message": "ran"})).await;
    let mut everything = servers::everything_stdio();
    everything.tools = ToolFilterConfig {
        require_approval: vec!["echo".into()],
        ..Default::default()
    };
    let config = write_config(dir, &test_config(dir, &double.url(), vec![everything]));
    (double, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_is_refused_from_a_pipe_unless_approve_all() {
    let dir = tempfile::tempdir().expect("dir");
    let (_double, config) = echo_needs_approval(dir.path()).await;
    let mut chat = ChatProcess::spawn(&config, "refused", &[], &[]);
    chat.send("call echo").await;
    let reply = chat.next_reply(Duration::from_secs(90)).await;
    assert!(
        reply.contains("did not approve") && !reply.contains("Echo: ran"),
        "the tool must not run unapproved: {reply}"
    );
    chat.wait_stderr("--approve-all", Duration::from_secs(10))
        .await;
    drop(chat);

    let mut chat = ChatProcess::spawn(&config, "approved", &["--approve-all"], &[]);
    chat.send("call echo").await;
    let reply = chat.next_reply(Duration::from_secs(90)).await;
    assert!(
        reply.contains("Echo: ran"),
        "--approve-all runs it: {reply}"
    );
}

/// A non-loopback IPv4 address that the test makes itself: one end of a veth pair whose other end
/// is a test host in a network namespace of its own (needs root and iproute2, as CI has; this
/// machine's kernel has no dummy interfaces). Traffic to it never leaves the machine, and no
/// address of a real network interface is used.
fn non_loopback_address() -> Ipv4Addr {
    let ip = Ipv4Addr::new(10, 231, 77, 1);
    if std::net::TcpListener::bind((ip, 0)).is_ok() {
        return ip; // made by an earlier test
    }
    for args in [
        vec!["netns", "add", "omcp-test"],
        vec![
            "link",
            "add",
            "omcp-test0",
            "type",
            "veth",
            "peer",
            "name",
            "omcp-test1",
        ],
        vec!["link", "set", "omcp-test1", "netns", "omcp-test"],
        vec!["addr", "add", "10.231.77.1/30", "dev", "omcp-test0"],
        vec!["link", "set", "omcp-test0", "up"],
        vec![
            "-n",
            "omcp-test",
            "addr",
            "add",
            "10.231.77.2/30",
            "dev",
            "omcp-test1",
        ],
        vec!["-n", "omcp-test", "link", "set", "omcp-test1", "up"],
    ] {
        // Another test may be making it at the same moment: the bind below decides.
        let _ = std::process::Command::new("ip")
            .args(&args)
            .stderr(Stdio::null())
            .status()
            .expect("run `ip` (iproute2; scripts/setup-test-deps.sh installs it)");
    }
    assert!(
        std::net::TcpListener::bind((ip, 0)).is_ok(),
        "could not make the veth pair omcp-test0/omcp-test1 with {ip} (needs root and iproute2)"
    );
    ip
}

/// A raw HTTP request with a chosen `Host` header (a client picks it freely).
async fn http_status(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}

fn spawn_bridge(args: &[String]) -> tokio::process::Child {
    let memory = servers::memory(tempfile::tempdir().expect("dir").keep().as_path());
    let McpTransport::Stdio(stdio) = &memory.transport else {
        unreachable!("memory is a stdio server")
    };
    tokio::process::Command::new(bot_binary())
        .arg("bridge")
        .args(args)
        .arg("--")
        .arg(&stdio.command)
        .envs(&stdio.env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the bridge")
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_mcp_is_unreachable_from_outside_while_health_answers() {
    let outside = IpAddr::V4(non_loopback_address());
    let (port, health) = (free_port(), free_port());
    let _bridge = spawn_bridge(&[
        "--port".into(),
        port.to_string(),
        "--health-port".into(),
        health.to_string(),
    ]);
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let up = wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(local).is_ok()
    })
    .await;
    assert!(up, "the bridge never listened on {local}");
    let probe = SocketAddr::new(outside, health);
    let mut healthy = false;
    for _ in 0..600 {
        if matches!(http_get(probe, "/healthz").await, Ok((200, _))) {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        healthy,
        "the health port answers on {probe}: {:?}",
        http_get(probe, "/healthz").await
    );
    assert_eq!(
        http_get(probe, "/mcp").await.expect("health port").0,
        404,
        "the health port serves nothing but /healthz"
    );
    let from_outside = SocketAddr::new(outside, port);
    assert!(
        tokio::net::TcpStream::connect(from_outside).await.is_err(),
        "/mcp must not listen on {from_outside}"
    );
    let status = http_status(local, "POST", "/mcp", &local.to_string())
        .await
        .expect("loopback reaches /mcp");
    assert_eq!(status, 200, "the bot in the pod still reaches /mcp");
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_refuses_non_loopback_peers_whatever_the_host_header() {
    let outside = IpAddr::V4(non_loopback_address());
    let port = free_port();
    // Listening everywhere by mistake: the peer check still guards /mcp.
    let _bridge = spawn_bridge(&[
        "--port".into(),
        port.to_string(),
        "--host".into(),
        "0.0.0.0".into(),
    ]);
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let up = wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(local).is_ok()
    })
    .await;
    assert!(up, "the bridge never listened on {local}");
    let from_outside = SocketAddr::new(outside, port);
    let spoofed = http_status(from_outside, "POST", "/mcp", &format!("127.0.0.1:{port}"))
        .await
        .expect("the socket is reachable");
    assert_eq!(
        spoofed, 403,
        "a Host header must not open /mcp to another host"
    );
    let status = http_status(local, "POST", "/mcp", &local.to_string())
        .await
        .expect("loopback");
    assert_eq!(status, 200);
}

const CANARIES: [&str; 4] = [
    "canary-env-token-7f3a",
    "canary-file-token-9b2c",
    "canary-header-5d1e",
    "canary-json-env-3c8f",
];

fn leaked<'a>(text: &str, canaries: &[&'a str]) -> Vec<&'a str> {
    canaries
        .iter()
        .copied()
        .filter(|c| text.contains(c))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_secrets_never_leak() {
    let dir = tempfile::tempdir().expect("dir");
    let [env_token, file_token, header, json_env] = CANARIES;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, file_token).expect("write token file");
    let token_file = token_file.display().to_string();
    let header_value = format!("Bearer {header}");

    let (_http_guard, mut remote) = servers::everything_http().await;
    if let McpTransport::Http(h) = &mut remote.transport {
        h.headers_env
            .insert("Authorization".into(), "OMCP_TEST_CANARY_HEADER".into());
    }
    std::fs::write(dir.path().join("stubborn_mcp.py"), STUBBORN_SERVER).expect("write");
    std::fs::write(
        dir.path().join("servers.json"),
        json!({"mcpServers": {"pasted": {
            "command": "python3",
            "args": ["-u", dir.path().join("stubborn_mcp.py").display().to_string()],
            "env": {"API_TOKEN": json_env}
        }}})
        .to_string(),
    )
    .expect("write servers.json");
    let double = double_calling("everything_http__echo", json!({"message": "tool ran"})).await;
    let mut config = test_config(dir.path(), &double.url(), vec![remote]);
    config.mcp.servers_json = Some(dir.path().join("servers.json"));
    config.log.filter = "trace".into();
    let config = write_config(dir.path(), &config);
    let env = [
        ("DISCORD_TOKEN", env_token),
        ("DISCORD_TOKEN_FILE", token_file.as_str()),
        ("OMCP_TEST_CANARY_HEADER", header_value.as_str()),
        ("RUST_LOG", "trace"),
    ];

    let mut chat = ChatProcess::spawn(&config, "canary", &[], &env);
    chat.send("call the tool").await;
    let reply = chat.next_reply(Duration::from_secs(90)).await;
    assert!(
        reply.contains("tool ran"),
        "the turn used the remote server: {reply}"
    );
    // Every MCP child's environment: no secret of the bot; the pasted server's own variable
    // only in the pasted server.
    let children = descendants(chat.pid());
    assert!(!children.is_empty(), "the stdio server runs below the bot");
    for pid in children {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
        assert_eq!(
            leaked(&environ, &[env_token, file_token, header]),
            Vec::<&str>::new(),
            "child {pid} got a secret of the bot"
        );
    }
    let out = chat.finish(Duration::from_secs(60)).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.lines().count() > 20,
        "trace logging was on: {}",
        out.stderr
    );
    assert_eq!(leaked(&out.stdout, &CANARIES), Vec::<&str>::new(), "stdout");
    assert_eq!(
        leaked(&out.stderr, &CANARIES),
        Vec::<&str>::new(),
        "stderr at trace level"
    );
    for file in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        let name = file.file_name().to_string_lossy().to_string();
        if name.starts_with("bot.db") {
            let bytes = std::fs::read(file.path()).expect("read the database");
            assert_eq!(
                leaked(&String::from_utf8_lossy(&bytes), &CANARIES),
                Vec::<&str>::new(),
                "{name}"
            );
        }
    }

    let shown = std::process::Command::new(bot_binary())
        .args(["check-config", "--config"])
        .arg(&config)
        .envs(env)
        .output()
        .expect("run check-config");
    assert_eq!(shown.status.code(), Some(0));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&shown.stdout),
        String::from_utf8_lossy(&shown.stderr)
    );
    assert_eq!(
        leaked(&text, &CANARIES),
        Vec::<&str>::new(),
        "check-config: {text}"
    );
    assert!(text.contains("API_TOKEN = \"<set, 20 chars>\""), "{text}");
}

/// Runs `chat` on a pseudo-terminal, waits for its prompt, types Ctrl-C and reports whether it
/// exited within 20 s (a blocking read of stdin used to hold it until Enter).
const CTRL_C_AT_PROMPT: &str = r#"
import os, pty, select, signal, sys, time
bot, config = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(bot, [bot, "chat", "--config", config, "--session", "tty"])
def drain(timeout):
    r, _, _ = select.select([fd], [], [], timeout)
    if r:
        try:
            return os.read(fd, 4096)
        except OSError:
            return b""
    return b""
seen = b""
deadline = time.time() + 90
while b"you>" not in seen:
    if time.time() > deadline:
        os.kill(pid, signal.SIGKILL)
        print("NO PROMPT", seen)
        sys.exit(3)
    seen += drain(0.5)
os.write(fd, b"\x03")
start = time.time()
while time.time() - start < 20:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("EXITED after %.1f s" % (time.time() - start))
        sys.exit(0)
    drain(0.1)
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print("HUNG")
sys.exit(1)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_at_the_prompt_exits_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_calling("none__none", json!({})).await;
    let config = write_config(
        dir.path(),
        &test_config(dir.path(), &double.url(), vec![stubborn(dir.path())]),
    );
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(CTRL_C_AT_PROMPT)
        .arg(bot_binary())
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("OLLAMA_MCP_CONFIG")
        .output()
        .await
        .expect("run python3 with a pty");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("EXITED"),
        "chat did not exit on Ctrl-C at its prompt: {said}"
    );
    // This test's own server: other tests run stubborn servers of their own meanwhile.
    let left = servers::my_descendants_running(&dir.path().display().to_string());
    assert!(left.is_empty(), "its MCP server was left running: {left:?}");
}

/// Drives `chat` on a pseudo-terminal through a script of (wait for this output, then type
/// that); prints `DONE` when every step was seen, else what it was waiting for.
const TTY_SCRIPT: &str = r#"
import os, pty, select, signal, sys, time
bot, config, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(bot, [bot, "chat", "--config", config, "--session", "tty-approval"])
seen = b""
for i in range(0, len(steps), 2):
    want, send = steps[i].encode(), steps[i + 1].encode().decode("unicode_escape").encode()
    deadline = time.time() + 90
    while want not in seen:
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            print("WAITING FOR", want, "SEEN", seen[-600:])
            sys.exit(1)
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                print("EOF WAITING FOR", want, "SEEN", seen[-600:])
                sys.exit(1)
    seen = seen[seen.index(want) + len(want):]
    os.write(fd, send)
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
print("DONE")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn approval_is_asked_on_a_terminal() {
    let dir = tempfile::tempdir().expect("dir");
    let (_double, config) = echo_needs_approval(dir.path()).await;
    let steps = [
        ("you>", "call echo\\r"),
        ("run everything__echo {\"message\":\"ran\"}? [y/N]", "y\\r"),
        ("Echo: ran", ""),
        ("you>", "call echo again\\r"),
        ("[y/N]", "n\\r"),
        ("did not approve", ""),
        ("you>", ""),
    ];
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(TTY_SCRIPT)
        .arg(bot_binary())
        .arg(&config)
        .args(steps.iter().flat_map(|(want, send)| [*want, *send]))
        .env_remove("RUST_LOG")
        .env_remove("OLLAMA_MCP_CONFIG")
        .output()
        .await
        .expect("run python3 with a pty");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("DONE"), "{said}");
}

/// Issue 9: what a real Ollama refuses on every request is refused by `check-config` first, and
/// OLLAMA_HOST is read as Ollama reads it.
#[test]
fn check_config_refuses_what_ollama_would_refuse() {
    let dir = tempfile::tempdir().expect("dir");
    let check = |toml: &str, host: Option<&str>| {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).expect("write");
        let mut cmd = std::process::Command::new(bot_binary());
        cmd.args(["check-config", "--config"])
            .arg(&path)
            .env_remove("OLLAMA_MCP_CONFIG")
            .env_remove("OLLAMA_HOST");
        if let Some(h) = host {
            cmd.env("OLLAMA_HOST", h);
        }
        let out = cmd.output().expect("run check-config");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = check("[ollama.options]\nnum_ctx = \"8192\"\n", None);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("ollama.options.num_ctx") && text.contains("integer"),
        "{text}"
    );
    let (code, text) = check("[ollama]\nkeep_alive = \"forever\"\n", None);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("time: invalid duration \"forever\""),
        "{text}"
    );
    let (code, text) = check("", Some("110.0.0.0"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("url = \"http://110.0.0.0:11434\""), "{text}");
}
