//! One model request, streamed to the observer, and the tool calls it asked for (structured,
//! or recovered from text a model wrote instead of calling).

use futures::StreamExt;
use tracing::debug;

use super::plan::TurnPlan;
use super::{Engine, TurnError, TurnObserver, recover};
use crate::llm::{ChatEvent, ChatRequest, LlmError, ToolCall, Usage};

/// What one model request produced.
#[derive(Default)]
pub(super) struct Round {
    pub content: String,
    /// The content was held back from the observer (it looked like a JSON tool call).
    pub held: bool,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub done_reason: Option<String>,
}

impl Engine {
    /// Sends one request and streams its text to the observer. Text that may turn out to be a
    /// tool call written as JSON is held back until the reply is complete.
    pub(super) async fn model_round(
        &self,
        request: ChatRequest,
        observer: &dyn TurnObserver,
    ) -> Result<Round, TurnError> {
        let tools_offered = !request.tools.is_empty();
        let model = request.model.clone();
        let mut stream = match self.inner.model.chat(request).await {
            Ok(stream) => stream,
            Err(e @ LlmError::ToolsUnsupported { .. }) => {
                // `/api/show` did not say (an older server): the next turns go without tools.
                self.mark_without_tools(&model);
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut round = Round::default();
        while let Some(event) = stream.next().await {
            match event? {
                ChatEvent::Content(delta) => {
                    round.content.push_str(&delta);
                    let first = round.content.len() == delta.len();
                    if tools_offered && (first || round.held) {
                        round.held = recover::might_be_call(&round.content);
                        if !round.held {
                            observer.on_text(&round.content).await;
                        }
                    } else {
                        observer.on_text(&delta).await;
                    }
                }
                ChatEvent::Thinking(_) => {}
                ChatEvent::ToolCalls(calls) => round.tool_calls.extend(calls),
                ChatEvent::Done { usage, done_reason } => {
                    round.usage = usage;
                    round.done_reason = done_reason;
                }
            }
        }
        Ok(round)
    }

    /// The round's tool calls: structured ones, else calls the model wrote as text. Held text
    /// that is not a call is shown now.
    pub(super) async fn recover_calls(
        &self,
        plan: &TurnPlan,
        round: &Round,
        observer: &dyn TurnObserver,
    ) -> Vec<ToolCall> {
        if !round.tool_calls.is_empty() {
            return round.tool_calls.clone();
        }
        if !plan.tools.is_empty()
            && let Some(recovered) = recover::recover_tool_calls(&round.content, &plan.tool_names())
        {
            debug!(
                count = recovered.len(),
                "recovered tool calls written as JSON text"
            );
            return recovered;
        }
        if round.held {
            observer.on_text(&round.content).await;
        }
        Vec::new()
    }
}

pub(super) fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens + b.prompt_tokens,
        completion_tokens: a.completion_tokens + b.completion_tokens,
        total_duration: a.total_duration + b.total_duration,
        load_duration: a.load_duration + b.load_duration,
        prompt_eval_duration: a.prompt_eval_duration + b.prompt_eval_duration,
        eval_duration: a.eval_duration + b.eval_duration,
    }
}
