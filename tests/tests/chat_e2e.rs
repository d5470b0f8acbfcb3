//! End to end through the built binary: `ollama-mcp-bot chat` on piped stdin, the Ollama double
//! as the model, and the REAL MCP servers (npm and PyPI packages installed by
//! scripts/setup-test-deps.sh). The model's tool call must reach the real server, the real
//! result must reach the next model request, and the reply must be printed.

use std::time::Duration;

use ollama_mcp_bot::llm::Role;
use ollama_mcp_tests::bot_process::{ChatProcess, run_chat, test_config, write_config};
use ollama_mcp_tests::ollama_double::{OllamaDouble, Reply, SeenRequest};
use ollama_mcp_tests::servers;
use serde_json::{Value, json};

const TURN: Duration = Duration::from_secs(90);

/// A model that calls a tool when the user's message starts with a known word, and answers
/// with the tool's result (on one line) once the result is in the request.
fn tool_agent(
    routes: Vec<(&'static str, &'static str, Value)>,
) -> impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static {
    move |req: &SeenRequest| {
        let last = req.messages.last();
        if let Some(m) = last.filter(|m| m.role == Role::Tool) {
            let name = m.tool_name.clone().unwrap_or_default();
            return Reply::text(format!("RESULT[{name}]: {}", m.content.replace('\n', " ")));
        }
        let user = req.last_user_message().unwrap_or_default().to_string();
        for (word, tool, args) in &routes {
            if user.starts_with(word) {
                return Reply::tool_call(*tool, args.clone());
            }
        }
        Reply::text(format!("echo: {user}"))
    }
}

async fn double_with(
    responder: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
) -> OllamaDouble {
    OllamaDouble::builder()
        .model("llama3.2", &["completion", "tools"])
        .responder(responder)
        .start()
        .await
        .expect("start the Ollama double")
}

#[tokio::test(flavor = "multi_thread")]
async fn real_servers_answer_the_models_tool_calls() {
    let dir = tempfile::tempdir().expect("dir");
    let page = servers::PageServer::start(&[(
        "/notes.html",
        "<html><body><h1>Release notes</h1><p>The marmalade-42 build ships today.</p></body></html>".to_string(),
    )])
    .await;
    let (_http_guard, mut everything_http) = servers::everything_http().await;
    everything_http.name = "remote".into();
    let mut thinking = servers::sequential_thinking();
    thinking.name = "thinking".into();
    let page_url = page.url("/notes.html");
    let routes = vec![
        (
            "remember",
            "memory__create_entities",
            json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["likes tea"]}]}),
        ),
        ("recall", "memory__read_graph", json!({})),
        (
            "think",
            "thinking__sequentialthinking",
            json!({"thought": "First, list the steps.", "thoughtNumber": 1, "totalThoughts": 2, "nextThoughtNeeded": true}),
        ),
        ("echo", "everything__echo", json!({"message": "over stdio"})),
        (
            "http",
            "remote__echo",
            json!({"message": "over streamable HTTP"}),
        ),
        ("fetch", "fetch__fetch", json!({"url": page_url})),
    ];
    let double = double_with(tool_agent(routes)).await;
    let mut config = test_config(
        dir.path(),
        &double.url(),
        vec![
            servers::memory(dir.path()),
            thinking,
            servers::everything_stdio(),
            everything_http,
            servers::fetch(),
        ],
    );
    // Five servers' tools still fit half of 8192 tokens (`auto` would offer them all): ask for
    // tools on demand to see the catalog at work.
    config.chat.tool_loading = ollama_mcp_bot::config::ToolLoading::OnDemand;
    let config = write_config(dir.path(), &config);
    let out = run_chat(
        &config,
        "e2e",
        "remember Ada\nrecall\nthink\necho\nhttp\nfetch\nplain words\n",
    )
    .await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let replies: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(replies.len(), 7, "one reply line per message: {replies:?}");
    assert!(
        replies[0].starts_with("RESULT[memory__create_entities]") && replies[0].contains("Ada"),
        "{}",
        replies[0]
    );
    assert!(
        replies[1].contains("likes tea"),
        "the real memory graph was read back: {}",
        replies[1]
    );
    assert!(replies[2].contains("thoughtNumber"), "{}", replies[2]);
    assert!(replies[3].contains("Echo: over stdio"), "{}", replies[3]);
    assert!(
        replies[4].contains("Echo: over streamable HTTP"),
        "{}",
        replies[4]
    );
    assert!(
        replies[5].contains("marmalade-42"),
        "the real fetch server read the page: {}",
        replies[5]
    );
    assert_eq!(replies[6], "echo: plain words");
    // Tool traces go to stderr, never to stdout.
    assert!(
        out.stderr.contains("🔧 memory__create_entities"),
        "{}",
        out.stderr
    );
    // On demand, the first request offers `find_tools`, whose catalog names every server's tools.
    let first = &double.chat_requests()[0];
    assert_eq!(first.tool_names(), ["find_tools"]);
    let catalog = first.tools[0]
        .pointer("/function/description")
        .and_then(|d| d.as_str())
        .unwrap_or_default();
    for t in [
        "memory: create_entities",
        "read_graph",
        "thinking: sequentialthinking",
        "everything: ",
        "remote: ",
        "fetch: fetch",
    ] {
        assert!(catalog.contains(t), "{t} not in the catalog: {catalog}");
    }
    // A tool called from the catalog is offered in full, namespaced, from then on (the list only
    // grows): the last request (turn 7) offers all six called so far.
    let last = double.chat_requests().pop().expect("requests");
    let offered = last.tool_names();
    for t in [
        "memory__create_entities",
        "memory__read_graph",
        "thinking__sequentialthinking",
        "everything__echo",
        "remote__echo",
        "fetch__fetch",
    ] {
        assert!(
            offered.iter().any(|o| o == t),
            "{t} not offered: {offered:?}"
        );
    }
    // The real result reached the next model request as a `tool` message.
    let second = &double.chat_requests()[1];
    let result = second.messages.last().expect("messages");
    assert_eq!(result.role, Role::Tool);
    assert!(result.content.contains("Ada"));
}

/// The default configuration offers every tool of four typical MCP servers, in the same order,
/// in every request of a session: the tool list never moves the start of Ollama's cached prompt.
#[tokio::test(flavor = "multi_thread")]
async fn default_config_offers_every_tool_of_typical_servers_in_every_request() {
    let dir = tempfile::tempdir().expect("dir");
    let mut thinking = servers::sequential_thinking();
    thinking.name = "thinking".into();
    let double = double_with(tool_agent(vec![
        ("recall", "memory__read_graph", json!({})),
        ("echo", "everything__echo", json!({"message": "hi"})),
    ]))
    .await;
    let config = test_config(
        dir.path(),
        &double.url(),
        vec![
            servers::memory(dir.path()),
            thinking,
            servers::fetch(),
            servers::everything_stdio(),
        ],
    );
    let config = write_config(dir.path(), &config);
    let out = run_chat(
        &config,
        "cache",
        "recall
plain
echo
again plain
",
    )
    .await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let requests = double.chat_requests();
    assert_eq!(
        requests.len(),
        6,
        "two tool turns of two rounds, two plain turns"
    );
    let first = requests[0].tool_names();
    for t in [
        "memory__read_graph",
        "thinking__sequentialthinking",
        "fetch__fetch",
        "everything__echo",
    ] {
        assert!(first.iter().any(|n| n == t), "{t} not offered: {first:?}");
    }
    assert!(!first.iter().any(|n| n == "find_tools"), "{first:?}");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.tool_names(), first, "request {i} changed the tool list");
    }
}

/// `chat --model NAME` is the model of every request; a reply Ollama cut says so; an empty reply
/// is a failed turn; a connection that breaks mid-reply is one clear error line.
#[tokio::test(flavor = "multi_thread")]
async fn model_flag_cut_and_empty_replies_and_a_broken_stream() {
    let dir = tempfile::tempdir().expect("dir");
    let line = |content: &str, done: bool| {
        let mut v = json!({"model": "qwen3", "created_at": "2026-12-06T19:00:30.522348354Z",
            "message": {"role": "assistant", "content": content}, "done": done});
        if done {
            v["done_reason"] = json!("length");
            v["prompt_eval_count"] = json!(159);
            v["eval_count"] = json!(8);
        }
        v.to_string() + "\n"
    };
    let (cut, cut_done) = (line("The answer is", false), line("", true));
    let empty = line("", true);
    let double = OllamaDouble::builder()
        .model("llama3.2", &["completion", "tools"])
        .model("qwen3", &["completion", "tools"])
        .responder(
            move |req: &SeenRequest| match req.last_user_message().unwrap_or_default() {
                "cut" => Reply::raw([cut.clone(), cut_done.clone()]),
                "empty" => Reply::raw([empty.clone()]),
                "break" => Reply::DropMidStream { after_chunks: 1 },
                other => Reply::text(format!("echo: {other}")),
            },
        )
        .start()
        .await
        .expect("double");
    let mut config = test_config(dir.path(), &double.url(), vec![]);
    config.ollama.options.insert("num_predict".into(), json!(8));
    let config = write_config(dir.path(), &config);
    let mut chat = ChatProcess::spawn(&config, "s", &["--model", "qwen3"], &[]);
    for message in ["hello", "cut", "empty", "break", "still here"] {
        chat.send(message).await;
    }
    let out = chat.finish(TURN).await;
    assert_eq!(out.code, Some(1), "failed turns make the exit code 1");
    let models: Vec<String> = double
        .chat_requests()
        .iter()
        .filter_map(|r| r.json.as_ref()?.get("model")?.as_str().map(str::to_string))
        .collect();
    assert_eq!(models, ["qwen3"; 5], "--model is used for every turn");
    let replies: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        replies,
        ["echo: hello", "The answer is", "echo: still here"],
        "no blank answer is printed: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("note: the reply was cut at ollama.options.num_predict = 8"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("error: model `qwen3` gave an empty answer"),
        "{}",
        out.stderr
    );
    let broke: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("broke") || l.contains("not valid"))
        .collect();
    assert_eq!(broke.len(), 1, "one error line for one failure: {broke:?}");
    assert!(
        broke[0].starts_with("error: the connection to Ollama broke"),
        "{broke:?}"
    );
}

/// A model without `tools` or `thinking` (the double answers 400 to either, as Ollama does):
/// every turn still works, without tools and without thinking, and the user is told once.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_cannot_use_tools_or_think_still_chats_and_says_so_once() {
    let dir = tempfile::tempdir().expect("dir");
    let double = OllamaDouble::builder()
        .model("llama3.2", &["completion", "tools"])
        .model("tiny", &["completion"])
        .responder(|req: &SeenRequest| {
            Reply::text(format!(
                "echo: {}",
                req.last_user_message().unwrap_or_default()
            ))
        })
        .start()
        .await
        .expect("double");
    let mut config = test_config(dir.path(), &double.url(), vec![servers::memory(dir.path())]);
    config.ollama.model = "tiny".into();
    config.ollama.think = true;
    let config = write_config(dir.path(), &config);
    let out = run_chat(&config, "s", "one\ntwo\n").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "echo: one\necho: two\n");
    for r in double.chat_requests() {
        let body = r.json.clone().expect("json");
        assert!(body.get("tools").is_none(), "{body}");
        assert_ne!(body.get("think"), Some(&json!(true)), "{body}");
    }
    let notes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("note:"))
        .collect();
    assert_eq!(notes.len(), 2, "each said once: {notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("tiny cannot use tools") && n.contains("models that can: llama3.2")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("tiny cannot think")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_continues_the_session() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_with(tool_agent(vec![])).await;
    let config = write_config(dir.path(), &test_config(dir.path(), &double.url(), vec![]));
    let first = run_chat(&config, "alice", "my name is Zed\n").await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let second = run_chat(&config, "alice", "what is my name?\n").await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let last = double.chat_requests().pop().expect("a request");
    let contents: Vec<&str> = last.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents[1..],
        ["my name is Zed", "echo: my name is Zed", "what is my name?"],
        "{contents:?}"
    );
    // Another session does not see it.
    run_chat(&config, "bob", "hello\n").await;
    let bob = double.chat_requests().pop().expect("a request");
    assert!(!bob.messages.iter().any(|m| m.content.contains("Zed")));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_turn_loses_no_completed_turn() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_with(|req: &SeenRequest| {
        if req.last_user_message() == Some("hang") {
            Reply::Hang
        } else {
            Reply::text("done")
        }
    })
    .await;
    let config = write_config(dir.path(), &test_config(dir.path(), &double.url(), vec![]));
    let mut chat = ChatProcess::spawn(&config, "s", &[], &[]);
    chat.send("first").await;
    assert_eq!(chat.next_reply(TURN).await, "done");
    chat.send("hang").await;
    let saw_hang = || {
        double
            .chat_requests()
            .iter()
            .any(|r| r.last_user_message() == Some("hang"))
    };
    assert!(
        servers::wait_until(TURN, saw_hang).await,
        "the second turn reached the model"
    );
    servers::kill_hard(chat.pid());
    let _ = chat.child.wait().await;

    let after = run_chat(&config, "s", "again\n").await;
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    let last = double.chat_requests().pop().expect("request");
    let contents: Vec<&str> = last
        .messages
        .iter()
        .skip(1)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        contents,
        ["first", "done", "again"],
        "the completed turn survived; the killed one left nothing half-written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_mcp_server_is_reported_and_restarted() {
    let dir = tempfile::tempdir().expect("dir");
    let routes = vec![
        (
            "slow",
            "everything__trigger-long-running-operation",
            json!({"duration": 30, "steps": 30}),
        ),
        ("echo", "everything__echo", json!({"message": "back again"})),
    ];
    let double = double_with(tool_agent(routes)).await;
    let config = write_config(
        dir.path(),
        &test_config(dir.path(), &double.url(), vec![servers::everything_stdio()]),
    );
    let mut chat = ChatProcess::spawn(&config, "s", &[], &[]);
    chat.send("slow").await;
    chat.wait_stderr("🔧 everything__trigger-long-running-operation", TURN)
        .await;
    // Kill the real server while the call is in flight.
    let chat_pid = chat.pid();
    let find_server = || {
        servers::descendants(chat_pid)
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.contains("server-everything") || c.contains("mcp-server-everything")
                })
            })
            .collect::<Vec<_>>()
    };
    let pids = find_server();
    assert!(
        !pids.is_empty(),
        "the everything server runs under the chat process"
    );
    for pid in pids {
        servers::kill_hard(pid);
    }
    let reply = chat.next_reply(TURN).await;
    assert!(
        reply.starts_with("RESULT[everything__trigger-long-running-operation]"),
        "{reply}"
    );
    assert!(
        reply.to_lowercase().contains("crash") || reply.to_lowercase().contains("unavailable"),
        "{reply}"
    );
    // The server comes back and the session goes on.
    let mut answered = String::new();
    for _ in 0..20 {
        chat.send("echo").await;
        answered = chat.next_reply(TURN).await;
        if answered.contains("Echo: back again") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(answered.contains("Echo: back again"), "{answered}");
    let out = chat.finish(TURN).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_down_then_up() {
    let dir = tempfile::tempdir().expect("dir");
    let mut double = double_with(tool_agent(vec![])).await;
    let mut config = test_config(dir.path(), &double.url(), vec![]);
    config.ollama.max_retries = 1;
    let config = write_config(dir.path(), &config);
    double.shutdown().await;
    let mut chat = ChatProcess::spawn(&config, "s", &[], &[]);
    chat.send("are you there?").await;
    let error = chat.wait_stderr("error:", TURN).await;
    assert!(error.contains("cannot reach Ollama"), "{error}");
    double
        .restart()
        .await
        .expect("restart the double on the same port");
    chat.send("now?").await;
    assert_eq!(chat.next_reply(TURN).await, "echo: now?");
    let out = chat.finish(TURN).await;
    assert_eq!(out.code, Some(1), "a failed turn makes the exit code 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_model_output_and_bad_tool_calls_keep_the_session_usable() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_with(|req: &SeenRequest| {
        let last = req.messages.last();
        if let Some(m) = last.filter(|m| m.role == Role::Tool) {
            return Reply::text(format!("TOOL SAID: {}", m.content.replace('\n', " ")));
        }
        match req.last_user_message().unwrap_or_default() {
            "garbage" => Reply::raw(["{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":false}\n", "this is not json\n"]),
            "midway" => Reply::ErrorMidStream { after_chunks: 1, message: "CUDA out of memory".into() },
            "nosuchtool" => Reply::tool_call("memory__fly_to_the_moon", json!({})),
            "badargs" => Reply::tool_call("memory__create_entities", json!({"entities": "not a list"})),
            "missing" => Reply::status(404, "model \"llama3.2\" not found, try pulling it first"),
            other => Reply::text(format!("echo: {other}")),
        }
    }).await;
    let config = write_config(
        dir.path(),
        &test_config(dir.path(), &double.url(), vec![servers::memory(dir.path())]),
    );
    let mut chat = ChatProcess::spawn(&config, "s", &[], &[]);
    chat.send("garbage").await;
    let e = chat.wait_stderr("error:", TURN).await;
    assert!(e.contains("not valid"), "{e}");
    chat.send("midway").await;
    let e = chat.wait_stderr("error:", TURN).await;
    assert!(e.contains("CUDA out of memory"), "{e}");
    chat.send("missing").await;
    let e = chat.wait_stderr("error:", TURN).await;
    assert!(e.contains("ollama pull llama3.2"), "{e}");
    chat.send("nosuchtool").await;
    let r = chat.next_reply(TURN).await;
    assert!(
        r.contains("memory__read_graph"),
        "unknown tool: the model is told the real names: {r}"
    );
    chat.send("badargs").await;
    let r = chat.next_reply(TURN).await;
    assert!(
        r.contains("TOOL SAID") && r.to_lowercase().contains("entities"),
        "schema error returned to the model: {r}"
    );
    chat.send("still fine").await;
    assert_eq!(chat.next_reply(TURN).await, "echo: still fine");
    let out = chat.finish(TURN).await;
    assert_eq!(out.code, Some(1));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_not_installed_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("dir");
    let double = double_with(tool_agent(vec![(
        "echo",
        "everything__echo",
        json!({"message": "still here"}),
    )]))
    .await;
    let missing = servers::parsed(ollama_mcp_bot::config::McpServerConfig {
        name: "ghost".into(),
        command: Some("/nonexistent/mcp-ghost-server".into()),
        ..Default::default()
    });
    let config = write_config(
        dir.path(),
        &test_config(
            dir.path(),
            &double.url(),
            vec![missing, servers::everything_stdio()],
        ),
    );
    let out = run_chat(&config, "s", "echo\n").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Echo: still here"), "{}", out.stdout);
    assert!(
        out.stderr.contains("ghost"),
        "the failed server is reported: {}",
        out.stderr
    );
}

#[test]
fn check_config_reports_errors_and_never_prints_secrets() {
    use std::process::Command;
    let dir = tempfile::tempdir().expect("dir");
    let bin = ollama_mcp_tests::bot_process::bot_binary();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[chat]\nmax_tool_rounds = \"lots\"\n").expect("write");
    let out = Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("chat.max_tool_rounds"),
        "{err}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[ollama]\nmodel = \"qwen3\"\n").expect("write");
    let out = Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&good)
        .env("DISCORD_TOKEN", "MTIz.super-secret-token")
        .env("OLLAMA_MCP__CHAT__MAX_TOOL_ROUNDS", "3")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("model = \"qwen3\"") && text.contains("max_tool_rounds = 3"),
        "{text}"
    );
    assert!(text.contains("DISCORD_TOKEN: set (redacted)"), "{text}");
    assert!(
        !text.contains("super-secret")
            && !String::from_utf8_lossy(&out.stderr).contains("super-secret")
    );

    let out = Command::new(&bin)
        .args(["chat", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}
