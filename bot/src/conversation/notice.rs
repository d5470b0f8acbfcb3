//! What a turn tells the person besides the reply: that Ollama cut the reply, that the model
//! cannot use tools or cannot think. Frontends show [`Notice`]'s text (terminal: a `note:` line on
//! stderr; Discord: a footer under the reply).

use std::fmt;

/// Why Ollama stopped a reply early (`done_reason: "length"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The reply reached `num_predict` tokens.
    NumPredict { limit: u32 },
    /// Prompt and reply filled the context window (`num_ctx`).
    ContextWindow { window: u32 },
    /// Ollama said "length" without either limit being visibly reached.
    Length,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cut::NumPredict { limit } => write!(
                f,
                "the reply was cut at ollama.options.num_predict = {limit} tokens; raise it for longer answers"
            ),
            Cut::ContextWindow { window } => write!(
                f,
                "the reply was cut because the context window ({window} tokens) is full; raise ollama.options.num_ctx or start over with a reset"
            ),
            Cut::Length => write!(f, "the reply was cut by Ollama's length limit"),
        }
    }
}

/// Something the person should be told about their turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The reply is incomplete.
    ReplyCut(Cut),
    /// The model has no `tools` capability: this turn ran without tools. `capable` lists the
    /// allowed models on the server that have it.
    NoTools { model: String, capable: Vec<String> },
    /// `ollama.think` is on but the model has no `thinking` capability: it answers without.
    CannotThink { model: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::ReplyCut(cut) => write!(f, "{cut}"),
            Notice::NoTools { model, capable } if capable.is_empty() => write!(
                f,
                "model {model} cannot use tools, so it answers without them; pull a tool-capable model (e.g. llama3.2 or qwen3) to use them"
            ),
            Notice::NoTools { model, capable } => write!(
                f,
                "model {model} cannot use tools, so it answers without them; models that can: {}",
                capable.join(", ")
            ),
            Notice::CannotThink { model } => write!(
                f,
                "model {model} cannot think (no thinking capability), so it answers without thinking"
            ),
        }
    }
}
