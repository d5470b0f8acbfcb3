//! The conversation engine: one user message in, a reply out, with as many model → tools →
//! model rounds in between as the model asks for (up to `max_tool_rounds`). The Discord adapter
//! and the terminal chat both drive it; it knows nothing of either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::{BotConfig, ChatConfig, OllamaConfig};
use crate::llm::{ChatMessage, ChatModel, LlmError, Usage};
use crate::mcp::ToolHost;
use crate::metrics::metrics;
use crate::store::{Store, StoreError, StoredMessage};
use crate::tool::ToolOutcome;

mod calls;
mod models;
mod notice;
mod plan;
pub mod recover;
pub mod remember;
mod round;
pub mod tool_search;
pub mod trim;

pub use models::{ModelProfile, same_model};
pub use notice::{Cut, Notice};
use plan::{SessionState, TurnPlan};

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
    #[error(
        "your message is too long for model `{model}`: about {tokens} tokens, and its context window leaves {room} for it; shorten the message, or raise ollama.options.num_ctx"
    )]
    MessageTooLong {
        model: String,
        tokens: u32,
        room: u32,
    },
    #[error(
        "model `{model}` gave an empty answer ({why}); nothing was saved; try again or rephrase"
    )]
    EmptyReply { model: String, why: String },
}

impl TurnError {
    /// Stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TurnError::Model(e) => e.kind(),
            TurnError::Store(_) => "store",
            TurnError::ModelNotAllowed { .. } => "model_not_allowed",
            TurnError::EmptyMessage => "empty_message",
            TurnError::MessageTooLong { .. } => "message_too_long",
            TurnError::EmptyReply { .. } => "empty_reply",
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
    /// Set when Ollama stopped the reply before the model finished it.
    pub cut: Option<Cut>,
    /// What the person should be told besides the reply (a cut reply, a model that cannot use
    /// tools or think), each at most once per session; frontends show them after the reply.
    pub notices: Vec<Notice>,
}

/// Watches a turn as it happens: streamed text, tool calls, approvals, notices.
#[async_trait::async_trait]
pub trait TurnObserver: Send + Sync {
    async fn on_text(&self, _delta: &str) {}
    async fn on_tool_call(&self, _name: &str, _arguments: &Value) {}
    async fn on_tool_result(&self, _name: &str, _outcome: &ToolOutcome) {}
    /// Called before a tool that needs approval runs; false = refused (the model is told).
    async fn approve_tool(&self, _name: &str, _arguments: &Value) -> bool {
        true
    }
    /// Something to tell the person, as soon as it is known (also in [`TurnResult::notices`]).
    async fn on_notice(&self, _notice: &Notice) {}
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
    /// `/api/show` per model: capabilities and window.
    profiles: Mutex<HashMap<String, ModelProfile>>,
    /// What keeps a session's prompt prefix stable from one request to the next.
    sessions: Mutex<HashMap<String, SessionState>>,
    /// Last turn per session, for the active-sessions gauge.
    recent: Mutex<HashMap<String, Instant>>,
    /// The last tool list a turn offered and its characters (`plan::tool_chars` summed).
    tools_chars: Mutex<(Vec<crate::tool::ToolSpec>, usize)>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

const ACTIVE_WINDOW: Duration = Duration::from_secs(3600);

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
                profiles: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                recent: Mutex::new(HashMap::new()),
                tools_chars: Mutex::new((Vec::new(), 0)),
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
        lock(&self.inner.sessions).remove(session);
        Ok(())
    }

    /// Answers one user message. Nothing is stored unless the turn completes with an answer.
    pub async fn turn(
        &self,
        request: TurnRequest,
        observer: &dyn TurnObserver,
    ) -> Result<TurnResult, TurnError> {
        if request.text.trim().is_empty() {
            return Err(TurnError::EmptyMessage);
        }
        let model = match &request.model_override {
            Some(m) => m.clone(),
            None => {
                self.session_model(&request.session, request.model.as_deref())
                    .await?
            }
        };
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
        self.touch_session(&request.session);
        let plan = TurnPlan::new(self, &request, &model).await?;
        let mut notices = self.notices(&request.session, &model, observer).await;
        let history = self.read_history(&request.session, &plan).await?;

        // Messages of this turn: the user's, then each round's assistant and tool messages.
        let mut turn_messages = vec![ChatMessage::user(request.text.clone())];
        let mut usage = Usage::default();
        let mut tool_call_count = 0u32;
        let mut rounds = 0u32;
        let mut last_prompt = (0u32, 0usize); // (prompt tokens, prompt chars) of the last request
        let (reply, hit_round_limit, cut) = loop {
            if rounds == self.inner.chat.max_tool_rounds {
                warn!(rounds, "tool round limit reached");
                let note = format!(
                    "(I stopped after {rounds} rounds of tool calls without a final answer. Ask me to continue, or rephrase.)"
                );
                observer.on_text(&note).await;
                turn_messages.push(ChatMessage::assistant(note.clone()));
                break (note, true, None);
            }
            rounds += 1;
            // Prompt: everything the model sees, fitted to its window.
            let prompt = self.prompt(&plan, &request.session, &history, &mut turn_messages)?;
            let prompt_chars = prompt.chars;
            // Model round: streamed to the observer, JSON-looking text held back.
            let round = self.model_round(prompt.request, observer).await?;
            usage = round::add_usage(usage, round.usage);
            last_prompt = (round.usage.prompt_tokens, prompt_chars);
            // Recover calls written as text.
            let calls = self.recover_calls(&plan, &round, observer).await;
            if calls.is_empty() {
                let cut = plan.window.cut(round.done_reason.as_deref(), &round.usage);
                if round.content.trim().is_empty() {
                    return Err(TurnError::EmptyReply {
                        model,
                        why: match cut {
                            Some(cut) => cut.to_string(),
                            None => "it sent no text and no tool call".into(),
                        },
                    });
                }
                turn_messages.push(ChatMessage::assistant(round.content.clone()));
                break (round.content, false, cut);
            }
            // Run tools.
            turn_messages.push(ChatMessage {
                tool_calls: calls.clone(),
                ..ChatMessage::assistant(if round.held {
                    String::new()
                } else {
                    round.content
                })
            });
            tool_call_count += u32::try_from(calls.len()).unwrap_or(u32::MAX);
            let outcomes = self.run_tools(&calls, &request, &plan, observer).await;
            for (call, outcome) in calls.iter().zip(outcomes) {
                turn_messages.push(ChatMessage::tool_result(call, outcome.content));
            }
        };
        if let Some(cut) = cut {
            let notice = Notice::ReplyCut(cut);
            observer.on_notice(&notice).await;
            notices.push(notice);
        }
        self.learn_calibration(&model, plan.window.num_ctx, last_prompt);
        self.save_turn(&request.session, &model, turn_messages)
            .await?;
        debug!(rounds, tool_calls = tool_call_count, "turn complete");
        Ok(TurnResult {
            reply,
            model,
            usage,
            rounds,
            tool_calls: tool_call_count,
            hit_round_limit,
            cut,
            notices,
        })
    }

    /// Stores a completed turn, each message with its estimated tokens.
    async fn save_turn(
        &self,
        session: &str,
        model: &str,
        messages: Vec<ChatMessage>,
    ) -> Result<(), TurnError> {
        let tokens_per_char = self.tokens_per_char(model);
        let to_store: Vec<(ChatMessage, u32)> = messages
            .into_iter()
            .map(|m| {
                let tokens = trim::estimate_tokens(&m, tokens_per_char);
                (m, tokens)
            })
            .collect();
        self.inner.store.append_turn(session, to_store).await?;
        Ok(())
    }

    /// Earlier turns from the store: no more than the history budget could ever use, and none
    /// from before the session's last compaction.
    async fn read_history(
        &self,
        session: &str,
        plan: &TurnPlan,
    ) -> Result<Vec<StoredMessage>, TurnError> {
        let mut cut = trim::HistoryCut::new(&plan.budget);
        let start = lock(&self.inner.sessions)
            .get(session)
            .map_or(i64::MIN, |s| s.history_start);
        let mut history = self
            .inner
            .store
            .recent_history(session, move |turn| {
                turn.first().is_some_and(|m| m.turn > start)
                    && cut.more_needed(turn.iter().filter(|m| !tool_search::is_trace(&m.message)))
            })
            .await?;
        history.retain(|m| m.turn >= start && !tool_search::is_trace(&m.message));
        Ok(history)
    }

    fn touch_session(&self, session: &str) {
        let now = Instant::now();
        let mut recent = lock(&self.inner.recent);
        recent.insert(session.to_string(), now);
        recent.retain(|_, t| now.duration_since(*t) < ACTIVE_WINDOW);
        self.forget_idle(&recent);
        metrics()
            .active_sessions
            .set(i64::try_from(recent.len()).unwrap_or(i64::MAX));
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn message_chars(m: &ChatMessage) -> usize {
    m.content.len()
        + m.tool_calls
            .iter()
            .map(|c| c.function.name.len() + c.function.arguments.to_string().len())
            .sum::<usize>()
}

/// Messages loaded from the store, grouped by turn.
pub(crate) fn group_turns(history: &[StoredMessage]) -> Vec<&[StoredMessage]> {
    history.chunk_by(|a, b| a.turn == b.turn).collect()
}

#[cfg(test)]
mod engine_tests;
