//! The models the Ollama double serves and how `/api/tags`, `/api/show` and `/api/ps` describe
//! them, shaped like the recordings of a real Ollama 0.24 (files 03, 04, 05, 22).

use serde_json::{Map, Value, json};

/// `num_ctx` when neither the request nor the model's parameters set it (Ollama 0.24's
/// `OLLAMA_CONTEXT_LENGTH` default).
pub const DEFAULT_NUM_CTX: u64 = 4096;

/// A model the double serves.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Full name with tag, e.g. "llama3.2:latest".
    pub name: String,
    pub capabilities: Vec<String>,
    /// What the model was trained for (`model_info["<arch>.context_length"]`); a larger
    /// `num_ctx` is silently capped to it (file 29).
    pub context_length: u64,
    /// The architecture (`general.architecture`), which prefixes `model_info` keys.
    pub family: String,
    pub parameter_size: String,
    pub size: u64,
    /// The Modelfile's `PARAMETER num_ctx`, if any (shown in `/api/show`'s `parameters`).
    pub num_ctx: Option<u64>,
    /// The Modelfile's `PARAMETER stop` values.
    pub stop: Vec<String>,
    /// What starts a tool call in the model's output, as Ollama derives it from the template
    /// (e.g. `<tool_call>`). Output starting with it is parsed into `tool_calls` when tools are
    /// offered, and held back while it may still become one (file 12d). `None`: never parsed.
    pub tool_call_prefix: Option<String>,
}

impl ModelSpec {
    /// A model with Ollama-like defaults (llama family, 3.2B, 128k context, no `num_ctx`
    /// parameter, output never parsed for tool calls).
    pub fn new(name: &str, capabilities: &[&str]) -> Self {
        Self {
            name: full_name(name),
            capabilities: capabilities.iter().map(|c| (*c).to_string()).collect(),
            context_length: 131_072,
            family: "llama".into(),
            parameter_size: "3.2B".into(),
            size: 2_019_393_189,
            num_ctx: None,
            stop: vec!["<|eot_id|>".into()],
            tool_call_prefix: None,
        }
    }

    /// Gemma 3 270M as created from the recordings' Modelfiles: 32768-token context,
    /// `PARAMETER num_ctx 4096`, tool calls written as `<tool_call>{...}</tool_call>`.
    pub fn gemma(name: &str, capabilities: &[&str]) -> Self {
        Self {
            context_length: 32_768,
            family: "gemma3".into(),
            parameter_size: "268.10M".into(),
            size: 253_114_430,
            num_ctx: Some(4096),
            stop: vec!["<end_of_turn>".into()],
            tool_call_prefix: Some("<tool_call>".into()),
            ..Self::new(name, capabilities)
        }
    }

    /// `gemma-tools` of the recordings (capabilities `completion`, `tools`).
    pub fn gemma_tools() -> Self {
        Self::gemma("gemma-tools", &["completion", "tools"])
    }

    /// `gemma-notools` of the recordings (capability `completion` only).
    pub fn gemma_notools() -> Self {
        Self::gemma("gemma-notools", &["completion"])
    }

    /// `gemma-think` of the recordings (`completion`, `tools`, `thinking`).
    pub fn gemma_think() -> Self {
        Self::gemma("gemma-think", &["completion", "tools", "thinking"])
    }

    pub fn with_context_length(mut self, context_length: u64) -> Self {
        self.context_length = context_length;
        self
    }

    pub fn with_family(mut self, family: &str) -> Self {
        self.family = family.into();
        self
    }

    /// Sets the Modelfile's `PARAMETER num_ctx`.
    pub fn with_num_ctx(mut self, num_ctx: u64) -> Self {
        self.num_ctx = Some(num_ctx);
        self
    }

    pub fn with_tool_call_prefix(mut self, prefix: &str) -> Self {
        self.tool_call_prefix = Some(prefix.into());
        self
    }

    pub(super) fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The window a request gets: its `num_ctx`, else the model's parameter, else Ollama's
    /// default, capped at the model's context length.
    pub fn window(&self, requested: Option<i64>) -> u64 {
        let wanted = requested
            .map(|n| u64::try_from(n.max(1)).unwrap_or(1))
            .or(self.num_ctx)
            .unwrap_or(DEFAULT_NUM_CTX);
        wanted.min(self.context_length.max(1))
    }

    /// The name Ollama's errors use, e.g. `registry.ollama.ai/library/gemma-notools:latest`.
    pub fn registry_name(&self) -> String {
        registry_name(&self.name)
    }

    fn template(&self) -> &'static str {
        if self.supports("thinking") {
            TEMPLATE_THINK
        } else if self.supports("tools") {
            TEMPLATE_TOOLS
        } else {
            TEMPLATE_NOTOOLS
        }
    }

    /// `/api/show`'s `parameters`: Go's `%-30s %s` per line.
    fn parameters(&self) -> String {
        let mut lines = Vec::new();
        if let Some(n) = self.num_ctx {
            lines.push(format!("{:<30} {n}", "num_ctx"));
        }
        for stop in &self.stop {
            lines.push(format!("{:<30} {stop:?}", "stop"));
        }
        lines.join("\n")
    }

    fn modelfile(&self) -> String {
        let mut text = format!(
            "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\nFROM /root/.ollama/models/blobs/sha256-{}\nTEMPLATE \"\"\"{}\"\"\"\n",
            self.name,
            blob_digest(&self.family),
            self.template()
        );
        if let Some(n) = self.num_ctx {
            text.push_str(&format!("PARAMETER num_ctx {n}\n"));
        }
        for stop in &self.stop {
            text.push_str(&format!("PARAMETER stop {stop}\n"));
        }
        text
    }

    fn details(&self) -> Value {
        json!({
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": "Q4_K_M"
        })
    }

    /// One entry of `/api/tags`.
    pub(super) fn tags_entry(&self, modified_at: &str) -> Value {
        json!({
            "name": self.name,
            "model": self.name,
            "modified_at": modified_at,
            "size": self.size,
            "digest": digest(&self.name),
            "details": self.details(),
        })
    }

    /// One entry of `/api/ps` for the model loaded with `context_length` tokens.
    pub(super) fn ps_entry(&self, expires_at: &str, context_length: u64) -> Value {
        json!({
            "name": self.name,
            "model": self.name,
            "size": self.size + self.size / 2 + context_length * 4096,
            "digest": digest(&self.name),
            "details": self.details(),
            "expires_at": expires_at,
            "size_vram": 0,
            "context_length": context_length,
        })
    }

    /// The body of `/api/show`.
    pub(super) fn show(&self, modified_at: &str) -> Value {
        let mut details = self.details();
        details["parent_model"] = json!(format!(
            "/root/.ollama/models/blobs/sha256-{}",
            blob_digest(&self.family)
        ));
        json!({
            "modelfile": self.modelfile(),
            "parameters": self.parameters(),
            "template": self.template(),
            "details": details,
            "model_info": self.model_info(),
            "tensors": tensors(),
            "capabilities": self.capabilities,
            "modified_at": modified_at,
        })
    }

    /// `model_info` with the keys of the recordings, under this model's architecture.
    fn model_info(&self) -> Value {
        let f = &self.family;
        let mut info = Map::new();
        let mut put = |k: String, v: Value| {
            info.insert(k, v);
        };
        for (key, value) in [
            ("attention.head_count", json!(4)),
            ("attention.head_count_kv", json!(1)),
            ("attention.key_length", json!(256)),
            ("attention.layer_norm_rms_epsilon", json!(1e-6)),
            ("attention.sliding_window", json!(512)),
            ("attention.value_length", json!(256)),
            ("block_count", json!(18)),
            ("context_length", json!(self.context_length)),
            ("embedding_length", json!(640)),
            ("feed_forward_length", json!(2048)),
            ("rope.freq_base", json!(1_000_000)),
        ] {
            put(format!("{f}.{key}"), value);
        }
        for (key, value) in [
            ("general.architecture", json!(f)),
            (
                "general.basename",
                json!(self.name.split(':').next().unwrap_or(f)),
            ),
            ("general.file_type", json!(15)),
            ("general.license", json!("")),
            (
                "general.parameter_count",
                json!(parameter_count(&self.parameter_size)),
            ),
            ("general.quantization_version", json!(2)),
            ("general.size_label", json!(self.parameter_size)),
            ("general.tags", Value::Null),
            ("general.type", json!("model")),
            ("tokenizer.ggml.add_bos_token", json!(true)),
            ("tokenizer.ggml.add_eos_token", json!(false)),
            ("tokenizer.ggml.add_sep_token", json!(false)),
            ("tokenizer.ggml.add_space_prefix", json!(false)),
            ("tokenizer.ggml.bos_token_id", json!(2)),
            ("tokenizer.ggml.eos_token_id", json!(1)),
            ("tokenizer.ggml.model", json!("llama")),
            ("tokenizer.ggml.padding_token_id", json!(0)),
            ("tokenizer.ggml.pre", json!("default")),
            // Ollama leaves the large arrays out (null) unless `verbose` is asked for.
            ("tokenizer.ggml.scores", Value::Null),
            ("tokenizer.ggml.token_type", Value::Null),
            ("tokenizer.ggml.tokens", Value::Null),
            ("tokenizer.ggml.unknown_token_id", json!(3)),
        ] {
            put(key.to_string(), value);
        }
        Value::Object(info)
    }
}

/// "268.10M" → 268100000, "3.2B" → 3200000000.
fn parameter_count(size: &str) -> u64 {
    let (number, scale) = match size.chars().last() {
        Some('B') => (&size[..size.len() - 1], 1e9),
        Some('M') => (&size[..size.len() - 1], 1e6),
        Some('K') => (&size[..size.len() - 1], 1e3),
        _ => (size, 1.0),
    };
    (number.parse::<f64>().unwrap_or(0.0) * scale) as u64
}

/// A few tensors shaped like the recordings' (which list 236).
fn tensors() -> Value {
    json!([
        {"name": "output_norm.weight", "type": "F32", "shape": [640]},
        {"name": "token_embd.weight", "type": "Q8_0", "shape": [640, 262_144]},
        {"name": "blk.0.attn_k.weight", "type": "Q5_0", "shape": [640, 256]},
        {"name": "blk.0.attn_norm.weight", "type": "F32", "shape": [640]},
        {"name": "blk.0.ffn_down.weight", "type": "Q4_K", "shape": [2048, 640]},
    ])
}

/// "llama3.2" → "llama3.2:latest", as Ollama names models without a tag.
pub(super) fn full_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// `registry.ollama.ai/library/NAME:TAG` for a short name, as Ollama's errors spell it.
pub(super) fn registry_name(name: &str) -> String {
    let full = full_name(name);
    match full.matches('/').count() {
        0 => format!("registry.ollama.ai/library/{full}"),
        1 => format!("registry.ollama.ai/{full}"),
        _ => full,
    }
}

/// A stable 64-hex-digit stand-in for a digest.
pub(super) fn digest(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for round in 0..4u8 {
        for b in name.bytes().chain([round]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn blob_digest(family: &str) -> String {
    digest(&format!("blob:{family}"))
}

/// The templates of the recordings' Modelfiles (modelfiles/ in the recordings).
const TEMPLATE_NOTOOLS: &str = r#"{{- if .System }}<start_of_turn>user
{{ .System }}<end_of_turn>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"#;
const TEMPLATE_TOOLS: &str = r#"{{- if .System }}<start_of_turn>user
{{ .System }}<end_of_turn>
{{ end }}
{{- if .Tools }}<start_of_turn>user
You can call these tools. To call one, answer only with <tool_call>{"name": NAME, "arguments": {...}}</tool_call>
{{ range .Tools }}{{ . }}
{{ end }}<end_of_turn>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}</tool_call>{{ end }}{{ else }}{{ .Content }}{{ end }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- else if eq .Role "tool" }}<start_of_turn>user
<tool_response>
{{ .Content }}
</tool_response><end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- end }}
{{- end }}"#;
const TEMPLATE_THINK: &str = r#"{{- if .System }}<start_of_turn>user
{{ .System }}<end_of_turn>
{{ end }}
{{- if .Tools }}<start_of_turn>user
You can call these tools. To call one, answer only with <tool_call>{"name": NAME, "arguments": {...}}</tool_call>
{{ range .Tools }}{{ . }}
{{ end }}<end_of_turn>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}</tool_call>{{ end }}{{ else }}{{ .Content }}{{ end }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- else if eq .Role "tool" }}<start_of_turn>user
<tool_response>
{{ .Content }}
</tool_response><end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- end }}
{{- end }}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(full_name("llama3.2"), "llama3.2:latest");
        assert_eq!(
            registry_name("gemma-notools"),
            "registry.ollama.ai/library/gemma-notools:latest"
        );
        assert_eq!(
            registry_name("me/model:7b"),
            "registry.ollama.ai/me/model:7b"
        );
        assert_eq!(parameter_count("268.10M"), 268_100_000);
    }

    #[test]
    fn parameters_and_window() {
        let gemma = ModelSpec::gemma_tools();
        assert_eq!(
            gemma.parameters(),
            "num_ctx                        4096\nstop                           \"<end_of_turn>\""
        );
        assert_eq!(gemma.window(None), 4096);
        assert_eq!(gemma.window(Some(2_000_000)), 32_768);
        assert_eq!(ModelSpec::new("x", &[]).window(None), DEFAULT_NUM_CTX);
    }
}
