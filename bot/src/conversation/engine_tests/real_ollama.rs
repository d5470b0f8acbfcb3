//! What a real Ollama 0.24 does (issue 9), and prompts that keep its cache warm.

use super::*;

// ---- Issue 9: what real Ollama 0.24 does ----

#[tokio::test]
async fn model_override_is_the_model_of_every_request() {
    let model = ScriptedModel::new(vec![text("a"), text("b")]);
    let e = engine(
        model.clone(),
        Arc::new(KvTools::default()),
        BotConfig::default(),
    );
    e.set_session_model("s", "llama3.2").await.expect("switch");
    for _ in 0..2 {
        let r = e
            .turn(
                TurnRequest {
                    model_override: Some("qwen3".into()),
                    ..TurnRequest::new("s", "hi")
                },
                &Silent,
            )
            .await
            .expect("turn");
        assert_eq!(r.model, "qwen3");
    }
    let sent: Vec<String> = model.requests().iter().map(|r| r.model.clone()).collect();
    assert_eq!(
        sent,
        ["qwen3", "qwen3"],
        "`chat --model` wins for every turn"
    );
}

#[tokio::test]
async fn think_is_sent_only_to_models_that_can_think_and_said_once() {
    let mut config = BotConfig::default();
    config.ollama.think = true;
    let model = ScriptedModel::with_models(
        vec![text("a"), text("b"), text("c")],
        &[
            details("gemma", &["completion", "tools"]),
            details("qwen3", &["completion", "tools", "thinking"]),
        ],
    );
    let e = engine(model.clone(), Arc::new(KvTools::default()), config);
    let turn = |m: &str| TurnRequest {
        model_override: Some(m.into()),
        ..TurnRequest::new("s", "hi")
    };
    let first = e.turn(turn("gemma"), &Silent).await.expect("turn 1");
    let second = e.turn(turn("gemma"), &Silent).await.expect("turn 2");
    e.turn(turn("qwen3"), &Silent).await.expect("turn 3");
    let think: Vec<Option<bool>> = model.requests().iter().map(|r| r.think).collect();
    assert_eq!(think, [Some(false), Some(false), Some(true)]);
    assert_eq!(
        first.notices,
        [Notice::CannotThink {
            model: "gemma".into()
        }]
    );
    assert!(second.notices.is_empty(), "said once: {:?}", second.notices);
    assert!(
        first.notices[0].to_string().contains("cannot think"),
        "{}",
        first.notices[0]
    );
    assert_eq!(
        model.shows.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "capabilities are asked once per model"
    );
}

#[tokio::test]
async fn a_reply_cut_by_length_says_so_and_why() {
    let mut config = BotConfig::default();
    config.ollama.options.insert("num_predict".into(), 8.into());
    let model = ScriptedModel::new(vec![
        vec![
            ChatEvent::Content("The answer is".into()),
            done_with(50, 8, "length"),
        ],
        vec![
            ChatEvent::Content("Complete.".into()),
            done_with(50, 3, "stop"),
        ],
    ]);
    let e = engine(model, Arc::new(KvTools::default()), config);
    let r = e
        .turn(TurnRequest::new("s", "q"), &Silent)
        .await
        .expect("turn");
    assert_eq!(r.cut, Some(Cut::NumPredict { limit: 8 }));
    assert_eq!(r.notices, [Notice::ReplyCut(Cut::NumPredict { limit: 8 })]);
    assert!(
        r.notices[0].to_string().contains("num_predict"),
        "{}",
        r.notices[0]
    );
    let r = e
        .turn(TurnRequest::new("s", "q2"), &Silent)
        .await
        .expect("turn");
    assert_eq!((r.cut, r.notices.len()), (None, 0));
}

#[tokio::test]
async fn an_empty_reply_is_a_failed_turn_and_never_stored() {
    // File 12d: tools offered, the reply cut while it looked like a tool call: only `done`.
    let model = ScriptedModel::new(vec![
        vec![
            ChatEvent::Content(String::new()),
            done_with(159, 8, "length"),
        ],
        vec![done_with(20, 1, "stop")],
    ]);
    let e = engine(model, Arc::new(KvTools::default()), BotConfig::default());
    for expected in ["cut", "no text"] {
        let err = e
            .turn(TurnRequest::new("s", "hello"), &Silent)
            .await
            .expect_err("empty");
        assert!(matches!(err, TurnError::EmptyReply { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
        assert!(err.to_string().contains("empty answer"), "{err}");
    }
    assert!(e.store().history("s").await.expect("history").is_empty());
}

#[tokio::test]
async fn a_model_without_tools_chats_without_them_and_says_which_models_can() {
    let model = ScriptedModel::with_models(
        vec![text("a"), text("b")],
        &[
            details("llama3.2:latest", &["completion", "tools"]),
            details("qwen3:latest", &["completion"]),
        ],
    );
    let e = engine(
        model.clone(),
        Arc::new(KvTools::default()),
        BotConfig::default(),
    );
    let turn = || TurnRequest {
        model_override: Some("qwen3:latest".into()),
        ..TurnRequest::new("s", "hi")
    };
    let first = e.turn(turn(), &Silent).await.expect("turn 1");
    let second = e.turn(turn(), &Silent).await.expect("turn 2");
    assert!(model.requests().iter().all(|r| r.tools.is_empty()));
    assert_eq!(
        first.notices,
        [Notice::NoTools {
            model: "qwen3:latest".into(),
            capable: vec!["llama3.2:latest".into()],
        }]
    );
    assert!(second.notices.is_empty());
}

#[tokio::test]
async fn tool_results_echo_the_call_id() {
    let mut call = ToolCall::new("kv__put", json!({"key": "a"}));
    call.id = Some("call_5vv8jqhf".into());
    let model = ScriptedModel::new(vec![
        vec![ChatEvent::ToolCalls(vec![call]), done()],
        text("ok"),
    ]);
    let e = engine(
        model.clone(),
        Arc::new(KvTools::default()),
        BotConfig::default(),
    );
    e.turn(TurnRequest::new("s", "put a"), &Silent)
        .await
        .expect("turn");
    let result = model.requests()[1].messages.last().cloned().expect("msg");
    assert_eq!(result.role, Role::Tool);
    assert_eq!(result.tool_call_id.as_deref(), Some("call_5vv8jqhf"));
}

/// Estimated prompt tokens of a request at four characters a token (what the scripted model's
/// engine assumes), with the template overhead of each message.
fn estimated_tokens(r: &ChatRequest) -> usize {
    (r.messages.iter().map(message_chars).sum::<usize>()
        + r.tools.iter().map(tool_chars).sum::<usize>())
        / 4
        + 4 * r.messages.len()
}

#[tokio::test]
async fn the_current_turn_is_fitted_to_the_window() {
    let mut config = BotConfig::default();
    config.ollama.options.insert("num_ctx".into(), 4096.into());
    let tools = Arc::new(KvTools::default());
    tools
        .data
        .lock()
        .expect("lock")
        .insert("big".into(), "z".repeat(16_000));
    // Seven rounds of 16,000-character results, then the answer: eight requests.
    let mut script: Vec<Vec<ChatEvent>> = (0..7)
        .map(|_| calls(&[("kv__get", json!({"key": "big"}))]))
        .collect();
    script.push(text("done"));
    let model = ScriptedModel::new(script);
    let e = engine(model.clone(), tools, config.clone());
    e.turn(TurnRequest::new("s", "read big eight times"), &Silent)
        .await
        .expect("turn");
    let requests = model.requests();
    assert_eq!(requests.len(), 8);
    for (i, r) in requests.iter().enumerate() {
        assert!(
            estimated_tokens(r) <= 4096 - 1024,
            "request {i}: about {} tokens",
            estimated_tokens(r)
        );
    }
    // Earlier results were shortened first; the latest keeps the most of what is left.
    let results: Vec<usize> = requests[7]
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.content.len())
        .collect();
    assert_eq!(results.len(), 7);
    let latest = results[6];
    assert!(
        results[..6].iter().all(|&r| r < 600) && latest > 2_000,
        "{results:?}"
    );

    // A message that cannot fit on its own is refused before anything is sent.
    let model = ScriptedModel::new(vec![text("never")]);
    let e = engine(model.clone(), Arc::new(KvTools::default()), config);
    let err = e
        .turn(TurnRequest::new("s", "w ".repeat(20_000)), &Silent)
        .await
        .expect_err("too long");
    assert!(matches!(err, TurnError::MessageTooLong { .. }), "{err:?}");
    assert!(err.to_string().contains("shorten the message"), "{err}");
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn a_truncated_prompt_teaches_no_ratio() {
    let mut config = BotConfig::default();
    config.ollama.options.insert("num_ctx".into(), 512.into());
    // Ollama cut the prompt to num_ctx: prompt_eval_count == 512 says nothing about our chars.
    let model = ScriptedModel::new(vec![vec![
        ChatEvent::Content("ok".into()),
        done_with(512, 2, "stop"),
    ]]);
    let e = engine(model, Arc::new(KvTools::default()), config);
    e.turn(TurnRequest::new("s", "a ".repeat(100)), &Silent)
        .await
        .expect("turn");
    assert_eq!(e.tokens_per_char("llama3.2"), 0.25);
}

#[tokio::test]
async fn the_window_is_what_the_model_really_gets() {
    let long = "word ".repeat(400);
    let run = |options: Vec<(&'static str, Value)>, show: ModelDetails| {
        let long = long.clone();
        async move {
            let mut config = BotConfig::default();
            config.chat.tool_loading = ToolLoading::All;
            config.ollama.options = options
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let model = ScriptedModel::with_models((0..12).map(|_| text(&long)).collect(), &[show]);
            let e = engine(model.clone(), Arc::new(KvTools::default()), config);
            for i in 0..12 {
                e.turn(TurnRequest::new("s", format!("{i} {long}")), &Silent)
                    .await
                    .expect("turn");
            }
            model
                .requests()
                .iter()
                .map(estimated_tokens)
                .max()
                .unwrap_or(0)
        }
    };
    // Not configured: the model's own num_ctx (its Modelfile's parameters).
    let mut show = details("llama3.2", &["completion", "tools"]);
    show.num_ctx = Some(4096);
    let most = run(vec![], show.clone()).await;
    assert!(most <= 4096 - 1024, "about {most} tokens");
    // Configured above the model's context length: capped at it (Ollama does so silently).
    show.num_ctx = None;
    show.context_length = Some(4096);
    let most = run(vec![("num_ctx", json!(2_000_000))], show).await;
    assert!(most <= 4096 - 1024, "about {most} tokens");
}

// ---- Issue 9: prompts that keep Ollama's cache warm ----

#[tokio::test]
async fn the_tool_list_is_stable_within_a_session() {
    /// Counts 0.6 tokens a character (JSON-heavy prompts do), so calibration moves.
    struct Dense(Mutex<Vec<ChatRequest>>);
    #[async_trait::async_trait]
    impl ChatModel for Dense {
        async fn chat(&self, r: ChatRequest) -> Result<ChatStream, LlmError> {
            let chars = r.messages.iter().map(message_chars).sum::<usize>()
                + r.tools.iter().map(tool_chars).sum::<usize>();
            self.0.lock().expect("lock").push(r);
            let usage = Usage {
                prompt_tokens: u32::try_from(chars * 6 / 10).unwrap_or(u32::MAX),
                completion_tokens: 1,
                ..Usage::default()
            };
            Ok(Box::pin(futures::stream::iter(vec![
                Ok(ChatEvent::Content("ok".into())),
                Ok(ChatEvent::Done {
                    usage,
                    done_reason: Some("stop".into()),
                }),
            ])))
        }
        async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError> {
            Ok(vec![])
        }
        async fn show(&self, m: &str) -> Result<ModelDetails, LlmError> {
            Ok(details(m, &["tools"]))
        }
    }
    let mut config = BotConfig::default();
    config.ollama.options.insert("num_ctx".into(), 512.into());
    config.chat.tool_context_share = 0.25;
    let model = Arc::new(Dense(Mutex::new(Vec::new())));
    let tools = Arc::new(KvTools::default());
    let all: usize = tools.tools().iter().map(tool_chars).sum();
    assert!(
        (all as f64 * 0.25) < 128.0 && (all as f64 * 0.6) > 128.0,
        "the tools fit at the first guess and not at the learned ratio: {all} chars"
    );
    let e = Engine::new(
        model.clone(),
        tools,
        Store::open(":memory:").expect("store"),
        &config,
    );
    for i in 0..4 {
        e.turn(TurnRequest::new("s", format!("message {i}")), &Silent)
            .await
            .expect("turn");
    }
    let requests = model.0.lock().expect("lock").clone();
    assert!(e.tokens_per_char("llama3.2") > 0.4, "calibration moved");
    for r in &requests {
        assert_eq!(names(r), names(&requests[0]), "the tool list never changes");
    }
}

#[tokio::test]
async fn history_is_append_only_between_compactions() {
    let mut config = BotConfig::default();
    config.chat.history_token_budget = 1000;
    let model = ScriptedModel::new(
        (0..40)
            .map(|i| text(&format!("reply {i} {}", "r".repeat(200))))
            .collect(),
    );
    let e = engine(model.clone(), Arc::new(KvTools::default()), config);
    for i in 0..40 {
        e.turn(
            TurnRequest::new("s", format!("message {i} {}", "m".repeat(200))),
            &Silent,
        )
        .await
        .expect("turn");
    }
    let requests = model.requests();
    // A request extends the previous one (its messages are a prefix) unless history was compacted.
    let breaks = requests
        .windows(2)
        .filter(|w| !w[1].messages.starts_with(&w[0].messages))
        .count();
    assert!(breaks >= 1, "history did fill the budget");
    assert!(
        breaks <= 40 / 4,
        "{breaks} of 40 requests moved the prompt's start"
    );
    let last = requests.last().expect("requests");
    assert!(
        last.messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count()
            > 2,
        "earlier turns are still sent"
    );
}

/// A server whose `/api/show` lists no capabilities (before Ollama 0.6) is trusted with tools;
/// when Ollama then refuses them, that turn fails with the reason and the next ones go without.
#[tokio::test]
async fn tools_refused_by_a_server_that_did_not_say_are_not_offered_again() {
    struct Old(Mutex<Vec<ChatRequest>>);
    #[async_trait::async_trait]
    impl ChatModel for Old {
        async fn chat(&self, r: ChatRequest) -> Result<ChatStream, LlmError> {
            let with_tools = !r.tools.is_empty();
            let model = r.model.clone();
            self.0.lock().expect("lock").push(r);
            if with_tools {
                return Err(LlmError::ToolsUnsupported { model });
            }
            Ok(Box::pin(futures::stream::iter(
                text("fine").into_iter().map(Ok),
            )))
        }
        async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError> {
            Ok(vec![])
        }
        async fn show(&self, m: &str) -> Result<ModelDetails, LlmError> {
            Ok(details(m, &[]))
        }
    }
    let model = Arc::new(Old(Mutex::new(Vec::new())));
    let e = Engine::new(
        model.clone(),
        Arc::new(KvTools::default()),
        Store::open(":memory:").expect("store"),
        &BotConfig::default(),
    );
    let err = e
        .turn(TurnRequest::new("s", "one"), &Silent)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("does not support tools"), "{err}");
    let r = e
        .turn(TurnRequest::new("s", "two"), &Silent)
        .await
        .expect("turn 2");
    assert_eq!(r.reply, "fine");
    assert!(
        matches!(&r.notices[..], [Notice::NoTools { .. }]),
        "{:?}",
        r.notices
    );
    assert_eq!(model.0.lock().expect("lock").len(), 2);
}
