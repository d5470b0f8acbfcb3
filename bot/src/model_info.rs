//! What Ollama's `POST /api/show` says of a model, read once for both binaries: the bot (window,
//! tools, thinking) and the operator's `ModelReady` check. Serde only, so the operator gets it
//! without the bot's runtime.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What `/api/show` says a model can do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelDetails {
    pub name: String,
    /// e.g. "completion", "tools", "thinking", "vision", "embedding". Empty when the server
    /// does not say (Ollama before 0.6).
    pub capabilities: Vec<String>,
    /// `model_info["<arch>.context_length"]`: the most context the model takes (Ollama caps a
    /// larger `num_ctx` at it without a word).
    pub context_length: Option<u64>,
    /// The `num_ctx` of the model's own parameters (its Modelfile), used when none is configured.
    #[serde(default)]
    pub num_ctx: Option<u32>,
}

impl ModelDetails {
    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// `POST /api/show`.
#[derive(Debug, Deserialize)]
pub struct ShowResponse {
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub model_info: Map<String, Value>,
    /// The Modelfile's parameters, one `name value` per line (`num_ctx    4096`).
    #[serde(default)]
    pub parameters: Option<String>,
}

impl ShowResponse {
    pub fn into_details(self, name: &str) -> ModelDetails {
        // The key is `<architecture>.context_length`, e.g. `llama.context_length`.
        let context_length = self
            .model_info
            .iter()
            .find(|(k, _)| k.ends_with(".context_length"))
            .and_then(|(_, v)| v.as_u64());
        let num_ctx = self.parameters.as_deref().and_then(|p| {
            p.lines().find_map(|line| {
                let mut parts = line.split_whitespace();
                (parts.next() == Some("num_ctx"))
                    .then(|| parts.next()?.parse::<u32>().ok())
                    .flatten()
            })
        });
        ModelDetails {
            name: name.to_string(),
            capabilities: self.capabilities,
            context_length,
            num_ctx,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use serde_json::json;

    #[test]
    fn show_context_length_from_any_architecture() {
        let show: ShowResponse = serde_json::from_value(json!({
            "capabilities": ["completion", "tools"],
            "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960, "qwen3.block_count": 36}
        }))
        .unwrap();
        let d = show.into_details("qwen3");
        assert_eq!(d.context_length, Some(40960));
        assert!(d.supports("tools"));
        assert!(!d.supports("thinking"));
    }

    #[test]
    fn show_num_ctx_from_the_modelfile_parameters() {
        // As in the recordings (file 04): whitespace-aligned `name value` lines.
        let show: ShowResponse = serde_json::from_value(json!({
            "parameters": "num_ctx                        4096\nstop                           \"<end_of_turn>\"",
            "capabilities": ["completion", "tools"],
            "model_info": {"gemma3.context_length": 32768}
        }))
        .unwrap();
        let d = show.into_details("gemma-tools");
        assert_eq!((d.num_ctx, d.context_length), (Some(4096), Some(32768)));
        let show: ShowResponse =
            serde_json::from_value(json!({"parameters": "stop \"x\""})).unwrap();
        assert_eq!(show.into_details("m").num_ctx, None);
    }
}
