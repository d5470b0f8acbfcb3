//! What a turn sends, decided once per turn ([`TurnPlan`]: system prompt, tools, window, budget)
//! and fitted to the window before every request ([`Engine::prompt`]).
//!
//! Ollama evaluates only what follows the prefix a request shares with the previous one, so the
//! prompt is kept stable: the tool list is fixed per session (all tools, or on demand with a
//! catalog that never changes and loaded tools that are only ever appended), and history is
//! append-only between compactions that drop enough at once for several turns to follow.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

use super::{Engine, ModelProfile, TurnError, TurnRequest, lock, tool_search, trim};
use crate::config::ToolLoading;
use crate::llm::{ChatMessage, ChatRequest, Usage};
use crate::store::StoredMessage;
use crate::tool::ToolSpec;

use super::notice::Cut;

/// A first guess before Ollama has told us anything: about four characters a token.
const DEFAULT_TOKENS_PER_CHAR: f64 = 0.25;
/// Ollama's context window when neither the configuration nor the model sets `num_ctx`.
const DEFAULT_NUM_CTX: u32 = 4096;
/// Tokens kept free for the reply when `num_predict` is not set.
const REPLY_RESERVE: u32 = 1024;
/// Tokens of the chat template around the tool definitions and the system prompt.
const FIXED_OVERHEAD: u32 = 16;

/// What keeps a session's prompt prefix stable between requests (kept in memory: after a
/// restart Ollama's cache is cold anyway).
pub(super) struct SessionState {
    /// The model the decisions below were made for.
    model: String,
    /// Tools on demand (decided at the session's first request for this model).
    on_demand: Option<bool>,
    /// Tools loaded on demand, in the order they were first loaded.
    loaded: Vec<String>,
    /// The first turn of history sent; moved forward only by a compaction.
    pub history_start: i64,
    /// Notices already given (`model` + kind).
    pub said: HashSet<String>,
}

impl Default for SessionState {
    fn default() -> Self {
        Self {
            model: String::new(),
            on_demand: None,
            loaded: Vec::new(),
            history_start: i64::MIN,
            said: HashSet::new(),
        }
    }
}

/// The context window of one model and what of it is kept for the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    /// Tokens the model really gets: the configured `num_ctx` capped at the model's context
    /// length, else the model's own `num_ctx`, else Ollama's default.
    pub num_ctx: u32,
    /// `num_predict`, when configured.
    pub num_predict: Option<u32>,
    /// Tokens the prompt leaves free for the reply.
    pub reserve: u32,
}

impl Window {
    pub fn new(options: &serde_json::Map<String, Value>, profile: &ModelProfile) -> Self {
        let option = |name: &str| {
            options
                .get(name)
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
                .filter(|n| *n > 0)
        };
        let cap = |n: u64| {
            let n = profile.context_length.map_or(n, |max| n.min(max));
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        let num_ctx = match option("num_ctx") {
            Some(n) => cap(n),
            None => cap(u64::from(profile.num_ctx.unwrap_or(DEFAULT_NUM_CTX))),
        };
        let num_predict = option("num_predict").map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let reserve = num_predict.unwrap_or(REPLY_RESERVE).min(num_ctx / 2);
        Self {
            num_ctx,
            num_predict,
            reserve,
        }
    }

    /// Why Ollama cut a reply that ended with `done_reason: "length"`.
    pub fn cut(&self, done_reason: Option<&str>, usage: &Usage) -> Option<Cut> {
        if done_reason != Some("length") {
            return None;
        }
        let used = u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens);
        Some(match self.num_predict {
            Some(limit) if usage.completion_tokens >= limit => Cut::NumPredict { limit },
            _ if used >= u64::from(self.num_ctx) => Cut::ContextWindow {
                window: self.num_ctx,
            },
            _ => Cut::Length,
        })
    }
}

/// One turn's decisions, made once before its first request.
pub(super) struct TurnPlan {
    pub model: String,
    pub system: String,
    /// Every tool this user may use, schemas compacted, in the hub's fixed order. Empty when the
    /// model cannot use tools.
    pub tools: Vec<ToolSpec>,
    /// Characters of all of `tools` ([`tool_chars`] summed).
    pub tools_chars: usize,
    /// `find_tools` and the loaded tools instead of all of them.
    pub on_demand: bool,
    pub window: Window,
    /// The configured history budget; each request narrows it to what the window leaves.
    pub budget: trim::Budget,
    /// `think` as sent: only models that can think are asked to.
    pub think: bool,
}

impl TurnPlan {
    pub async fn new(
        engine: &Engine,
        request: &TurnRequest,
        model: &str,
    ) -> Result<Self, TurnError> {
        let inner = &engine.inner;
        let profile = engine.model_profile(model).await?;
        let system = request
            .system_prompt
            .clone()
            .unwrap_or_else(|| inner.chat.system_prompt.clone());
        let tools: Vec<ToolSpec> = if profile.tools {
            inner
                .tools
                .tools()
                .into_iter()
                .filter(|t| {
                    request
                        .tool_filter
                        .as_ref()
                        .is_none_or(|allow| allow(&t.name))
                })
                .collect()
        } else {
            Vec::new()
        };
        let window = Window::new(&inner.ollama.options, &profile);
        let tokens_per_char = engine.tokens_per_char(model);
        let tools_chars = engine.tools_chars(&tools);
        let on_demand = {
            let mut sessions = lock(&inner.sessions);
            let state = sessions.entry(request.session.clone()).or_default();
            if state.model != model {
                state.model = model.to_string();
                state.on_demand = None;
            }
            *state
                .on_demand
                .get_or_insert_with(|| match inner.chat.tool_loading {
                    ToolLoading::All => false,
                    ToolLoading::OnDemand => true,
                    ToolLoading::Auto => {
                        tools_chars as f64 * tokens_per_char
                            > f64::from(window.num_ctx) * inner.chat.tool_context_share
                    }
                })
        } && !tools.is_empty();
        Ok(Self {
            model: model.to_string(),
            system,
            tools,
            tools_chars,
            on_demand,
            window,
            budget: trim::Budget {
                tokens: inner.chat.history_token_budget,
                old_tool_result_chars: inner.chat.old_tool_result_chars,
                full_tool_result_turns: inner.chat.full_tool_result_turns,
                tokens_per_char,
            },
            think: inner.ollama.think && profile.thinking,
        })
    }

    /// Names a model may call: every tool (on demand, loaded or not: the host resolves them).
    pub fn tool_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
        if self.on_demand {
            names.push(tool_search::FIND_TOOLS);
        }
        names
    }
}

/// One request, ready to send.
pub(super) struct Prompt {
    pub request: ChatRequest,
    /// Characters of everything Ollama counts in `prompt_eval_count` (messages and tools).
    pub chars: usize,
}

impl Engine {
    /// The next request of the turn: the tools to offer, this turn's messages fitted to the
    /// window (earlier tool results of this turn shortened first), and the history that fits
    /// what is left.
    pub(super) fn prompt(
        &self,
        plan: &TurnPlan,
        session: &str,
        history: &[StoredMessage],
        current: &mut [ChatMessage],
    ) -> Result<Prompt, TurnError> {
        let tokens_per_char = self.tokens_per_char(&plan.model);
        let tools = self.offered_tools(plan, session, history, current);
        let tool_chars: usize = if plan.on_demand {
            tools.iter().map(tool_chars).sum()
        } else {
            plan.tools_chars
        };
        let fixed = trim::tokens_for_chars(tool_chars + plan.system.len(), tokens_per_char)
            + FIXED_OVERHEAD;
        let room = plan
            .window
            .num_ctx
            .saturating_sub(plan.window.reserve)
            .saturating_sub(fixed);
        let current_tokens = trim::fit_current(
            current,
            room,
            tokens_per_char,
            plan.budget.old_tool_result_chars,
        )
        .map_err(|tokens| TurnError::MessageTooLong {
            model: plan.model.clone(),
            tokens,
            room,
        })?;
        let budget = trim::Budget {
            tokens: plan.budget.tokens.min(room.saturating_sub(current_tokens)),
            tokens_per_char,
            ..plan.budget
        };
        let start = lock(&self.inner.sessions)
            .get(session)
            .map_or(i64::MIN, |s| s.history_start);
        let (messages, new_start) = trim::compose(&plan.system, history, start, current, &budget);
        if new_start != start {
            tracing::debug!(
                start = new_start,
                "history compacted to leave room for the next turns"
            );
            lock(&self.inner.sessions)
                .entry(session.to_string())
                .or_default()
                .history_start = new_start;
        }
        // Ollama counts the offered tools in prompt_eval_count too; leaving them out of the
        // characters would make every message look several times its real token cost.
        let chars = tool_chars + messages.iter().map(super::message_chars).sum::<usize>();
        Ok(Prompt {
            request: ChatRequest {
                model: plan.model.clone(),
                messages,
                tools,
                options: self.inner.ollama.options.clone(),
                think: Some(plan.think),
                keep_alive: self.inner.ollama.keep_alive.clone(),
            },
            chars,
        })
    }

    /// All tools; or on demand `find_tools` (a catalog of every tool, which never changes) and
    /// the tools loaded so far in this session, in the order they were loaded.
    fn offered_tools(
        &self,
        plan: &TurnPlan,
        session: &str,
        history: &[StoredMessage],
        current: &[ChatMessage],
    ) -> Vec<ToolSpec> {
        if !plan.on_demand {
            return plan.tools.clone();
        }
        let newly = tool_search::loaded(
            history.iter().map(|m| &m.message).chain(current.iter()),
            &plan.tools,
        );
        let mut sessions = lock(&self.inner.sessions);
        let state = sessions.entry(session.to_string()).or_default();
        for name in newly {
            if !state.loaded.contains(&name) {
                state.loaded.push(name);
            }
        }
        let catalog: Vec<&ToolSpec> = plan.tools.iter().collect();
        let mut out = vec![tool_search::find_tools_spec(&catalog)];
        out.extend(
            state
                .loaded
                .iter()
                .filter_map(|n| plan.tools.iter().find(|t| &t.name == n))
                .cloned(),
        );
        out
    }

    /// [`tool_chars`] of all `tools`, remembered for the last list asked about: every turn of
    /// a session offers the same tools, and rendering each schema to count it was a large part
    /// of a turn's cost.
    fn tools_chars(&self, tools: &[ToolSpec]) -> usize {
        let mut last = lock(&self.inner.tools_chars);
        if last.0 != tools {
            *last = (tools.to_vec(), tools.iter().map(tool_chars).sum());
        }
        last.1
    }

    pub(super) fn tokens_per_char(&self, model: &str) -> f64 {
        lock(&self.inner.calibration)
            .get(model)
            .copied()
            .unwrap_or(DEFAULT_TOKENS_PER_CHAR)
    }

    /// Learns tokens per character from Ollama's own prompt count of the last request.
    pub(super) fn learn_calibration(
        &self,
        model: &str,
        num_ctx: u32,
        (prompt_tokens, prompt_chars): (u32, usize),
    ) {
        // Tiny prompts say little; a prompt that filled the window was cut by Ollama, so its
        // count says nothing about the characters we sent.
        if prompt_tokens < 32 || prompt_chars < 128 || prompt_tokens >= num_ctx {
            return;
        }
        let ratio = f64::from(prompt_tokens) / prompt_chars as f64;
        if !(0.05..=2.0).contains(&ratio) {
            return;
        }
        let mut map = lock(&self.inner.calibration);
        let entry = map.entry(model.to_string()).or_insert(ratio);
        *entry = 0.7 * *entry + 0.3 * ratio;
    }

    /// Forgets per-session state of sessions no longer active.
    pub(super) fn forget_idle(&self, active: &HashMap<String, std::time::Instant>) {
        lock(&self.inner.sessions).retain(|s, _| active.contains_key(s));
    }
}

/// Characters a tool definition adds to the prompt (its name, description and schema).
pub(super) fn tool_chars(t: &ToolSpec) -> usize {
    t.name.len() + t.description.len() + t.parameters.to_string().len()
}
