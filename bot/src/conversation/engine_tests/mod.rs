//! The loop against a scripted model and an in-memory tool host (the real Ollama and MCP
//! servers are exercised end to end in `tests/`): the shared doubles here, the tests in
//! `rounds` (the loop itself) and `real_ollama` (what Ollama 0.24 really does, and cache-warm
//! prompts).

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
                parameters: json!({"type": "object", "properties": {"key": {"type": "string"}}})
                    .into(),
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

fn names(request: &ChatRequest) -> Vec<String> {
    request.tools.iter().map(|t| t.name.clone()).collect()
}

mod real_ollama;
mod rounds;
