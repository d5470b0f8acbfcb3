//! The loop against a scripted model and an in-memory tool host (the real Ollama and MCP
//! servers are exercised end to end in `tests/`).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::json;

use super::plan::tool_chars;
use super::*;
use crate::config::ToolLoading;
use crate::llm::{
    ChatEvent, ChatRequest, ChatStream, ModelDetails, ModelSummary, Role, ToolCall, ToolSpec,
};
use crate::tool::OutcomeKind;
use std::time::Duration;

/// Replies from a script, recording every request. `/api/show` answers from `details` (a model
/// not in it can use tools and nothing else is known).
struct ScriptedModel {
    replies: Mutex<VecDeque<Vec<ChatEvent>>>,
    requests: Mutex<Vec<ChatRequest>>,
    details: HashMap<String, ModelDetails>,
    shows: std::sync::atomic::AtomicUsize,
}

impl ScriptedModel {
    fn new(replies: Vec<Vec<ChatEvent>>) -> Arc<Self> {
        Self::with_models(replies, &[])
    }
    fn with_models(replies: Vec<Vec<ChatEvent>>, details: &[ModelDetails]) -> Arc<Self> {
        Arc::new(Self {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            details: details
                .iter()
                .map(|d| (d.name.clone(), d.clone()))
                .collect(),
            shows: Default::default(),
        })
    }
    fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

fn text(t: &str) -> Vec<ChatEvent> {
    vec![ChatEvent::Content(t.into()), done()]
}

fn done() -> ChatEvent {
    ChatEvent::Done {
        usage: Usage {
            prompt_tokens: 100,
            completion_tokens: 10,
            ..Usage::default()
        },
        done_reason: None,
    }
}

fn calls(names: &[(&str, Value)]) -> Vec<ChatEvent> {
    vec![
        ChatEvent::ToolCalls(
            names
                .iter()
                .map(|(n, a)| ToolCall::new(*n, a.clone()))
                .collect(),
        ),
        done(),
    ]
}

#[async_trait::async_trait]
impl ChatModel for ScriptedModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        self.requests.lock().expect("lock").push(request);
        let events = self
            .replies
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or_else(|| text("(script ended)"));
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }
    async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError> {
        Ok(["llama3.2:latest", "qwen3:latest"]
            .iter()
            .map(|n| ModelSummary {
                name: (*n).into(),
                size: 0,
                parameter_size: None,
            })
            .collect())
    }
    async fn show(&self, model: &str) -> Result<ModelDetails, LlmError> {
        self.shows.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.details.get(model).cloned().unwrap_or(ModelDetails {
            name: model.into(),
            capabilities: vec!["tools".into()],
            ..ModelDetails::default()
        }))
    }
}

fn details(name: &str, capabilities: &[&str]) -> ModelDetails {
    ModelDetails {
        name: name.into(),
        capabilities: capabilities.iter().map(|c| (*c).to_string()).collect(),
        ..ModelDetails::default()
    }
}

fn done_with(prompt_tokens: u32, completion_tokens: u32, reason: &str) -> ChatEvent {
    ChatEvent::Done {
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            ..Usage::default()
        },
        done_reason: Some(reason.into()),
    }
}

/// Two tools: `kv__put` stores, `kv__get` reads; `kv__slow` sleeps; `kv__guarded` needs approval.
#[derive(Default)]
struct KvTools {
    data: Mutex<HashMap<String, String>>,
    calls: Mutex<Vec<String>>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl ToolHost for KvTools {
    fn tools(&self) -> Vec<ToolSpec> {
        ["put", "get", "slow", "guarded"]
            .iter()
            .map(|t| ToolSpec {
                name: format!("kv__{t}"),
                description: format!("{t} a value"),
                parameters: json!({"type": "object", "properties": {"key": {"type": "string"}}}),
            })
            .collect()
    }
    fn needs_approval(&self, name: &str) -> bool {
        name == "kv__guarded"
    }
    async fn call(&self, name: &str, arguments: Value) -> ToolOutcome {
        self.calls.lock().expect("lock").push(name.to_string());
        let key = arguments
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let content = match name {
            "kv__put" => {
                self.data
                    .lock()
                    .expect("lock")
                    .insert(key.clone(), "stored".into());
                format!("put {key}")
            }
            "kv__slow" => {
                use std::sync::atomic::Ordering::SeqCst;
                let now = self.in_flight.fetch_add(1, SeqCst) + 1;
                self.max_in_flight.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.in_flight.fetch_sub(1, SeqCst);
                format!("slow {key}")
            }
            _ => self
                .data
                .lock()
                .expect("lock")
                .get(&key)
                .cloned()
                .unwrap_or_else(|| "missing".into()),
        };
        ToolOutcome {
            server: "kv".into(),
            tool: name.into(),
            content,
            kind: OutcomeKind::Ok,
            duration: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Recorder {
    text: Mutex<String>,
    tools: Mutex<Vec<String>>,
    approve: bool,
}

#[async_trait::async_trait]
impl TurnObserver for Recorder {
    async fn on_text(&self, delta: &str) {
        self.text.lock().expect("lock").push_str(delta);
    }
    async fn on_tool_call(&self, name: &str, _arguments: &Value) {
        self.tools.lock().expect("lock").push(name.to_string());
    }
    async fn approve_tool(&self, _name: &str, _arguments: &Value) -> bool {
        self.approve
    }
}

fn engine(model: Arc<ScriptedModel>, tools: Arc<KvTools>, config: BotConfig) -> Engine {
    Engine::new(
        model,
        tools,
        Store::open(":memory:").expect("store"),
        &config,
    )
}

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

fn names(request: &ChatRequest) -> Vec<String> {
    request.tools.iter().map(|t| t.name.clone()).collect()
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
