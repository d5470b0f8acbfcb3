//! Talking to the model: the [`ChatModel`] trait the conversation engine uses, the wire types of
//! Ollama's `/api/chat`, and the Ollama client.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};

pub mod ollama;
pub mod retry;
mod wire;
pub use ollama::OllamaClient;
// Tools offered to the model are part of the shared tool vocabulary.
pub use crate::model_info::ModelDetails;
pub use crate::tool::ToolSpec;

/// Who said a message, as Ollama's `/api/chat` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of a conversation, in Ollama's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `tool` messages: the (namespaced) tool whose result this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// For `tool` messages: the `id` of the call this answers, when the model gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            thinking: None,
            tool_calls: Vec::new(),
            tool_name: None,
            tool_call_id: None,
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
    pub fn tool(tool_name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_name: Some(tool_name.into()),
            ..Self::new(Role::Tool, content)
        }
    }
    /// The result of `call`: named like it, and carrying its `id` when it has one.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: call.id.clone(),
            ..Self::tool(call.function.name.clone(), content)
        }
    }
}

/// A tool call as Ollama sends it: `{"function": {"name": ..., "arguments": {...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// Always a JSON object on the wire (Ollama rejects a string here).
    #[serde(default)]
    pub arguments: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl ToolCall {
    pub fn new(name: impl Into<String>, arguments: serde_json::Value) -> Self {
        Self {
            id: None,
            function: FunctionCall {
                name: name.into(),
                arguments,
                index: None,
            },
        }
    }
}

/// What the engine asks of the model for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    /// Passed to Ollama as `options`.
    pub options: serde_json::Map<String, serde_json::Value>,
    /// `think` on the wire; `None` leaves it out (models without thinking reject `true`).
    pub think: Option<bool>,
    pub keep_alive: Option<String>,
}

/// Ollama's own token counts and timings from the final `done` chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_duration: Duration,
    pub load_duration: Duration,
    pub prompt_eval_duration: Duration,
    pub eval_duration: Duration,
}

impl Usage {
    /// Completion tokens per second of generation, as Ollama measured it.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let secs = self.eval_duration.as_secs_f64();
        (secs > 0.0 && self.completion_tokens > 0).then(|| f64::from(self.completion_tokens) / secs)
    }
}

/// One piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Visible text, in order.
    Content(String),
    /// Reasoning text of thinking models.
    Thinking(String),
    /// Structured tool calls (Ollama sends them whole, usually in one chunk).
    ToolCalls(Vec<ToolCall>),
    /// The last event: the model finished; `done_reason` as Ollama gives it ("stop", "length", ...).
    Done {
        usage: Usage,
        done_reason: Option<String>,
    },
}

pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, LlmError>> + Send>>;

/// A model as `/api/tags` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub parameter_size: Option<String>,
}

/// Why a model request failed; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("model `{model}` is not available on the Ollama server; run `ollama pull {model}`")]
    ModelNotFound { model: String },
    #[error(
        "model `{model}` does not support tools; choose a model with tool support (e.g. llama3.2, qwen3)"
    )]
    ToolsUnsupported { model: String },
    #[error(
        "cannot reach Ollama at {url}: {reason}; is `ollama serve` running and OLLAMA_HOST / ollama.url right?"
    )]
    Connect { url: String, reason: String },
    #[error(
        "Ollama did not answer within {after:?}; try again, or raise ollama.request_timeout_secs"
    )]
    Timeout { after: Duration },
    #[error("Ollama answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error(
        "Ollama refused the request ({status}: {message}); retrying cannot help: check ollama.options, ollama.keep_alive and ollama.think in the configuration (`ollama-mcp-bot check-config`)"
    )]
    Rejected { status: u16, message: String },
    #[error("Ollama reported an error mid-reply: {message}")]
    Stream { message: String },
    #[error(
        "the connection to Ollama broke mid-reply ({reason}); did the server stop or restart? Try again"
    )]
    Broken { reason: String },
    #[error("Ollama sent something that is not valid /api/chat output: {detail}")]
    Protocol { detail: String },
}

impl LlmError {
    /// A short stable name for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::ModelNotFound { .. } => "model_not_found",
            LlmError::ToolsUnsupported { .. } => "tools_unsupported",
            LlmError::Connect { .. } => "connect",
            LlmError::Timeout { .. } => "timeout",
            LlmError::Server { .. } => "server",
            LlmError::Rejected { .. } => "rejected",
            LlmError::Stream { .. } => "stream",
            LlmError::Broken { .. } => "broken",
            LlmError::Protocol { .. } => "protocol",
        }
    }
}

/// A chat model the engine can talk to. Implemented by [`OllamaClient`]; tests may use others.
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    /// Starts a streamed chat. Retries (connect errors, 429, 5xx) happen before the stream is
    /// returned, never after content has streamed.
    async fn chat(&self, request: ChatRequest) -> Result<ChatStream, LlmError>;
    /// Models the server has (`/api/tags`).
    async fn list_models(&self) -> Result<Vec<ModelSummary>, LlmError>;
    /// Capabilities and context length of one model (`/api/show`).
    async fn show(&self, model: &str) -> Result<ModelDetails, LlmError>;
}
