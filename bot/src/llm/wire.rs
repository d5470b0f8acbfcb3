//! Ollama's HTTP wire types (`/api/chat`, `/api/tags`, `/api/show`) and the NDJSON line decoder.
//! Over 450 lines: half of it is its unit and property tests of the decoder.
//!
//! Ollama is written in Go and ignores unknown fields, and it adds fields between versions: the
//! response types here read only what we use and never deny unknown fields.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{
    ChatEvent, ChatMessage, ChatRequest, LlmError, ModelSummary, Role, ToolCall, ToolSpec, Usage,
};

/// The body of `POST /api/chat`.
#[derive(Debug, Serialize)]
pub(crate) struct ChatBody<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessage<'a>>,
    /// The tools as [`tools_json`] rendered them (the client keeps the last rendering: a
    /// session offers the same tools in every request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a RawValue>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub options: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<&'a str>,
}

impl<'a> ChatBody<'a> {
    /// The body of `request`, whose tools `tools` holds as [`tools_json`] rendered them.
    pub fn new(request: &'a ChatRequest, tools: Option<&'a RawValue>) -> Self {
        Self {
            model: &request.model,
            messages: request.messages.iter().map(WireMessage::from).collect(),
            tools,
            stream: true,
            options: &request.options,
            think: request.think,
            keep_alive: request.keep_alive.as_deref(),
        }
    }
}

/// A message as Ollama takes it. Separate from [`ChatMessage`] so that tool-call arguments are
/// always sent as an object: Ollama rejects anything else with a Go unmarshal error.
#[derive(Debug, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: Role,
    pub content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        Self {
            role: m.role,
            content: &m.content,
            thinking: m.thinking.as_deref(),
            tool_calls: m.tool_calls.iter().map(WireToolCall::from).collect(),
            tool_name: m.tool_name.as_deref(),
            tool_call_id: m.tool_call_id.as_deref(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct WireToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub function: WireFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireFunctionCall<'a> {
    pub name: &'a str,
    pub arguments: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(c: &'a ToolCall) -> Self {
        Self {
            id: c.id.as_deref(),
            function: WireFunctionCall {
                name: &c.function.name,
                arguments: arguments_object(&c.function.arguments),
                index: c.function.index,
            },
        }
    }
}

/// Tool-call arguments as an object: `null` (no arguments) becomes `{}`, and a string that holds
/// a JSON object (some models write that) becomes the object. Anything else is sent unchanged so
/// that Ollama's own error reaches the user rather than silently lost arguments.
fn arguments_object(arguments: &Value) -> Value {
    match arguments {
        Value::Null => Value::Object(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => arguments.clone(),
        },
        other => other.clone(),
    }
}

/// The `tools` array of a request as JSON, `None` when there are no tools (the field is left out).
pub(crate) fn tools_json(tools: &[ToolSpec]) -> Result<Option<Box<RawValue>>, serde_json::Error> {
    if tools.is_empty() {
        return Ok(None);
    }
    let wire: Vec<WireTool<'_>> = tools.iter().map(WireTool::from).collect();
    serde_json::value::to_raw_value(&wire).map(Some)
}

/// `{"type": "function", "function": {"name", "description", "parameters"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: &'a ToolSpec,
}

impl<'a> From<&'a ToolSpec> for WireTool<'a> {
    fn from(spec: &'a ToolSpec) -> Self {
        Self {
            kind: "function",
            function: spec,
        }
    }
}

/// One NDJSON line of a streamed `/api/chat` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatChunk {
    #[serde(default)]
    pub message: Option<ChunkMessage>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub total_duration: Option<u64>,
    #[serde(default)]
    pub load_duration: Option<u64>,
    #[serde(default)]
    pub prompt_eval_count: Option<u32>,
    #[serde(default)]
    pub prompt_eval_duration: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u32>,
    #[serde(default)]
    pub eval_duration: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChunkMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl ChatChunk {
    fn usage(&self) -> Usage {
        let ns = |v: Option<u64>| Duration::from_nanos(v.unwrap_or(0));
        Usage {
            prompt_tokens: self.prompt_eval_count.unwrap_or(0),
            completion_tokens: self.eval_count.unwrap_or(0),
            total_duration: ns(self.total_duration),
            load_duration: ns(self.load_duration),
            prompt_eval_duration: ns(self.prompt_eval_duration),
            eval_duration: ns(self.eval_duration),
        }
    }

    /// The events this line carries, in order: thinking, content, tool calls, then `Done`.
    fn into_events(self, out: &mut VecDeque<ChatEvent>) {
        let usage = self.usage();
        if let Some(message) = self.message {
            if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
                out.push_back(ChatEvent::Thinking(thinking));
            }
            if let Some(content) = message.content.filter(|c| !c.is_empty()) {
                out.push_back(ChatEvent::Content(content));
            }
            if let Some(calls) = message.tool_calls.filter(|c| !c.is_empty()) {
                out.push_back(ChatEvent::ToolCalls(calls));
            }
        }
        if self.done {
            out.push_back(ChatEvent::Done {
                usage,
                done_reason: self.done_reason,
            });
        }
    }
}

/// A short, single-line excerpt of bad input for an error message.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Longest NDJSON line accepted; Ollama's lines are small (one token, or one set of tool calls).
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Turns the bytes of an NDJSON body, in whatever pieces the network delivers them, into
/// [`ChatEvent`]s. A line may span several pieces and one piece may hold several lines.
#[derive(Debug, Default)]
pub(crate) struct LineDecoder {
    buf: Vec<u8>,
    done: bool,
}

impl LineDecoder {
    /// Feeds one network piece; complete lines become events in `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        self.buf.extend_from_slice(piece);
        if self.buf.len() > MAX_LINE_BYTES && !self.buf.contains(&b'\n') {
            // A server that never ends its line must not make us buffer without bound.
            return Err(LlmError::Protocol {
                detail: format!(
                    "a line longer than {MAX_LINE_BYTES} bytes: {}",
                    excerpt(&self.buf)
                ),
            });
        }
        // Lines are decoded where they lie and the buffer is shifted once per piece.
        let mut start = 0;
        let mut result = Ok(());
        while !self.done {
            let Some(newline) = self.buf[start..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let end = start + newline;
            result = Self::line(&mut self.done, &self.buf[start..end], out);
            start = end + 1;
            if result.is_err() {
                break;
            }
        }
        self.buf.drain(..start);
        result
    }

    /// The body ended: a last line without a newline still counts; no `done` line is an error.
    pub fn finish(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        if !self.done && !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            Self::line(&mut self.done, &rest, out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(LlmError::Protocol {
                detail: "stream ended early, without the final `done` line".into(),
            })
        }
    }

    fn line(done: &mut bool, line: &[u8], out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        let chunk: ChatChunk = serde_json::from_slice(trimmed).map_err(|e| LlmError::Protocol {
            detail: format!("malformed NDJSON line ({e}): {}", excerpt(trimmed)),
        })?;
        if let Some(message) = chunk.error {
            return Err(LlmError::Stream { message });
        }
        if chunk.message.is_none() && !chunk.done {
            return Err(LlmError::Protocol {
                detail: format!(
                    "line has neither `message`, `done` nor `error`: {}",
                    excerpt(trimmed)
                ),
            });
        }
        *done = chunk.done;
        chunk.into_events(out);
        Ok(())
    }
}

/// `{"error": "..."}` bodies of non-2xx answers.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: String,
}

/// The message of an error answer: Ollama's `error` field, else the body itself (shortened).
pub(crate) fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) if body.trim_ascii().is_empty() => "(empty body)".into(),
        Err(_) => excerpt(body.trim_ascii()),
    }
}

/// `GET /api/tags`.
#[derive(Debug, Deserialize)]
pub(crate) struct TagsResponse {
    #[serde(default)]
    pub models: Vec<TagsModel>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TagsModel {
    pub name: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub details: Option<TagsDetails>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TagsDetails {
    #[serde(default)]
    pub parameter_size: Option<String>,
}

impl From<TagsModel> for ModelSummary {
    fn from(m: TagsModel) -> Self {
        Self {
            name: m.name,
            size: m.size,
            parameter_size: m
                .details
                .and_then(|d| d.parameter_size)
                .filter(|s| !s.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use serde_json::json;

    fn decode_pieces(pieces: &[&[u8]]) -> (Vec<ChatEvent>, Result<(), LlmError>) {
        let mut d = LineDecoder::default();
        let mut out = VecDeque::new();
        for p in pieces {
            if let Err(e) = d.feed(p, &mut out) {
                return (out.into(), Err(e));
            }
        }
        let r = d.finish(&mut out);
        (out.into(), r)
    }

    const HELLO: &str = concat!(
        r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hel"},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"lo"},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":3000,"load_duration":1000,"prompt_eval_count":12,"prompt_eval_duration":500,"eval_count":2,"eval_duration":1000000000}"#,
        "\n"
    );

    fn expected_hello() -> Vec<ChatEvent> {
        vec![
            ChatEvent::Content("Hel".into()),
            ChatEvent::Content("lo".into()),
            ChatEvent::Done {
                usage: Usage {
                    prompt_tokens: 12,
                    completion_tokens: 2,
                    total_duration: Duration::from_nanos(3000),
                    load_duration: Duration::from_nanos(1000),
                    prompt_eval_duration: Duration::from_nanos(500),
                    eval_duration: Duration::from_secs(1),
                },
                done_reason: Some("stop".into()),
            },
        ]
    }

    #[test]
    fn decodes_whole_body_in_one_piece() {
        let (events, r) = decode_pieces(&[HELLO.as_bytes()]);
        r.unwrap();
        assert_eq!(events, expected_hello());
    }

    #[test]
    fn decodes_any_split_of_the_body() {
        let bytes = HELLO.as_bytes();
        // Every single split point, and byte-by-byte: the result never changes.
        for at in 0..=bytes.len() {
            let (events, r) = decode_pieces(&[&bytes[..at], &bytes[at..]]);
            r.unwrap();
            assert_eq!(events, expected_hello(), "split at {at}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let (events, r) = decode_pieces(&singles);
        r.unwrap();
        assert_eq!(events, expected_hello());
    }

    #[test]
    fn crlf_blank_lines_and_missing_final_newline_are_accepted() {
        let body = HELLO.replace('\n', "\r\n\r\n");
        let body = body.trim_end();
        let (events, r) = decode_pieces(&[body.as_bytes()]);
        r.unwrap();
        assert_eq!(events, expected_hello());
    }

    #[test]
    fn thinking_and_tool_calls() {
        let body = concat!(
            r#"{"message":{"role":"assistant","content":"","thinking":"hmm"},"done":false}"#,
            "\n",
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"memory__read_graph","arguments":{"a":{"b":[1,2]}},"index":0}}]},"done":false}"#,
            "\n",
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#,
            "\n"
        );
        let (events, r) = decode_pieces(&[body.as_bytes()]);
        r.unwrap();
        assert_eq!(events[0], ChatEvent::Thinking("hmm".into()));
        let ChatEvent::ToolCalls(calls) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(calls[0].function.name, "memory__read_graph");
        assert_eq!(calls[0].function.arguments, json!({"a": {"b": [1, 2]}}));
        assert!(matches!(events[2], ChatEvent::Done { .. }));
    }

    #[test]
    fn error_line_is_a_stream_error() {
        let body = concat!(
            r#"{"message":{"role":"assistant","content":"Hi"},"done":false}"#,
            "\n",
            r#"{"error":"an error was encountered while running the model: CUDA out of memory"}"#,
            "\n"
        );
        let (events, r) = decode_pieces(&[body.as_bytes()]);
        assert_eq!(events, vec![ChatEvent::Content("Hi".into())]);
        match r {
            Err(LlmError::Stream { message }) => assert!(message.contains("CUDA out of memory")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_line_is_a_protocol_error_with_excerpt() {
        let (_, r) = decode_pieces(&[b"{\"message\": {\"content\": \"x\"}, oops\n"]);
        match r {
            Err(LlmError::Protocol { detail }) => assert!(detail.contains("oops"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn body_without_done_is_a_protocol_error() {
        let body = concat!(
            r#"{"message":{"role":"assistant","content":"Hi"},"done":false}"#,
            "\n"
        );
        let (events, r) = decode_pieces(&[body.as_bytes()]);
        assert_eq!(events, vec![ChatEvent::Content("Hi".into())]);
        match r {
            Err(LlmError::Protocol { detail }) => {
                assert!(detail.contains("ended early"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endless_line_is_a_protocol_error() {
        let mut d = LineDecoder::default();
        let mut out = VecDeque::new();
        let piece = vec![b'x'; 1024 * 1024];
        let error = (0..32).find_map(|_| d.feed(&piece, &mut out).err());
        assert!(
            matches!(error, Some(LlmError::Protocol { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn line_without_message_or_done_is_a_protocol_error() {
        let (_, r) = decode_pieces(&[b"{\"model\":\"m\"}\n"]);
        assert!(matches!(r, Err(LlmError::Protocol { .. })), "{r:?}");
    }

    #[test]
    fn request_body_shape() {
        let mut assistant = ChatMessage::assistant("");
        assistant.tool_calls = vec![
            ToolCall::new("memory__read_graph", Value::Null),
            ToolCall::new("fetch__fetch", json!(r#"{"url":"http://x"}"#)),
        ];
        let request = ChatRequest {
            model: "llama3.2".into(),
            messages: vec![
                ChatMessage::system("sys"),
                ChatMessage::user("hi"),
                assistant,
                ChatMessage::tool("memory__read_graph", "{}"),
            ],
            tools: vec![ToolSpec {
                name: "memory__read_graph".into(),
                description: "Read".into(),
                parameters: json!({"type": "object", "properties": {}}).into(),
            }],
            options: Map::new(),
            think: None,
            keep_alive: None,
        };
        let tools = tools_json(&request.tools).unwrap();
        let body = serde_json::to_value(ChatBody::new(&request, tools.as_deref())).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "llama3.2",
                "stream": true,
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": "memory__read_graph", "arguments": {}}},
                        {"function": {"name": "fetch__fetch", "arguments": {"url": "http://x"}}}
                    ]},
                    {"role": "tool", "content": "{}", "tool_name": "memory__read_graph"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "memory__read_graph", "description": "Read",
                    "parameters": {"type": "object", "properties": {}}
                }}]
            })
        );
    }

    /// The body as it was built before the tools were rendered once per tool list: every byte
    /// of the prompt must stay the same (Ollama's prompt cache keys on them).
    #[derive(Serialize)]
    struct InlineBody<'a> {
        model: &'a str,
        messages: Vec<WireMessage<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tools: Vec<WireTool<'a>>,
        stream: bool,
        #[serde(skip_serializing_if = "Map::is_empty")]
        options: &'a Map<String, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        think: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        keep_alive: Option<&'a str>,
    }

    #[test]
    fn prerendered_tools_give_the_same_bytes_as_inline_tools() {
        let tool = |name: &str, description: &str, parameters: Value| ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters: parameters.into(),
        };
        let mut options = Map::new();
        options.insert("num_ctx".into(), json!(8192));
        for tools in [
            vec![],
            vec![
                tool(
                    "everything__echo",
                    "Echoes \"quotes\", back\\slashes, tabs\t and é ☃ \u{1}",
                    json!({"type": "object", "properties": {"message": {"type": "string", "description": "<b>&"}}, "required": ["message"]}),
                ),
                tool("memory__read_graph", "", json!({"type": "object"})),
            ],
        ] {
            let request = ChatRequest {
                model: "llama3.2".into(),
                messages: vec![
                    ChatMessage::system("sys"),
                    ChatMessage::user("hi \"there\""),
                ],
                tools,
                options: options.clone(),
                think: Some(false),
                keep_alive: Some("5m".into()),
            };
            let rendered = tools_json(&request.tools).unwrap();
            let ours = serde_json::to_vec(&ChatBody::new(&request, rendered.as_deref())).unwrap();
            let inline = serde_json::to_vec(&InlineBody {
                model: &request.model,
                messages: request.messages.iter().map(WireMessage::from).collect(),
                tools: request.tools.iter().map(WireTool::from).collect(),
                stream: true,
                options: &request.options,
                think: request.think,
                keep_alive: request.keep_alive.as_deref(),
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(inline).unwrap()
            );
        }
    }

    #[test]
    fn request_body_optional_fields() {
        let mut options = Map::new();
        options.insert("num_ctx".into(), json!(8192));
        let request = ChatRequest {
            model: "qwen3".into(),
            messages: vec![ChatMessage::user("hi")],
            tools: vec![],
            options,
            think: Some(false),
            keep_alive: Some("5m".into()),
        };
        let tools = tools_json(&request.tools).unwrap();
        assert!(tools.is_none());
        let body = serde_json::to_value(ChatBody::new(&request, tools.as_deref())).unwrap();
        assert_eq!(body["options"], json!({"num_ctx": 8192}));
        assert_eq!(body["think"], json!(false));
        assert_eq!(body["keep_alive"], json!("5m"));
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn error_message_prefers_the_error_field() {
        assert_eq!(error_message(br#"{"error":"boom"}"#), "boom");
        assert_eq!(error_message(b"502 Bad Gateway"), "502 Bad Gateway");
        assert_eq!(error_message(b""), "(empty body)");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode(pieces: &[&[u8]]) -> (Vec<ChatEvent>, Result<(), String>) {
        let mut d = LineDecoder::default();
        let mut out = VecDeque::new();
        for p in pieces {
            if let Err(e) = d.feed(p, &mut out) {
                return (out.into(), Err(e.to_string()));
            }
        }
        let r = d.finish(&mut out).map_err(|e| e.to_string());
        (out.into(), r)
    }

    /// A streamed answer as Ollama writes it: content (and thinking) chunks, then `done`.
    fn body() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
        (
            prop::collection::vec(".{1,12}", 0..12),
            prop::sample::select(vec!["\n", "\r\n", "\n\n"]),
        )
            .prop_map(|(contents, newline)| {
                let mut body = String::new();
                for c in &contents {
                    body.push_str(
                        &json!({"model": "m", "message": {"role": "assistant", "content": c}, "done": false})
                            .to_string(),
                    );
                    body.push_str(newline);
                }
                body.push_str(
                    &json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,
                            "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2})
                    .to_string(),
                );
                body.push_str(newline);
                (body.into_bytes(), contents)
            })
    }

    proptest! {
        /// However the network cuts the body (even inside a UTF-8 character), the events are
        /// the same: every content chunk in order, then `done`.
        #[test]
        fn any_split_gives_the_same_events(
            (body, contents) in body(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for a in at {
                pieces.push(&body[from..a]);
                from = a;
            }
            pieces.push(&body[from..]);
            let (events, r) = decode(&pieces);
            prop_assert!(r.is_ok(), "{r:?}");
            let texts: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    ChatEvent::Content(c) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(texts, contents);
            let dones = events.iter().filter(|e| matches!(e, ChatEvent::Done { .. })).count();
            prop_assert_eq!(dones, 1);
            let ends_with_done = matches!(events.last(), Some(ChatEvent::Done { .. }));
            prop_assert!(ends_with_done, "{:?}", events.last());
        }

        /// Arbitrary bytes give events or an error that says what was wrong, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let (_, r) = decode(&refs);
            if let Err(message) = r {
                prop_assert!(!message.is_empty());
            }
        }

        /// Arbitrary JSON lines (any object, wrong types included) never panic either.
        #[test]
        fn arbitrary_json_lines_never_panic(
            lines in prop::collection::vec(
                prop::collection::btree_map(
                    prop::sample::select(vec!["message", "done", "error", "done_reason", "eval_count", "content"]),
                    prop_oneof![
                        Just(json!(null)), any::<bool>().prop_map(|b| json!(b)),
                        any::<i64>().prop_map(|n| json!(n)), ".{0,8}".prop_map(|s| json!(s)),
                        Just(json!({"content": "x"})), Just(json!({"tool_calls": [{"function": {"name": "t"}}]})),
                    ],
                    0..4,
                ),
                0..6,
            ),
        ) {
            let body: String = lines
                .iter()
                .map(|l| serde_json::to_string(l).unwrap_or_default() + "\n")
                .collect();
            let _ = decode(&[body.as_bytes()]);
        }
    }
}
