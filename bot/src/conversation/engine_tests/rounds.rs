//! The loop: tool rounds, approvals, held text, sessions, calibration, tools on demand.

use super::*;

#[tokio::test]
async fn tool_round_then_answer_is_persisted() {
    let model = ScriptedModel::new(vec![
        calls(&[("kv__put", json!({"key": "a"}))]),
        text("Stored a."),
    ]);
    let tools = Arc::new(KvTools::default());
    let e = engine(model.clone(), tools.clone(), BotConfig::default());
    let obs = Recorder::default();
    let r = e
        .turn(TurnRequest::new("s", "store a"), &obs)
        .await
        .expect("turn");
    assert_eq!(r.reply, "Stored a.");
    assert_eq!((r.rounds, r.tool_calls), (2, 1));
    assert_eq!(r.usage.prompt_tokens, 200, "usage summed over rounds");
    assert_eq!(*obs.text.lock().expect("lock"), "Stored a.");
    // The second request carries the tool result as a `tool` message named like the call.
    let second = &model.requests()[1];
    let tool_msg = second.messages.last().expect("messages");
    assert_eq!(
        (tool_msg.role, tool_msg.content.as_str()),
        (Role::Tool, "put a")
    );
    assert_eq!(tool_msg.tool_name.as_deref(), Some("kv__put"));
    assert_eq!(second.think, Some(false), "think: false unless configured");
    // user, assistant(tool_calls), tool, assistant
    assert_eq!(e.store().history("s").await.expect("history").len(), 4);
    // The next turn sends that history.
    e.turn(TurnRequest::new("s", "and now?"), &Silent)
        .await
        .expect("turn 2");
    assert_eq!(model.requests()[2].messages.len(), 1 + 4 + 1);
}

#[tokio::test]
async fn several_calls_in_one_round_run_concurrently() {
    let model = ScriptedModel::new(vec![
        calls(&[
            ("kv__slow", json!({"key": "1"})),
            ("kv__slow", json!({"key": "2"})),
            ("kv__slow", json!({"key": "3"})),
        ]),
        text("ok"),
    ]);
    let tools = Arc::new(KvTools::default());
    let e = engine(model.clone(), tools.clone(), BotConfig::default());
    e.turn(TurnRequest::new("s", "go"), &Silent)
        .await
        .expect("turn");
    assert_eq!(
        tools
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        3,
        "all three calls were in flight at once"
    );
    let results: Vec<_> = model.requests()[1]
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.content.clone())
        .collect();
    assert_eq!(
        results,
        ["slow 1", "slow 2", "slow 3"],
        "results in the order of the calls"
    );
}

#[tokio::test]
async fn round_limit_stops_and_says_so() {
    let mut config = BotConfig::default();
    config.chat.max_tool_rounds = 2;
    let model = ScriptedModel::new(
        (0..5)
            .map(|_| calls(&[("kv__get", json!({"key": "x"}))]))
            .collect(),
    );
    let e = engine(model.clone(), Arc::new(KvTools::default()), config);
    let r = e
        .turn(TurnRequest::new("s", "loop"), &Silent)
        .await
        .expect("turn");
    assert!(r.hit_round_limit);
    assert!(r.reply.contains("stopped after 2 rounds"), "{}", r.reply);
    assert_eq!(model.requests().len(), 2);
    let history = e.store().history("s").await.expect("history");
    assert_eq!(
        history.last().map(|m| m.message.role),
        Some(Role::Assistant)
    );
}

#[tokio::test]
async fn json_written_as_text_is_run_as_a_call_and_not_shown() {
    let model = ScriptedModel::new(vec![
        vec![
            ChatEvent::Content("{\"name\": \"kv__get\", ".into()),
            ChatEvent::Content("\"arguments\": {\"key\": \"k\"}}".into()),
            done(),
        ],
        text("The value is missing."),
    ]);
    let tools = Arc::new(KvTools::default());
    let e = engine(model, tools.clone(), BotConfig::default());
    let obs = Recorder::default();
    e.turn(TurnRequest::new("s", "get k"), &obs)
        .await
        .expect("turn");
    assert_eq!(*tools.calls.lock().expect("lock"), ["kv__get"]);
    assert_eq!(
        *obs.text.lock().expect("lock"),
        "The value is missing.",
        "the JSON never reached the user"
    );
}

#[tokio::test]
async fn held_text_that_is_not_a_call_is_shown() {
    let model = ScriptedModel::new(vec![vec![
        ChatEvent::Content("{not json".into()),
        ChatEvent::Content(" at all".into()),
        done(),
    ]]);
    let e = engine(model, Arc::new(KvTools::default()), BotConfig::default());
    let obs = Recorder::default();
    let r = e
        .turn(TurnRequest::new("s", "x"), &obs)
        .await
        .expect("turn");
    assert_eq!(r.reply, "{not json at all");
    assert_eq!(*obs.text.lock().expect("lock"), "{not json at all");
}

#[tokio::test]
async fn refused_approval_and_filtered_tools_are_not_run() {
    let model = ScriptedModel::new(vec![
        calls(&[("kv__guarded", json!({})), ("kv__put", json!({"key": "z"}))]),
        text("done"),
    ]);
    let tools = Arc::new(KvTools::default());
    let e = engine(model.clone(), tools.clone(), BotConfig::default());
    let mut request = TurnRequest::new("s", "try");
    request.tool_filter = Some(Arc::new(|name: &str| name != "kv__put"));
    e.turn(
        request,
        &Recorder {
            approve: false,
            ..Recorder::default()
        },
    )
    .await
    .expect("turn");
    assert!(tools.calls.lock().expect("lock").is_empty(), "nothing ran");
    let req = &model.requests()[1];
    let results: Vec<_> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.content.clone())
        .collect();
    assert!(results[0].contains("did not approve"), "{results:?}");
    assert!(results[1].contains("not available to you"), "{results:?}");
    assert!(
        !model.requests()[0]
            .tools
            .iter()
            .any(|t| t.name == "kv__put"),
        "filtered tools are not offered"
    );
}

#[tokio::test]
async fn failed_turn_stores_nothing_and_session_stays_usable() {
    struct Down;
    #[async_trait::async_trait]
    impl ChatModel for Down {
        async fn chat(&self, _r: ChatRequest) -> Result<ChatStream, LlmError> {
            Err(LlmError::Connect {
                url: "http://127.0.0.1:1".into(),
                reason: "refused".into(),
            })
        }
        async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError> {
            Ok(vec![])
        }
        async fn show(&self, _m: &str) -> Result<ModelDetails, LlmError> {
            Ok(ModelDetails::default())
        }
    }
    let store = Store::open(":memory:").expect("store");
    let e = Engine::new(
        Arc::new(Down),
        Arc::new(KvTools::default()),
        store.clone(),
        &BotConfig::default(),
    );
    let err = e
        .turn(TurnRequest::new("s", "hi"), &Silent)
        .await
        .expect_err("down");
    assert!(err.to_string().contains("cannot reach Ollama"), "{err}");
    assert!(store.history("s").await.expect("history").is_empty());
    assert!(matches!(
        e.turn(TurnRequest::new("s", "  "), &Silent).await,
        Err(TurnError::EmptyMessage)
    ));
}

#[tokio::test]
async fn session_model_choice_is_checked_and_persisted() {
    let mut config = BotConfig::default();
    config.ollama.models = vec!["llama3.2".into(), "qwen3".into(), "mistral".into()];
    let model = ScriptedModel::new(vec![text("a")]);
    let e = engine(model.clone(), Arc::new(KvTools::default()), config);
    assert!(matches!(
        e.set_session_model("s", "gpt-4").await,
        Err(TurnError::ModelNotAllowed { .. })
    ));
    let missing = e
        .set_session_model("s", "mistral")
        .await
        .expect_err("not on server");
    assert!(
        missing.to_string().contains("ollama pull mistral"),
        "{missing}"
    );
    e.set_session_model("s", "qwen3").await.expect("switch");
    assert_eq!(
        e.available_models().await.expect("models"),
        ["llama3.2", "qwen3"]
    );
    e.turn(
        TurnRequest {
            model: Some("llama3.2".into()),
            ..TurnRequest::new("s", "hi")
        },
        &Silent,
    )
    .await
    .expect("turn");
    assert_eq!(
        model.requests()[0].model,
        "qwen3",
        "the session's own choice wins over a place default"
    );
}

/// Ollama's `prompt_eval_count` covers the offered tools as well as the messages; the learned
/// tokens-per-character ratio must not charge the tools' share to the messages (it would make
/// history look several times its real size and trim it far too early).
#[tokio::test]
async fn calibration_counts_the_offered_tools() {
    /// Reports one prompt token per 4 characters of everything in the request, tools included.
    struct Counting;
    #[async_trait::async_trait]
    impl ChatModel for Counting {
        async fn chat(&self, r: ChatRequest) -> Result<ChatStream, LlmError> {
            let messages: usize = r.messages.iter().map(|m| m.content.len()).sum();
            let tools: usize = r
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
                .sum();
            let usage = Usage {
                prompt_tokens: u32::try_from((messages + tools) / 4).unwrap_or(u32::MAX),
                completion_tokens: 1,
                ..Usage::default()
            };
            let events = vec![
                Ok(ChatEvent::Content("ok".into())),
                Ok(ChatEvent::Done {
                    usage,
                    done_reason: None,
                }),
            ];
            Ok(Box::pin(futures::stream::iter(events)))
        }
        async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError> {
            Ok(vec![])
        }
        async fn show(&self, _m: &str) -> Result<ModelDetails, LlmError> {
            Ok(ModelDetails::default())
        }
    }
    let e = Engine::new(
        Arc::new(Counting),
        Arc::new(KvTools::default()),
        Store::open(":memory:").expect("store"),
        &BotConfig::default(),
    );
    e.turn(TurnRequest::new("s", "a".repeat(200)), &Silent)
        .await
        .expect("turn");
    let ratio = e.tokens_per_char("llama3.2");
    assert!(
        (0.2..=0.3).contains(&ratio),
        "learned {ratio} tokens per character; the model counts 0.25"
    );
}

#[tokio::test]
async fn on_demand_tools_are_found_then_offered_while_in_context() {
    let model = ScriptedModel::new(vec![
        // Turn 1: the model looks for a tool, then calls what it found.
        calls(&[(tool_search::FIND_TOOLS, json!({"query": "put"}))]),
        calls(&[("kv__put", json!({"key": "a"}))]),
        text("Stored."),
        // Turn 2: plain.
        text("Hello."),
        // Turn 3: a tool from the catalog called directly, without a search.
        calls(&[("kv__get", json!({"key": "a"}))]),
        text("It is stored."),
    ]);
    let tools = Arc::new(KvTools::default());
    let mut config = BotConfig::default();
    config.chat.tool_loading = ToolLoading::OnDemand;
    let e = engine(model.clone(), tools.clone(), config);
    let r = e
        .turn(TurnRequest::new("s", "store a"), &Silent)
        .await
        .expect("turn 1");
    assert_eq!(
        (r.reply.as_str(), r.rounds, r.tool_calls),
        ("Stored.", 3, 2)
    );
    e.turn(TurnRequest::new("s", "hi"), &Silent)
        .await
        .expect("turn 2");
    e.turn(TurnRequest::new("s", "what is a?"), &Silent)
        .await
        .expect("turn 3");
    let requests = model.requests();
    // First request: only the catalog, which names every tool.
    assert_eq!(names(&requests[0]), [tool_search::FIND_TOOLS]);
    let catalog = &requests[0].tools[0].description;
    assert!(catalog.contains("kv: put, get, slow, guarded"), "{catalog}");
    // The search's result went back to the model, and `kv__put` is offered in full from then on.
    let found = requests[1].messages.last().expect("messages");
    assert_eq!(found.tool_name.as_deref(), Some(tool_search::FIND_TOOLS));
    assert!(
        found.content.starts_with("Found kv__put."),
        "{}",
        found.content
    );
    assert_eq!(names(&requests[1]), [tool_search::FIND_TOOLS, "kv__put"]);
    assert_eq!(
        names(&requests[3]),
        [tool_search::FIND_TOOLS, "kv__put"],
        "turn 2 still has it"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.tools[0].description == requests[0].tools[0].description),
        "the catalog never changes, so it never moves the prompt's start"
    );
    // The catalog tool called directly ran through the host and is offered next round.
    assert_eq!(*tools.calls.lock().expect("lock"), ["kv__put", "kv__get"]);
    assert_eq!(
        names(&requests[5]),
        [tool_search::FIND_TOOLS, "kv__put", "kv__get"]
    );
    assert_eq!(
        requests[5].messages.last().map(|m| m.content.as_str()),
        Some("stored")
    );
    // `find_tools` never reaches the tool host.
    assert!(
        !tools
            .calls
            .lock()
            .expect("lock")
            .iter()
            .any(|c| c == tool_search::FIND_TOOLS)
    );
}

#[tokio::test]
async fn auto_loads_on_demand_only_when_tools_crowd_the_context() {
    for (num_ctx, expect_catalog) in [(8192, false), (256, true)] {
        let model = ScriptedModel::new(vec![text("ok")]);
        let mut config = BotConfig::default();
        config.chat.tool_context_share = 0.25;
        config
            .ollama
            .options
            .insert("num_ctx".into(), num_ctx.into());
        let e = engine(model.clone(), Arc::new(KvTools::default()), config);
        e.turn(TurnRequest::new("s", "hi"), &Silent)
            .await
            .expect("turn");
        let offered = names(&model.requests()[0]);
        assert_eq!(
            offered == [tool_search::FIND_TOOLS],
            expect_catalog,
            "num_ctx {num_ctx}: {offered:?}"
        );
    }
}

#[tokio::test]
async fn history_never_pushes_the_prompt_past_the_context_window() {
    let long = "word ".repeat(400); // 2000 characters, about 500 tokens
    let mut config = BotConfig::default();
    config.chat.tool_loading = ToolLoading::All;
    let model = ScriptedModel::new((0..12).map(|_| text(&long)).collect());
    let e = engine(model.clone(), Arc::new(KvTools::default()), config.clone());
    for i in 0..12 {
        e.turn(TurnRequest::new("s", format!("{i} {long}")), &Silent)
            .await
            .expect("turn");
    }
    let chars = |r: &ChatRequest| -> usize {
        r.messages.iter().map(|m| m.content.len()).sum::<usize>()
            + r.tools.iter().map(tool_chars).sum::<usize>()
    };
    // 8192 tokens of context, 1024 kept for the reply: at 4 characters a token the prompt
    // stays under ~28,700 characters although the history budget (6000 tokens) alone would fit.
    let most = model.requests().iter().map(chars).max().unwrap_or(0);
    assert!(most <= (8192 - 1024) * 4, "{most} characters");
    // History is still used (up to the budget before a compaction halves it).
    assert!(most > 20_000, "history is still used: {most}");

    // With a small window, fewer turns fit.
    config.ollama.options.insert("num_ctx".into(), 4096.into());
    let model = ScriptedModel::new((0..12).map(|_| text(&long)).collect());
    let e = engine(model.clone(), Arc::new(KvTools::default()), config);
    for i in 0..12 {
        e.turn(TurnRequest::new("s", format!("{i} {long}")), &Silent)
            .await
            .expect("turn");
    }
    let most = model.requests().iter().map(chars).max().unwrap_or(0);
    assert!(most <= (4096 - 1024) * 4, "{most} characters");
}
