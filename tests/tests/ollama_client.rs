//! The Ollama client against the protocol-faithful Ollama double: streaming, thinking, tool
//! calls, token counts, every error type, retries, list/show; and the double's own rejections.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::{Duration, Instant};

use futures::StreamExt;
use ollama_mcp_bot::config::OllamaConfig;
use ollama_mcp_bot::llm::retry::Backoff;
use ollama_mcp_bot::llm::{
    ChatEvent, ChatMessage, ChatModel, ChatRequest, LlmError, OllamaClient, ToolCall, ToolSpec,
    Usage,
};
use ollama_mcp_tests::ollama_double::{ModelSpec, OllamaDouble, Reply, prompt_tokens};
use ollama_mcp_tests::servers::free_port;
use serde_json::{Value, json};

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client_for(url: &str, timeout_secs: u64, max_retries: u32) -> OllamaClient {
    let config = OllamaConfig {
        url: url.to_string(),
        request_timeout_secs: timeout_secs,
        max_retries,
        ..OllamaConfig::default()
    };
    OllamaClient::new(&config)
        .expect("client builds")
        .with_backoff(Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
            jitter: 0.2,
        })
}

fn client(double: &OllamaDouble) -> OllamaClient {
    client_for(&double.url(), 30, 3)
}

async fn double() -> OllamaDouble {
    OllamaDouble::builder()
        .model("llama3.2", &["completion", "tools"])
        .model("tiny", &["completion"])
        .model_spec(
            ModelSpec::new("qwen3:8b", &["completion", "tools", "thinking"])
                .with_family("qwen3")
                .with_context_length(40_960),
        )
        .start()
        .await
        .expect("double starts")
}

fn request(model: &str, user: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![
            ChatMessage::system("You are terse."),
            ChatMessage::user(user),
        ],
        tools: Vec::new(),
        options: serde_json::Map::new(),
        think: None,
        keep_alive: None,
    }
}

fn memory_tool() -> ToolSpec {
    ToolSpec {
        name: "memory__create_entities".into(),
        description: "Create entities in the knowledge graph".into(),
        parameters: std::sync::Arc::new(json!({
            "type": "object",
            "properties": {"entities": {"type": "array", "items": {"type": "object"}}},
            "required": ["entities"]
        })),
    }
}

/// Every event of a stream, and the error that ended it, if any.
async fn collect(
    client: &OllamaClient,
    request: ChatRequest,
) -> Result<(Vec<ChatEvent>, Option<LlmError>), LlmError> {
    let mut stream = client.chat(request).await?;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(item) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("stream ends in time")
    {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                assert!(stream.next().await.is_none(), "nothing after an error");
                return Ok((events, Some(e)));
            }
        }
    }
    Ok((events, None))
}

fn content(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| {
            if let ChatEvent::Content(c) = e {
                Some(c.as_str())
            } else {
                None
            }
        })
        .collect()
}

fn thinking(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| {
            if let ChatEvent::Thinking(c) = e {
                Some(c.as_str())
            } else {
                None
            }
        })
        .collect()
}

fn usage(events: &[ChatEvent]) -> Usage {
    match events.last() {
        Some(ChatEvent::Done { usage, done_reason }) => {
            assert_eq!(done_reason.as_deref(), Some("stop"));
            *usage
        }
        other => panic!("last event is not Done: {other:?}"),
    }
}

#[tokio::test]
async fn streams_text_with_token_counts() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::text("Hello there, my curious friend."));
    let mut req = request("llama3.2", "Say hello");
    req.options.insert("num_ctx".into(), json!(4096));
    let (events, error) = collect(&client(&double), req).await.expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "Hello there, my curious friend.");
    let chunks = events
        .iter()
        .filter(|e| matches!(e, ChatEvent::Content(_)))
        .count();
    assert!(chunks >= 5, "streamed in several chunks, got {chunks}");

    let seen = double.chat_requests();
    assert_eq!(seen.len(), 1);
    let body = seen[0].json.clone().expect("JSON body");
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["stream"], true);
    assert_eq!(body["options"], json!({"num_ctx": 4096}));
    assert!(body.get("tools").is_none(), "no empty tools array: {body}");
    assert!(
        body.get("think").is_none() && body.get("keep_alive").is_none(),
        "{body}"
    );
    assert_eq!(seen[0].last_user_message(), Some("Say hello"));

    let usage = usage(&events);
    assert_eq!(usage.prompt_tokens, prompt_tokens(&body));
    assert!(usage.prompt_tokens > 0);
    assert_eq!(
        usage.completion_tokens,
        "Hello there, my curious friend.".len().div_ceil(4) as u32
    );
    assert!(usage.eval_duration > Duration::ZERO && usage.total_duration >= usage.eval_duration);
    assert!(usage.tokens_per_second().expect("speed") > 0.0);
}

#[tokio::test]
async fn lines_split_across_network_reads_are_reassembled() {
    install_crypto();
    let double = double().await;
    let line = |content: &str| {
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": content}, "done": false}).to_string() + "\n"
    };
    let done = json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "eval_count": 3, "eval_duration": 1000}).to_string() + "\n";
    let body = (line("Hel") + &line("lo ") + &line("wörld") + &done).into_bytes();
    // Cut inside a line, between the two bytes of `ö`, and keep several lines in one piece.
    let o = body
        .windows(2)
        .position(|w| w == "ö".as_bytes())
        .expect("has ö");
    let pieces = [&body[..17], &body[17..o + 1], &body[o + 1..]];
    double.push_reply(Reply::raw(pieces));
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "Hello wörld");
    assert_eq!(usage(&events).completion_tokens, 3);
}

#[tokio::test]
async fn thinking_is_streamed_separately() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::ThinkingThenText {
        thinking: "The user greets me. I greet back.".into(),
        text: "Hi!".into(),
    });
    let mut req = request("qwen3:8b", "Hello");
    req.think = Some(true);
    let (events, error) = collect(&client(&double), req).await.expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(thinking(&events), "The user greets me. I greet back.");
    assert_eq!(content(&events), "Hi!");
    let first_content = events
        .iter()
        .position(|e| matches!(e, ChatEvent::Content(_)))
        .expect("content");
    let last_thinking = events
        .iter()
        .rposition(|e| matches!(e, ChatEvent::Thinking(_)))
        .expect("thinking");
    assert!(
        last_thinking < first_content,
        "thinking comes first: {events:?}"
    );
    assert_eq!(
        double.chat_requests()[0].json.as_ref().expect("json")["think"],
        true
    );

    // think: false is sent as such and the model does not think.
    double.push_reply(Reply::ThinkingThenText {
        thinking: "hidden".into(),
        text: "Hi again".into(),
    });
    let mut req = request("qwen3:8b", "Hello");
    req.think = Some(false);
    let (events, _) = collect(&client(&double), req).await.expect("chat starts");
    assert_eq!(thinking(&events), "");
    assert_eq!(content(&events), "Hi again");
    assert_eq!(
        double.chat_requests()[1].json.as_ref().expect("json")["think"],
        false
    );
}

#[tokio::test]
async fn tool_calls_round_trip_with_arguments_intact() {
    install_crypto();
    let double = double().await;
    let args = json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["likes \"math\"", "born 1815"]}], "nested": {"n": 1.5, "flag": true, "none": null}});
    double.push_reply(Reply::tool_call("memory__create_entities", args.clone()));
    double.push_reply(Reply::text("Saved Ada."));
    let client = client(&double);

    let mut req = request("llama3.2", "Remember Ada");
    req.tools = vec![memory_tool()];
    let (events, error) = collect(&client, req.clone()).await.expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    let calls: Vec<ToolCall> = events
        .iter()
        .find_map(|e| {
            if let ChatEvent::ToolCalls(c) = e {
                Some(c.clone())
            } else {
                None
            }
        })
        .expect("a ToolCalls event");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function.name, "memory__create_entities");
    assert_eq!(calls[0].function.arguments, args);
    usage(&events);

    let offered = &double.chat_requests()[0];
    assert_eq!(offered.tool_names(), vec!["memory__create_entities"]);
    assert_eq!(offered.tools[0]["type"], "function");
    assert_eq!(
        offered.tools[0]["function"]["parameters"],
        *memory_tool().parameters
    );

    // Second round: the assistant's call and the tool result go back; Ollama accepts them.
    let mut assistant = ChatMessage::assistant("");
    assistant.tool_calls = calls;
    req.messages.push(assistant);
    req.messages.push(ChatMessage::tool(
        "memory__create_entities",
        "[{\"name\":\"Ada\"}]",
    ));
    let (events, error) = collect(&client, req).await.expect("second round starts");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "Saved Ada.");
    let second = &double.chat_requests()[1];
    assert_eq!(second.status, 200);
    let sent = second.json.as_ref().expect("json");
    assert_eq!(
        sent["messages"][2]["tool_calls"][0]["function"]["arguments"],
        args
    );
    assert_eq!(sent["messages"][3]["role"], "tool");
    assert_eq!(sent["messages"][3]["tool_name"], "memory__create_entities");
    assert_eq!(second.tool_results().len(), 1);
}

/// Files 12b/12c: real tool calls carry an `id`; the result goes back with it as `tool_call_id`.
#[tokio::test]
async fn tool_call_ids_are_kept_and_echoed_on_the_result() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::raw([
        concat!(
            r#"{"model":"llama3.2","created_at":"2026-12-06T18:56:48.78602271Z","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_5vv8jqhf","function":{"index":0,"name":"memory__read_graph","arguments":{}}}]},"done":false}"#,
            "\n"
        ),
        concat!(
            r#"{"model":"llama3.2","created_at":"2026-12-06T18:56:53.564427897Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","total_duration":6507245478,"load_duration":199872036,"prompt_eval_count":154,"prompt_eval_duration":65172006,"eval_count":40,"eval_duration":6100448822}"#,
            "\n"
        ),
    ]));
    double.push_reply(Reply::text("The graph is empty."));
    let client = client(&double);
    let mut req = request("llama3.2", "read the graph");
    req.tools = vec![memory_tool()];
    let (events, error) = collect(&client, req.clone()).await.expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    let call = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::ToolCalls(c) => c.first().cloned(),
            _ => None,
        })
        .expect("a tool call");
    assert_eq!(call.id.as_deref(), Some("call_5vv8jqhf"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ChatEvent::Done { done_reason: Some(r), .. } if r == "length")),
        "done_reason is kept: {events:?}"
    );
    let mut assistant = ChatMessage::assistant("");
    assistant.tool_calls = vec![call.clone()];
    req.messages.push(assistant);
    req.messages.push(ChatMessage::tool_result(
        &call,
        r#"{"entities":[],"relations":[]}"#,
    ));
    let (_, error) = collect(&client, req).await.expect("second round");
    assert!(error.is_none(), "{error:?}");
    let sent = double.chat_requests()[1].json.clone().expect("json");
    assert_eq!(sent["messages"][3]["tool_call_id"], "call_5vv8jqhf");
    assert_eq!(sent["messages"][3]["tool_name"], "memory__read_graph");
    assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], "call_5vv8jqhf");
}

#[tokio::test]
async fn text_then_tool_calls() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::TextThenToolCalls(
        "Let me check.".into(),
        vec![
            ("memory__read_graph".into(), json!({})),
            ("fetch__fetch".into(), json!({"url": "http://127.0.0.1/"})),
        ],
    ));
    let mut req = request("llama3.2", "What do you know?");
    req.tools = vec![memory_tool()];
    let (events, error) = collect(&client(&double), req).await.expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "Let me check.");
    let Some(ChatEvent::ToolCalls(calls)) =
        events.iter().find(|e| matches!(e, ChatEvent::ToolCalls(_)))
    else {
        panic!("no tool calls: {events:?}")
    };
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].function.arguments,
        json!({"url": "http://127.0.0.1/"})
    );
}

#[tokio::test]
async fn unknown_model_is_model_not_found() {
    install_crypto();
    let double = double().await;
    let client = client(&double);
    let error = client
        .chat(request("mistral", "hi"))
        .await
        .err()
        .expect("fails");
    assert!(
        matches!(error, LlmError::ModelNotFound { ref model } if model == "mistral"),
        "{error:?}"
    );
    assert!(error.to_string().contains("ollama pull mistral"), "{error}");
    let error = client.show("mistral").await.expect_err("fails");
    assert!(matches!(error, LlmError::ModelNotFound { .. }), "{error:?}");
    assert_eq!(double.chat_requests().len(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn tools_to_a_model_without_tools_is_tools_unsupported() {
    install_crypto();
    let double = double().await;
    let mut req = request("tiny", "hi");
    req.tools = vec![memory_tool()];
    let error = client(&double).chat(req).await.err().expect("fails");
    assert!(
        matches!(error, LlmError::ToolsUnsupported { ref model } if model == "tiny"),
        "{error:?}"
    );
    assert_eq!(double.chat_requests().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn thinking_to_a_model_without_thinking_is_rejected_with_ollamas_message() {
    install_crypto();
    let double = double().await;
    let mut req = request("tiny", "hi");
    req.think = Some(true);
    let error = client(&double).chat(req).await.err().expect("fails");
    match error {
        LlmError::Rejected {
            status: 400,
            ref message,
        } => assert!(message.contains("does not support thinking"), "{message}"),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(double.chat_requests().len(), 1, "a 400 is not retried");
}

/// File 15 of the recordings: Ollama answers a mistyped option with 500, and the same request
/// can only fail the same way again.
#[tokio::test]
async fn an_error_body_that_names_a_bad_request_is_never_retried() {
    install_crypto();
    let double = double().await;
    for _ in 0..4 {
        double.push_reply(Reply::status(
            500,
            "option \"num_ctx\" must be of type integer",
        ));
    }
    let error = client(&double)
        .chat(request("llama3.2", "hi"))
        .await
        .err()
        .expect("fails");
    match &error {
        LlmError::Rejected {
            status: 500,
            message,
        } => {
            assert!(message.contains("must be of type integer"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error.to_string().contains("retrying cannot help"),
        "{error}"
    );
    assert_eq!(double.chat_requests().len(), 1, "not retried");
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    install_crypto();
    let double = double().await;
    double.fail_next(2, 500);
    double.push_reply(Reply::text("finally"));
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts after retries");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        content(&events),
        "finally",
        "no content from failed attempts"
    );
    let statuses: Vec<u16> = double.chat_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
}

#[tokio::test]
async fn rate_limited_is_retried() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::status(429, "too many requests"));
    double.push_reply(Reply::status(
        503,
        "server busy, please try again.  maximum pending requests exceeded",
    ));
    double.push_reply(Reply::text("ok now"));
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts after retries");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "ok now");
    let statuses: Vec<u16> = double.chat_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 503, 200]);
}

#[tokio::test]
async fn server_error_after_max_retries_fails() {
    install_crypto();
    let double = double().await;
    double.fail_next(100, 500);
    let error = client_for(&double.url(), 30, 2)
        .chat(request("llama3.2", "hi"))
        .await
        .err()
        .expect("fails");
    match error {
        LlmError::Server {
            status: 500,
            ref message,
        } => assert!(message.contains("injected failure"), "{message}"),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(
        double.chat_requests().len(),
        3,
        "one attempt plus max_retries = 2"
    );
}

#[tokio::test]
async fn no_retries_when_max_retries_is_zero() {
    install_crypto();
    let double = double().await;
    double.fail_next(1, 502);
    let error = client_for(&double.url(), 30, 0)
        .chat(request("llama3.2", "hi"))
        .await
        .err()
        .expect("fails");
    assert!(
        matches!(error, LlmError::Server { status: 502, .. }),
        "{error:?}"
    );
    assert_eq!(double.chat_requests().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_connect_after_retries() {
    install_crypto();
    let url = format!("http://127.0.0.1:{}", free_port());
    // No jitter: two retries sleep at least 50 + 100 ms, which shows that they happened.
    let client = client_for(&url, 30, 2).with_backoff(Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(1),
        jitter: 0.0,
    });
    let started = Instant::now();
    let error = client
        .chat(request("llama3.2", "hi"))
        .await
        .err()
        .expect("fails");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "retried with backoff before giving up"
    );
    match &error {
        LlmError::Connect { url: shown, reason } => {
            assert_eq!(shown, &url);
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error.to_string().contains("ollama serve"),
        "says what to do: {error}"
    );
    let error = client.list_models().await.expect_err("fails");
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn ollama_down_then_up_is_bridged_by_retries() {
    install_crypto();
    let mut double = double().await;
    let client = client_for(&double.url(), 60, 8).with_backoff(Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
        jitter: 0.2,
    });
    // Warm the connection pool, so that the retry also has to cope with a dead pooled connection.
    collect(&client, request("llama3.2", "first"))
        .await
        .expect("first turn");
    double.shutdown().await;
    let error = client_for(&double.url(), 30, 0)
        .chat(request("llama3.2", "down"))
        .await
        .err()
        .expect("down");
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");

    let (events_tx, events_rx) = tokio::sync::oneshot::channel();
    let waiting = client.clone();
    tokio::spawn(async move {
        let _ = events_tx.send(collect(&waiting, request("llama3.2", "are you back?")).await);
    });
    // Backoff with 8 retries spans several seconds; restart well inside it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    double.restart().await.expect("restart on the same port");
    let (events, error) = events_rx
        .await
        .expect("task ran")
        .expect("chat starts once Ollama is back");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "echo: are you back?");
}

#[tokio::test]
async fn error_mid_stream_is_a_stream_error_and_not_retried() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::ErrorMidStream {
        after_chunks: 3,
        message: "llama runner process has terminated: signal: killed".into(),
    });
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts");
    assert_eq!(
        events.len(),
        3,
        "the content before the error is delivered: {events:?}"
    );
    match error {
        Some(LlmError::Stream { message }) => assert!(
            message.contains("runner process has terminated"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        double.chat_requests().len(),
        1,
        "never retried after content streamed"
    );
}

#[tokio::test]
async fn malformed_ndjson_is_a_protocol_error() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::raw([
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": "ok"}, "done": false}).to_string() + "\n",
        "{\"model\": \"llama3.2\", \"message\": <html>oops</html>\n".into(),
    ]));
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts");
    assert_eq!(content(&events), "ok");
    match error {
        Some(LlmError::Protocol { detail }) => assert!(
            detail.contains("<html>oops"),
            "excerpt of the bad line: {detail}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(double.chat_requests().len(), 1);
}

#[tokio::test]
async fn a_broken_connection_says_so_and_is_not_retried() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::DropMidStream { after_chunks: 2 });
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts");
    assert_eq!(events.len(), 2, "{events:?}");
    match &error {
        Some(e @ LlmError::Broken { .. }) => {
            let text = e.to_string();
            assert!(text.contains("connection to Ollama broke"), "{text}");
            assert!(
                !text.contains("not valid"),
                "not blamed on Ollama's output: {text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(double.chat_requests().len(), 1);

    // A body that ends cleanly but without `done` is the same error.
    double.push_reply(Reply::raw([
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": "partial"}, "done": false}).to_string() + "\n",
    ]));
    let (_, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts");
    assert!(
        matches!(error, Some(LlmError::Protocol { ref detail }) if detail.contains("ended early")),
        "{error:?}"
    );
}

#[tokio::test]
async fn hanging_server_times_out() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::Hang);
    let started = Instant::now();
    let error = client_for(&double.url(), 1, 3)
        .chat(request("llama3.2", "hi"))
        .await
        .err()
        .expect("times out");
    assert!(
        matches!(error, LlmError::Timeout { after } if after == Duration::from_secs(1)),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up within the configured timeout"
    );
    assert_eq!(double.chat_requests().len(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn slow_stream_times_out_mid_stream() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::Slow {
        per_chunk: Duration::from_millis(400),
        text: "one two three four five six seven eight".into(),
    });
    let (events, error) = collect(&client_for(&double.url(), 1, 3), request("llama3.2", "hi"))
        .await
        .expect("headers arrive at once");
    assert!(
        matches!(error, Some(LlmError::Timeout { .. })),
        "{error:?} after {events:?}"
    );
    assert!(content(&events).len() < "one two three four five six seven eight".len());
}

#[tokio::test]
async fn slow_stream_within_timeout_completes() {
    install_crypto();
    let double = double().await;
    double.push_reply(Reply::Slow {
        per_chunk: Duration::from_millis(20),
        text: "slow but steady".into(),
    });
    let (events, error) = collect(&client(&double), request("llama3.2", "hi"))
        .await
        .expect("chat starts");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(content(&events), "slow but steady");
}

#[tokio::test]
async fn list_models_and_show() {
    install_crypto();
    let double = double().await;
    let client = client(&double);
    let models = client.list_models().await.expect("tags");
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["llama3.2:latest", "tiny:latest", "qwen3:8b"]);
    assert_eq!(models[0].parameter_size.as_deref(), Some("3.2B"));
    assert!(models[0].size > 0);

    let qwen = client.show("qwen3:8b").await.expect("show");
    assert_eq!(qwen.name, "qwen3:8b");
    assert_eq!(qwen.context_length, Some(40_960));
    assert!(qwen.supports("tools") && qwen.supports("thinking"));
    let tiny = client.show("tiny").await.expect("show tiny");
    assert!(!tiny.supports("tools"));
    assert_eq!(tiny.context_length, Some(131_072));
    let seen = double.requests();
    let show = seen
        .iter()
        .find(|r| r.path == "/api/show")
        .expect("show request");
    assert_eq!(show.json.as_ref().expect("json")["model"], "qwen3:8b");
}

#[tokio::test]
async fn metrics_are_recorded_by_the_stream() {
    install_crypto();
    let double = OllamaDouble::builder()
        .model("metrics-probe", &["completion"])
        .start()
        .await
        .expect("double");
    let client = client(&double);
    collect(&client, request("metrics-probe", "count me"))
        .await
        .expect("ok turn");
    double.push_reply(Reply::DropMidStream { after_chunks: 1 });
    collect(&client, request("metrics-probe", "break"))
        .await
        .expect("starts");
    // A stream dropped by the caller before `done` counts as cancelled.
    double.push_reply(Reply::Slow {
        per_chunk: Duration::from_millis(50),
        text: "a b c d e f".into(),
    });
    let mut stream = client
        .chat(request("metrics-probe", "cancel me"))
        .await
        .expect("starts");
    let _ = stream.next().await;
    drop(stream);

    let text = ollama_mcp_bot::metrics::metrics().encode();
    for expected in [
        "ollama_mcp_bot_model_requests_total{model=\"metrics-probe\",outcome=\"ok\"} 1",
        "ollama_mcp_bot_model_requests_total{model=\"metrics-probe\",outcome=\"broken\"} 1",
        "ollama_mcp_bot_model_requests_total{model=\"metrics-probe\",outcome=\"cancelled\"} 1",
        "ollama_mcp_bot_model_request_duration_seconds_count{model=\"metrics-probe\"} 3",
        "ollama_mcp_bot_time_to_first_token_seconds_count{model=\"metrics-probe\"} 3",
        "ollama_mcp_bot_tokens_per_second_count{model=\"metrics-probe\"} 1",
        "ollama_mcp_bot_completion_tokens_total{model=\"metrics-probe\"} 4",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    assert!(
        text.contains("ollama_mcp_bot_prompt_tokens_total{model=\"metrics-probe\"}"),
        "{text}"
    );
}

// ---- The double itself rejects what Ollama rejects ----

async fn post_raw(double: &OllamaDouble, path: &str, body: &str) -> (u16, Value) {
    install_crypto();
    let response = reqwest::Client::new()
        .post(format!("{}{path}", double.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("double answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn double_rejects_what_ollama_rejects() {
    let double = double().await;
    let cases: Vec<(&str, u16, &str)> = vec![
        ("", 400, "missing request body"),
        ("{not json", 400, "invalid character"),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            400,
            "model is required",
        ),
        (r#"{"model": "", "messages": []}"#, 400, "model is required"),
        (
            r#"{"model": 5}"#,
            400,
            "json: cannot unmarshal number into Go struct field ChatRequest.model of type string",
        ),
        // Texts as Ollama 0.24 wrote them (../shared/ollama-0.24, files 13, 20b); an unknown role
        // is accepted there (file 20c), see tests/tests/ollama_conformance.rs.
        (
            r#"{"model": "nope", "messages": []}"#,
            404,
            "model 'nope' not found",
        ),
        (
            r#"{"model": "llama3.2", "messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "x", "arguments": "{\"a\": 1}"}}]}]}"#,
            400,
            "Value looks like object, but can't find closing '}' symbol",
        ),
        (
            r#"{"model": "tiny", "messages": [], "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}]}"#,
            400,
            "registry.ollama.ai/library/tiny:latest does not support tools",
        ),
        (
            r#"{"model": "tiny", "messages": [], "think": true}"#,
            400,
            "\"tiny\" does not support thinking",
        ),
        (
            r#"{"model": "llama3.2", "messages": "hi"}"#,
            400,
            "cannot unmarshal string into Go struct field ChatRequest.messages",
        ),
    ];
    for (body, status, message) in cases {
        let (got_status, got) = post_raw(&double, "/api/chat", body).await;
        assert_eq!(got_status, status, "{body} → {got}");
        let error = got["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}: no error field in {got}"));
        assert!(
            error.contains(message),
            "{body}: `{error}` should contain `{message}`"
        );
    }
    assert!(
        double.chat_requests().iter().all(|r| r.status >= 400),
        "every bad request recorded with its status"
    );

    // Wrong method.
    let response = reqwest::Client::new()
        .get(format!("{}/api/chat", double.url()))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 405);
    let (status, _) = post_raw(&double, "/api/tags", "{}").await;
    assert_eq!(status, 405);
    let (status, _) = post_raw(&double, "/api/nothing", "{}").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn double_accepts_what_ollama_accepts() {
    let double = double().await;
    // Unknown fields are ignored (Go), think false is fine for any model, stream false answers once.
    let (status, got) = post_raw(
        &double,
        "/api/chat",
        r#"{"model": "tiny:latest", "stream": false, "think": false, "format": "", "keep_alive": "5m", "brand_new_field": [1],
            "messages": [{"role": "user", "content": "plain please", "images": null}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["done"], true);
    assert_eq!(got["message"]["content"], "echo: plain please");
    assert_eq!(got["message"]["role"], "assistant");
    assert!(got["prompt_eval_count"].as_u64().expect("count") > 0);
    assert!(got["eval_count"].as_u64().expect("count") > 0);

    install_crypto();
    let http = reqwest::Client::new();
    let root = http.get(double.url()).send().await.expect("root");
    assert_eq!(root.text().await.expect("text"), "Ollama is running");
    let version: Value = http
        .get(format!("{}/api/version", double.url()))
        .send()
        .await
        .expect("v")
        .json()
        .await
        .expect("json");
    assert!(version["version"].as_str().is_some());
    let (status, show) = post_raw(&double, "/api/show", r#"{"model": "llama3.2"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(show["model_info"]["llama.context_length"], 131_072);
    let (status, show) = post_raw(&double, "/api/show", r#"{"model": "absent"}"#).await;
    assert_eq!(status, 404, "{show}");
}

#[tokio::test]
async fn responder_sees_the_request() {
    install_crypto();
    let double = OllamaDouble::builder()
        .model("llama3.2", &["completion", "tools"])
        .responder(|seen| {
            if seen.tool_results().is_empty() {
                Reply::tool_call("memory__read_graph", json!({}))
            } else {
                Reply::text(format!("tool said {}", seen.tool_results()[0].content))
            }
        })
        .start()
        .await
        .expect("double");
    let client = client(&double);
    let mut req = request("llama3.2", "what do you remember?");
    req.tools = vec![memory_tool()];
    let (events, _) = collect(&client, req.clone()).await.expect("round 1");
    assert!(events.iter().any(|e| matches!(e, ChatEvent::ToolCalls(_))));
    let mut assistant = ChatMessage::assistant("");
    assistant.tool_calls = vec![ToolCall::new("memory__read_graph", json!({}))];
    req.messages.push(assistant);
    req.messages
        .push(ChatMessage::tool("memory__read_graph", "{\"entities\":[]}"));
    let (events, _) = collect(&client, req).await.expect("round 2");
    assert_eq!(content(&events), "tool said {\"entities\":[]}");
}
