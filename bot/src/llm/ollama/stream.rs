//! The streamed `/api/chat` reply: NDJSON pieces decoded into events within the deadline, and
//! the request's metrics recorded as the caller consumes them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::errors::describe;
use crate::llm::wire::LineDecoder;
use crate::llm::{ChatEvent, LlmError, Usage};
use crate::metrics::{ModelOutcomeLabels, metrics};

pub(super) type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// What the streamed reply needs between two events.
pub(super) struct StreamState {
    body: BodyStream,
    decoder: LineDecoder,
    /// Decoded events not yet handed out (one network piece may hold many).
    pending: VecDeque<ChatEvent>,
    /// An error found while decoding; handed out after the events decoded before it.
    error: Option<LlmError>,
    finished: bool,
    deadline: Instant,
    timeout: Duration,
    recorder: Recorder,
}

impl StreamState {
    pub(super) fn new(
        body: BodyStream,
        deadline: Instant,
        timeout: Duration,
        recorder: Recorder,
    ) -> Self {
        Self {
            body,
            decoder: LineDecoder::default(),
            pending: VecDeque::new(),
            error: None,
            finished: false,
            deadline,
            timeout,
            recorder,
        }
    }

    pub(super) async fn next(mut self) -> Option<(Result<ChatEvent, LlmError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.recorder.event(&event);
                if matches!(event, ChatEvent::Done { .. }) {
                    // Anything after `done` is ignored: the reply is complete.
                    self.finished = true;
                }
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            if let Some(error) = self.error.take() {
                self.finished = true;
                self.recorder.failure(&error);
                return Some((Err(error), self));
            }
            match tokio::time::timeout_at(self.deadline, self.body.next()).await {
                Err(_) => {
                    self.error = Some(LlmError::Timeout {
                        after: self.timeout,
                    })
                }
                Ok(Some(Ok(piece))) => {
                    if let Err(e) = self.decoder.feed(&piece, &mut self.pending) {
                        self.error = Some(e);
                    }
                }
                Ok(Some(Err(e))) if e.is_timeout() => {
                    self.error = Some(LlmError::Timeout {
                        after: self.timeout,
                    })
                }
                Ok(Some(Err(e))) => {
                    self.error = Some(LlmError::Broken {
                        reason: describe(&e),
                    });
                }
                Ok(None) => {
                    if let Err(e) = self.decoder.finish(&mut self.pending) {
                        self.error = Some(e);
                    }
                }
            }
        }
    }
}

/// Records one chat request's metrics as its stream is consumed: time to first token on the
/// first content, thinking or tool-call event; tokens and speed on `Done`; the outcome once.
pub(super) struct Recorder {
    model: String,
    started: Instant,
    first_token_seen: bool,
    outcome_recorded: bool,
    span: tracing::Span,
}

impl Recorder {
    pub(super) fn new(model: &str, span: tracing::Span) -> Self {
        Self {
            model: model.to_string(),
            started: Instant::now(),
            first_token_seen: false,
            outcome_recorded: false,
            span,
        }
    }

    fn event(&mut self, event: &ChatEvent) {
        match event {
            ChatEvent::Content(_) | ChatEvent::Thinking(_) | ChatEvent::ToolCalls(_)
                if !self.first_token_seen =>
            {
                self.first_token_seen = true;
                metrics()
                    .time_to_first_token
                    .get_or_create(&metrics().model(&self.model))
                    .observe(self.started.elapsed().as_secs_f64());
            }
            ChatEvent::Done { usage, done_reason } => self.success(usage, done_reason.as_deref()),
            _ => {}
        }
    }

    fn success(&mut self, usage: &Usage, done_reason: Option<&str>) {
        let m = metrics();
        let labels = m.model(&self.model);
        m.prompt_tokens
            .get_or_create(&labels)
            .inc_by(u64::from(usage.prompt_tokens));
        m.completion_tokens
            .get_or_create(&labels)
            .inc_by(u64::from(usage.completion_tokens));
        if let Some(speed) = usage.tokens_per_second() {
            m.tokens_per_second.get_or_create(&labels).observe(speed);
        }
        tracing::debug!(
            parent: &self.span,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            done_reason = done_reason.unwrap_or(""),
            elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "model reply complete"
        );
        self.finish("ok");
    }

    pub(super) fn failure(&mut self, error: &LlmError) {
        // Debug only: the error goes back to the caller, who tells the user once.
        tracing::debug!(parent: &self.span, kind = error.kind(), error = %error, "model request failed");
        self.finish(error.kind());
    }

    fn finish(&mut self, outcome: &str) {
        if self.outcome_recorded {
            return;
        }
        self.outcome_recorded = true;
        let m = metrics();
        m.model_requests
            .get_or_create(&ModelOutcomeLabels {
                model: self.model.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        m.model_request_duration
            .get_or_create(&m.model(&self.model))
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // The caller dropped the stream before `done` (e.g. the user cancelled the turn).
        self.finish("cancelled");
    }
}
