//! The conversation engine: one user message in, a reply out, with as many model → tools →
//! model rounds in between as the model asks for (up to `max_tool_rounds`). The Discord adapter
//! and the terminal chat both drive it; it knows nothing of either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::{BotConfig, ChatConfig, OllamaConfig, ToolLoading};
use crate::llm::{
    ChatEvent, ChatMessage, ChatModel, ChatRequest, LlmError, ToolCall, ToolSpec, Usage,
};
use crate::mcp::{OutcomeKind, ToolHost, ToolOutcome, split_namespaced};
use crate::metrics::metrics;
use crate::store::{Store, StoreError, StoredMessage};

pub mod remember;
pub mod tool_search;
pub mod trim;

/// Why a turn failed. The message is meant for the person chatting.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("{0}")]
    Model(#[from] LlmError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("model `{model}` is not one of the allowed models: {}", allowed.join(", "))]
    ModelNotAllowed { model: String, allowed: Vec<String> },
    #[error("please write something: the message is empty")]
    EmptyMessage,
}

impl TurnError {
    /// Stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TurnError::Model(e) => e.kind(),
            TurnError::Store(_) => "store",
            TurnError::ModelNotAllowed { .. } => "model_not_allowed",
            TurnError::EmptyMessage => "empty_message",
        }
    }
}

/// Decides which namespaced tools a user may call.
pub type ToolFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// One user message to answer.
#[derive(Clone, Default)]
pub struct TurnRequest {
    pub session: String,
    pub text: String,
    /// A default for this place (e.g. the guild's model); a session's own choice wins over it.
    pub model: Option<String>,
    /// A model for this turn that wins over everything (the terminal's `--model`).
    pub model_override: Option<String>,
    /// Persona for this place; `None` = the configured system prompt.
    pub system_prompt: Option<String>,
    /// Which namespaced tools this user may use; `None` = all.
    pub tool_filter: Option<ToolFilter>,
}

impl TurnRequest {
    pub fn new(session: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            session: session.into(),
            text: text.into(),
            ..Self::default()
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnResult {
    pub reply: String,
    pub model: String,
    /// Summed over the turn's model requests.
    pub usage: Usage,
    pub rounds: u32,
    pub tool_calls: u32,
    pub hit_round_limit: bool,
}

/// Watches a turn as it happens: streamed text, tool calls, approvals.
#[async_trait::async_trait]
pub trait TurnObserver: Send + Sync {
    async fn on_text(&self, _delta: &str) {}
    async fn on_tool_call(&self, _name: &str, _arguments: &Value) {}
    async fn on_tool_result(&self, _name: &str, _outcome: &ToolOutcome) {}
    /// Called before a tool that needs approval runs; false = refused (the model is told).
    async fn approve_tool(&self, _name: &str, _arguments: &Value) -> bool {
        true
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl TurnObserver for Silent {}

struct Inner {
    model: Arc<dyn ChatModel>,
    tools: Arc<dyn ToolHost>,
    store: Store,
    chat: ChatConfig,
    ollama: OllamaConfig,
    /// Tokens per character, learned from Ollama's prompt_eval_count; per model.
    calibration: Mutex<HashMap<String, f64>>,
    /// Last turn per session, for the active-sessions gauge.
    recent: Mutex<HashMap<String, Instant>>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

const ACTIVE_WINDOW: Duration = Duration::from_secs(3600);
/// A first guess before Ollama has told us anything: about four characters a token.
const DEFAULT_TOKENS_PER_CHAR: f64 = 0.25;
/// Ollama's context window when `num_ctx` is not set.
const DEFAULT_NUM_CTX: u32 = 4096;
/// Tokens kept free for the reply when `num_predict` is not set.
const REPLY_RESERVE: u32 = 1024;

/// Tokens earlier turns may take: the configured budget, but never more than what is left of
/// the context window (when `num_ctx` is set) after the tools, the system prompt, this turn and
/// room for the reply; Ollama would otherwise silently cut the prompt's start.
fn history_budget(
    configured: u32,
    num_ctx: Option<u32>,
    options: &serde_json::Map<String, Value>,
    fixed_chars: usize,
    tokens_per_char: f64,
) -> u32 {
    let Some(num_ctx) = num_ctx else {
        return configured;
    };
    let reserve = options
        .get("num_predict")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(REPLY_RESERVE)
        .min(num_ctx / 2);
    let fixed = (fixed_chars as f64 * tokens_per_char).ceil() as u64;
    let left = u64::from(num_ctx)
        .saturating_sub(u64::from(reserve))
        .saturating_sub(fixed);
    configured.min(u32::try_from(left).unwrap_or(u32::MAX))
}

impl Engine {
    pub fn new(
        model: Arc<dyn ChatModel>,
        tools: Arc<dyn ToolHost>,
        store: Store,
        config: &BotConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                model,
                tools,
                store,
                chat: config.chat.clone(),
                ollama: config.ollama.clone(),
                calibration: Mutex::new(HashMap::new()),
                recent: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn tools(&self) -> &Arc<dyn ToolHost> {
        &self.inner.tools
    }

    pub fn chat_model(&self) -> &Arc<dyn ChatModel> {
        &self.inner.model
    }

    /// Forgets the session's history.
    pub async fn reset(&self, session: &str) -> Result<(), TurnError> {
        self.inner.store.clear_history(session).await?;
        Ok(())
    }

    /// The model a session uses: its own choice, else `fallback` (a place's default), else the configured one.
    pub async fn session_model(
        &self,
        session: &str,
        fallback: Option<&str>,
    ) -> Result<String, TurnError> {
        Ok(match self.inner.store.session_model(session).await? {
            Some(m) => m,
            None => fallback.unwrap_or(&self.inner.ollama.model).to_string(),
        })
    }

    /// Switches a session's model, if it is allowed and the server has it.
    pub async fn set_session_model(&self, session: &str, model: &str) -> Result<(), TurnError> {
        self.check_model_allowed(model)?;
        let available = self.inner.model.list_models().await?;
        if !available.iter().any(|m| same_model(&m.name, model)) {
            return Err(LlmError::ModelNotFound {
                model: model.to_string(),
            }
            .into());
        }
        self.inner
            .store
            .set_session_model(session, Some(model))
            .await?;
        Ok(())
    }

    /// Models users may pick: the allowed list that the server has (or all it has, when no list).
    pub async fn available_models(&self) -> Result<Vec<String>, TurnError> {
        let on_server = self.inner.model.list_models().await?;
        let allowed = &self.inner.ollama.models;
        Ok(if allowed.is_empty() {
            on_server.into_iter().map(|m| m.name).collect()
        } else {
            allowed
                .iter()
                .filter(|a| on_server.iter().any(|m| same_model(&m.name, a)))
                .cloned()
                .collect()
        })
    }

    pub fn check_model_allowed(&self, model: &str) -> Result<(), TurnError> {
        let allowed = &self.inner.ollama.models;
        if allowed.is_empty() || allowed.iter().any(|a| same_model(a, model)) {
            Ok(())
        } else {
            Err(TurnError::ModelNotAllowed {
                model: model.to_string(),
                allowed: allowed.clone(),
            })
        }
    }

    /// Answers one user message. Nothing is stored unless the turn completes.
    pub async fn turn(
        &self,
        request: TurnRequest,
        observer: &dyn TurnObserver,
    ) -> Result<TurnResult, TurnError> {
        if request.text.trim().is_empty() {
            return Err(TurnError::EmptyMessage);
        }
        let model = self
            .session_model(&request.session, request.model.as_deref())
            .await?;
        let span = info_span!("turn", session = %request.session, model = %model);
        self.turn_inner(request, model, observer)
            .instrument(span)
            .await
    }

    async fn turn_inner(
        &self,
        request: TurnRequest,
        model: String,
        observer: &dyn TurnObserver,
    ) -> Result<TurnResult, TurnError> {
        let inner = &self.inner;
        self.touch_session(&request.session);
        // The configured budget; each round narrows `tokens` to what the context leaves.
        let base_budget = trim::Budget {
            tokens: inner.chat.history_token_budget,
            old_tool_result_chars: inner.chat.old_tool_result_chars,
            full_tool_result_turns: inner.chat.full_tool_result_turns,
            tokens_per_char: self.tokens_per_char(&model),
        };
        let mut cut = trim::HistoryCut::new(&base_budget);
        let mut history = inner
            .store
            .recent_history(&request.session, move |turn| {
                cut.more_needed(turn.iter().filter(|m| !tool_search::is_trace(&m.message)))
            })
            .await?;
        history.retain(|m| !tool_search::is_trace(&m.message));
        let system = request
            .system_prompt
            .clone()
            .unwrap_or_else(|| inner.chat.system_prompt.clone());
        let tools: Vec<ToolSpec> = inner
            .tools
            .tools()
            .into_iter()
            .filter(|t| {
                request
                    .tool_filter
                    .as_ref()
                    .is_none_or(|allow| allow(&t.name))
            })
            .map(compact_tool)
            .collect();
        let mut tool_names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        let all_tools_chars: usize = tools.iter().map(tool_chars).sum();
        let num_ctx = inner
            .ollama
            .options
            .get("num_ctx")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let on_demand = match inner.chat.tool_loading {
            ToolLoading::All => false,
            ToolLoading::OnDemand => true,
            ToolLoading::Auto => {
                all_tools_chars as f64 * base_budget.tokens_per_char
                    > f64::from(num_ctx.unwrap_or(DEFAULT_NUM_CTX)) * inner.chat.tool_context_share
            }
        } && !tools.is_empty();
        if on_demand {
            // The model may name any tool, loaded or not (the hub resolves it).
            tool_names.push(tool_search::FIND_TOOLS);
        }

        // Messages of this turn: the user's, then each round's assistant and tool messages.
        let mut turn_messages = vec![ChatMessage::user(request.text.clone())];
        let mut usage = Usage::default();
        let mut tool_call_count = 0u32;
        let mut rounds = 0u32;
        let mut last_prompt = (0u32, 0usize); // (prompt tokens, prompt chars) of the last request
        let (reply, hit_round_limit) = loop {
            if rounds == inner.chat.max_tool_rounds {
                warn!(rounds, "tool round limit reached");
                let note = format!(
                    "(I stopped after {rounds} rounds of tool calls without a final answer. Ask me to continue, or rephrase.)"
                );
                observer.on_text(&note).await;
                break (note, true);
            }
            rounds += 1;
            let tokens_per_char = self.tokens_per_char(&model);
            // On demand, tools loaded by anything read (an upper bound) size the history
            // budget; the tools offered are then those loaded by what is actually sent.
            let offer = |sent: &mut dyn Iterator<Item = &ChatMessage>| -> Vec<ToolSpec> {
                if !on_demand {
                    return tools.clone();
                }
                let loaded = tool_search::loaded(sent, &tools);
                let (offered, rest): (Vec<&ToolSpec>, Vec<&ToolSpec>) =
                    tools.iter().partition(|t| loaded.contains(&t.name));
                let mut out = Vec::with_capacity(offered.len() + 1);
                if !rest.is_empty() {
                    out.push(tool_search::find_tools_spec(&rest));
                }
                out.extend(offered.into_iter().cloned());
                out
            };
            let tools_chars_upper = if on_demand {
                offer(
                    &mut history
                        .iter()
                        .map(|m| &m.message)
                        .chain(turn_messages.iter()),
                )
                .iter()
                .map(tool_chars)
                .sum()
            } else {
                all_tools_chars
            };
            let budget = trim::Budget {
                tokens: history_budget(
                    base_budget.tokens,
                    num_ctx,
                    &inner.ollama.options,
                    tools_chars_upper
                        + system.len()
                        + turn_messages.iter().map(message_chars).sum::<usize>(),
                    tokens_per_char,
                ),
                tokens_per_char,
                ..base_budget
            };
            let messages = trim::build_prompt(&system, &history, &turn_messages, &budget);
            let offered = offer(&mut messages.iter());
            // Ollama counts the offered tools in prompt_eval_count too; leaving them out of the
            // characters would make every message look several times its real token cost.
            let prompt_chars: usize = offered.iter().map(tool_chars).sum::<usize>()
                + messages.iter().map(message_chars).sum::<usize>();
            let tools_offered = !offered.is_empty();
            let chat_request = ChatRequest {
                model: model.clone(),
                messages,
                tools: offered,
                options: inner.ollama.options.clone(),
                think: Some(inner.ollama.think),
                keep_alive: inner.ollama.keep_alive.clone(),
            };
            let round = self
                .model_round(chat_request, observer, tools_offered)
                .await?;
            usage = add_usage(usage, round.usage);
            last_prompt = (round.usage.prompt_tokens, prompt_chars);
            let mut calls = round.tool_calls;
            if calls.is_empty() && tools_offered {
                if let Some(recovered) =
                    crate::llm::fallback::recover_tool_calls(&round.content, &tool_names)
                {
                    debug!(
                        count = recovered.len(),
                        "recovered tool calls written as JSON text"
                    );
                    calls = recovered;
                } else if round.held {
                    // Held back in case it was a tool call; it was not: show it now.
                    observer.on_text(&round.content).await;
                }
            }
            if calls.is_empty() {
                turn_messages.push(ChatMessage::assistant(round.content.clone()));
                break (round.content, false);
            }
            let assistant = ChatMessage {
                tool_calls: calls.clone(),
                thinking: None,
                ..ChatMessage::assistant(if round.held {
                    String::new()
                } else {
                    round.content
                })
            };
            turn_messages.push(assistant);
            tool_call_count += u32::try_from(calls.len()).unwrap_or(u32::MAX);
            let outcomes = self
                .run_tools(&calls, &request, on_demand.then_some(&tools[..]), observer)
                .await;
            for (call, outcome) in calls.iter().zip(outcomes) {
                turn_messages.push(ChatMessage::tool(
                    call.function.name.clone(),
                    outcome.content,
                ));
            }
        };
        if hit_round_limit {
            // Keep the stored turn well-formed: it ends with an assistant message.
            turn_messages.push(ChatMessage::assistant(reply.clone()));
        }
        self.learn_calibration(&model, last_prompt);
        let tokens_per_char = self.tokens_per_char(&model);
        let to_store: Vec<(ChatMessage, u32)> = turn_messages
            .into_iter()
            .map(|m| {
                let tokens = trim::estimate_tokens(&m, tokens_per_char);
                (m, tokens)
            })
            .collect();
        inner.store.append_turn(&request.session, to_store).await?;
        Ok(TurnResult {
            reply,
            model,
            usage,
            rounds,
            tool_calls: tool_call_count,
            hit_round_limit,
        })
    }

    /// One model request, streamed to the observer.
    async fn model_round(
        &self,
        request: ChatRequest,
        observer: &dyn TurnObserver,
        tools_offered: bool,
    ) -> Result<Round, TurnError> {
        let mut stream = self.inner.model.chat(request).await?;
        let mut round = Round::default();
        while let Some(event) = stream.next().await {
            match event? {
                ChatEvent::Content(delta) => {
                    round.content.push_str(&delta);
                    // Text that may turn out to be a tool call written as JSON is held back
                    // until the reply is complete; anything else streams at once.
                    let first = round.content.len() == delta.len();
                    if tools_offered && (first || round.held) {
                        round.held = tools_offered && might_be_json_call(&round.content);
                        if !round.held {
                            observer.on_text(&round.content).await;
                        }
                    } else {
                        observer.on_text(&delta).await;
                    }
                }
                ChatEvent::Thinking(_) => {}
                ChatEvent::ToolCalls(calls) => round.tool_calls.extend(calls),
                ChatEvent::Done { usage, .. } => round.usage = usage,
            }
        }
        Ok(round)
    }

    /// Runs the round's tool calls concurrently, in the order the model gave them.
    async fn run_tools(
        &self,
        calls: &[ToolCall],
        request: &TurnRequest,
        searchable: Option<&[ToolSpec]>,
        observer: &dyn TurnObserver,
    ) -> Vec<ToolOutcome> {
        let runs = calls.iter().map(|call| async move {
            let name = call.function.name.as_str();
            let args = normalize_arguments(&call.function.arguments);
            observer.on_tool_call(name, &args).await;
            let outcome = if let Some(tools) =
                searchable.filter(|_| name == tool_search::FIND_TOOLS)
            {
                ToolOutcome {
                    server: String::new(),
                    tool: tool_search::FIND_TOOLS.into(),
                    content: tool_search::run(tools, &args),
                    kind: OutcomeKind::Ok,
                    duration: Duration::ZERO,
                }
            } else if request
                .tool_filter
                .as_ref()
                .is_some_and(|allow| !allow(name))
            {
                refused(name, "this tool is not available to you here")
            } else if self.inner.tools.needs_approval(name)
                && !observer.approve_tool(name, &args).await
            {
                refused(
                    name,
                    "the user did not approve this tool call; do not retry it, answer without it",
                )
            } else {
                self.inner.tools.call(name, args.clone()).await
            };
            observer.on_tool_result(name, &outcome).await;
            outcome
        });
        futures::future::join_all(runs).await
    }

    fn tokens_per_char(&self, model: &str) -> f64 {
        let map = self
            .inner
            .calibration
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(model).copied().unwrap_or(DEFAULT_TOKENS_PER_CHAR)
    }

    /// Learns tokens per character from Ollama's own prompt count of the last request.
    fn learn_calibration(&self, model: &str, (prompt_tokens, prompt_chars): (u32, usize)) {
        // Tiny prompts (or a prompt served from cache, which reports few tokens) say little.
        if prompt_tokens < 32 || prompt_chars < 128 {
            return;
        }
        let ratio = f64::from(prompt_tokens) / prompt_chars as f64;
        if !(0.05..=2.0).contains(&ratio) {
            return;
        }
        let mut map = self
            .inner
            .calibration
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(model.to_string()).or_insert(ratio);
        *entry = 0.7 * *entry + 0.3 * ratio;
    }

    fn touch_session(&self, session: &str) {
        let now = Instant::now();
        let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.insert(session.to_string(), now);
        recent.retain(|_, t| now.duration_since(*t) < ACTIVE_WINDOW);
        metrics()
            .active_sessions
            .set(i64::try_from(recent.len()).unwrap_or(i64::MAX));
    }
}

#[derive(Default)]
struct Round {
    content: String,
    /// The content was held back from the observer (it looked like a JSON tool call).
    held: bool,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
}

fn refused(name: &str, why: &str) -> ToolOutcome {
    let (server, tool) = split_namespaced(name).unwrap_or(("", name));
    ToolOutcome {
        server: server.to_string(),
        tool: tool.to_string(),
        content: format!("Tool call refused: {why}."),
        kind: OutcomeKind::Denied,
        duration: Duration::ZERO,
    }
}

/// Could this (partial) content still be a tool call written as JSON text?
fn might_be_json_call(content: &str) -> bool {
    let t = content.trim_start();
    if t.is_empty() {
        return true;
    }
    const OPENERS: [&str; 4] = ["{", "[", "```", "<tool_call>"];
    OPENERS.iter().any(|o| t.starts_with(o) || o.starts_with(t))
}

/// Some models send arguments as a JSON string holding an object; tools want the object.
fn normalize_arguments(args: &Value) -> Value {
    match args {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => args.clone(),
        },
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    }
}

fn message_chars(m: &ChatMessage) -> usize {
    m.content.len()
        + m.tool_calls
            .iter()
            .map(|c| c.function.name.len() + c.function.arguments.to_string().len())
            .sum::<usize>()
}

/// Characters a tool definition adds to the prompt (its name, description and schema).
fn tool_chars(t: &ToolSpec) -> usize {
    t.name.len() + t.description.len() + t.parameters.to_string().len()
}

fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens + b.prompt_tokens,
        completion_tokens: a.completion_tokens + b.completion_tokens,
        total_duration: a.total_duration + b.total_duration,
        load_duration: a.load_duration + b.load_duration,
        prompt_eval_duration: a.prompt_eval_duration + b.prompt_eval_duration,
        eval_duration: a.eval_duration + b.eval_duration,
    }
}

/// `llama3.2` and `llama3.2:latest` name the same model.
pub fn same_model(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
    norm(a) == norm(b)
}

/// Schemas as servers write them carry weight the model does not need (`$schema`, titles,
/// `additionalProperties: false`, integer bounds at JavaScript's largest safe integer); every
/// request repeats them, so drop that weight once here. Only schema keywords are touched: a
/// property named `title`, or a `default` value, is data and stays.
fn compact_tool(mut tool: ToolSpec) -> ToolSpec {
    /// JavaScript's Number.MAX_SAFE_INTEGER, which zod writes for `.int()`: no real bound.
    const SAFE_INTEGER: i64 = 9_007_199_254_740_991;
    fn schema(v: &mut Value) {
        let Value::Object(map) = v else { return };
        map.remove("$schema");
        map.remove("title");
        if map.get("additionalProperties") == Some(&Value::Bool(false)) {
            map.remove("additionalProperties");
        }
        if map.get("maximum").and_then(Value::as_i64) >= Some(SAFE_INTEGER) {
            map.remove("maximum");
        }
        if map
            .get("minimum")
            .and_then(Value::as_i64)
            .is_some_and(|m| m <= -SAFE_INTEGER)
        {
            map.remove("minimum");
        }
        for (key, value) in map.iter_mut() {
            match key.as_str() {
                // Maps of name → schema.
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => {
                    if let Value::Object(named) = value {
                        named.values_mut().for_each(schema);
                    }
                }
                // One schema.
                "items"
                | "additionalProperties"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames"
                | "unevaluatedProperties"
                | "unevaluatedItems" => match value {
                    Value::Array(list) => list.iter_mut().for_each(schema),
                    other => schema(other),
                },
                // Lists of schemas.
                "anyOf" | "allOf" | "oneOf" | "prefixItems" => {
                    if let Value::Array(list) = value {
                        list.iter_mut().for_each(schema);
                    }
                }
                _ => {}
            }
        }
    }
    schema(&mut tool.parameters);
    tool
}

/// Messages loaded from the store, grouped by turn.
pub(crate) fn group_turns(history: &[StoredMessage]) -> Vec<&[StoredMessage]> {
    history.chunk_by(|a, b| a.turn == b.turn).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_prefix_detection() {
        assert!(might_be_json_call("  {\"na"));
        assert!(might_be_json_call("``"));
        assert!(might_be_json_call("<tool"));
        assert!(!might_be_json_call("Hello"));
        assert!(!might_be_json_call("<b>"));
    }

    #[test]
    fn string_arguments_become_objects() {
        assert_eq!(
            normalize_arguments(&Value::String("{\"a\":1}".into())),
            serde_json::json!({"a": 1})
        );
        assert_eq!(normalize_arguments(&Value::Null), serde_json::json!({}));
        assert_eq!(
            normalize_arguments(&Value::String("x".into())),
            Value::String("x".into())
        );
    }

    #[test]
    fn compact_strips_weight_but_keeps_meaning() {
        let t = compact_tool(ToolSpec {
            name: "m__t".into(),
            description: "d".into(),
            parameters: serde_json::json!({"$schema": "x", "type": "object", "additionalProperties": false,
                "properties": {"a": {"type": "string", "title": "A", "description": "keep"}}, "required": ["a"]}),
        });
        assert_eq!(
            t.parameters,
            serde_json::json!({"type": "object", "properties": {"a": {"type": "string", "description": "keep"}}, "required": ["a"]})
        );
    }

    #[test]
    fn compact_leaves_properties_and_values_named_like_keywords() {
        let t = compact_tool(ToolSpec {
            name: "m__t".into(),
            description: "d".into(),
            parameters: serde_json::json!({"type": "object", "title": "Args",
                "properties": {
                    "title": {"type": "string", "title": "Title"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991_i64},
                    "opts": {"type": "object", "default": {"title": "kept"},
                        "properties": {"$schema": {"type": "string"}}},
                    "list": {"type": "array", "items": {"type": "object", "title": "Item",
                        "properties": {"title": {"type": "string"}}}}
                },
                "required": ["title"]}),
        });
        assert_eq!(
            t.parameters,
            serde_json::json!({"type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "n": {"type": "integer", "minimum": 1},
                    "opts": {"type": "object", "default": {"title": "kept"},
                        "properties": {"$schema": {"type": "string"}}},
                    "list": {"type": "array", "items": {"type": "object",
                        "properties": {"title": {"type": "string"}}}}
                },
                "required": ["title"]})
        );
    }

    #[test]
    fn latest_tag_is_the_same_model() {
        assert!(same_model("llama3.2", "llama3.2:latest"));
        assert!(!same_model("llama3.2", "llama3.1"));
    }
}

#[cfg(test)]
mod engine_tests;
