//! Turns a scripted [`Reply`] into what Ollama puts on the wire: NDJSON lines for `stream: true`,
//! one JSON object otherwise, with Ollama's token counts and nanosecond durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Reply;

/// Ollama's tokenizer stands in as "one token per 4 characters, rounded up", which is close to
/// what llama-family tokenizers give for English and, above all, deterministic.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Prompt tokens of a `/api/chat` body: every message's content, thinking and tool-call
/// arguments, plus the tools' JSON.
pub fn prompt_tokens(body: &Value) -> u32 {
    let mut text = String::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["content", "thinking"] {
            if let Some(s) = m.get(key).and_then(Value::as_str) {
                text.push_str(s);
            }
        }
        for call in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            text.push_str(&call.to_string());
        }
    }
    if let Some(tools) = body
        .get("tools")
        .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
    {
        text.push_str(&tools.to_string());
    }
    estimate_tokens(&text)
}

/// One step of a streamed answer.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// One NDJSON line (without the newline).
    Line(Value),
    /// Bytes exactly as given (for malformed output).
    Raw(bytes::Bytes),
    Sleep(Duration),
    /// Close the connection without finishing the body.
    Abort,
}

/// `text` in word-sized pieces, whitespace kept in front of each word, so that joining the
/// pieces gives `text` back.
pub fn words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut prev_space = true;
    for c in text.chars() {
        if c.is_whitespace() && !prev_space && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        prev_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// RFC 3339 in UTC with nanoseconds, as Go's `time.Time` marshals.
pub(super) fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// What a reply consists of once the request's model and `think` are known.
pub(super) struct Plan {
    pub thinking: Vec<String>,
    pub content: Vec<String>,
    pub tool_calls: Vec<Value>,
    pub ending: Ending,
    /// Delay before each chunk.
    pub per_chunk: Duration,
}

pub(super) enum Ending {
    Done,
    /// An `{"error"}` line after the content chunks.
    Error {
        message: String,
    },
    /// The connection is cut after the content chunks.
    Drop,
}

/// Filler streamed before a scripted failure.
const FILLER: &str = "I am working on that and this sentence is long enough to be cut off anywhere you like before it ends";

impl Plan {
    /// `None` for replies that are not a normal answer (status, hang, raw bytes).
    pub fn new(reply: &Reply, emit_thinking: bool, per_chunk: Duration) -> Option<Self> {
        let calls = |calls: &[(String, Value)]| -> Vec<Value> {
            calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({"function": {"index": i, "name": name, "arguments": args}}))
                .collect()
        };
        let plan = |thinking: Vec<String>,
                    content: Vec<String>,
                    tool_calls: Vec<Value>,
                    ending: Ending| Plan {
            thinking: if emit_thinking { thinking } else { Vec::new() },
            content,
            tool_calls,
            ending,
            per_chunk,
        };
        Some(match reply {
            Reply::Text(text) => plan(vec![], words(text), vec![], Ending::Done),
            Reply::ToolCalls(c) => plan(vec![], vec![], calls(c), Ending::Done),
            Reply::TextThenToolCalls(text, c) => plan(vec![], words(text), calls(c), Ending::Done),
            Reply::ThinkingThenText { thinking, text } => {
                plan(words(thinking), words(text), vec![], Ending::Done)
            }
            Reply::ErrorMidStream {
                after_chunks,
                message,
            } => plan(
                vec![],
                words(FILLER).into_iter().take(*after_chunks).collect(),
                vec![],
                Ending::Error {
                    message: message.clone(),
                },
            ),
            Reply::DropMidStream { after_chunks } => plan(
                vec![],
                words(FILLER).into_iter().take(*after_chunks).collect(),
                vec![],
                Ending::Drop,
            ),
            Reply::Slow { per_chunk, text } => Plan {
                per_chunk: *per_chunk,
                ..plan(vec![], words(text), vec![], Ending::Done)
            },
            Reply::Status { .. } | Reply::Hang | Reply::RawChunks(_) => return None,
        })
    }

    fn final_fields(&self, model: &str, prompt_tokens: u32) -> Value {
        let generated: String = self.thinking.concat() + &self.content.concat();
        let tool_text: String = self.tool_calls.iter().map(Value::to_string).collect();
        let eval_count = (estimate_tokens(&generated) + estimate_tokens(&tool_text)).max(1);
        // A plausible mid-range GPU: prompt at 4000 tokens/s, generation at 40 tokens/s.
        let load = 12_000_000u64;
        let prompt_eval = u64::from(prompt_tokens) * 250_000;
        let eval = u64::from(eval_count) * 25_000_000;
        json!({
            "model": model,
            "created_at": timestamp(),
            "done": true,
            "done_reason": "stop",
            "total_duration": load + prompt_eval + eval + 1_000_000,
            "load_duration": load,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": prompt_eval,
            "eval_count": eval_count,
            "eval_duration": eval,
        })
    }

    /// The NDJSON steps of the streamed answer.
    pub fn stream_steps(&self, model: &str, prompt_tokens: u32) -> Vec<Step> {
        let mut steps = Vec::new();
        let chunk = |steps: &mut Vec<Step>, message: Value| {
            if !self.per_chunk.is_zero() {
                steps.push(Step::Sleep(self.per_chunk));
            }
            steps.push(Step::Line(json!({
                "model": model, "created_at": timestamp(), "message": message, "done": false
            })));
        };
        for t in &self.thinking {
            chunk(
                &mut steps,
                json!({"role": "assistant", "content": "", "thinking": t}),
            );
        }
        for c in &self.content {
            chunk(&mut steps, json!({"role": "assistant", "content": c}));
        }
        match &self.ending {
            Ending::Error { message, .. } => {
                steps.push(Step::Line(json!({"error": message})));
                return steps;
            }
            Ending::Drop => {
                // hyper discards unflushed bytes when a body fails; pausing lets it flush the
                // chunks already produced, so that exactly `after_chunks` reach the client.
                steps.push(Step::Sleep(Duration::from_millis(5)));
                steps.push(Step::Abort);
                return steps;
            }
            Ending::Done => {}
        }
        if !self.tool_calls.is_empty() {
            chunk(
                &mut steps,
                json!({"role": "assistant", "content": "", "tool_calls": self.tool_calls}),
            );
        }
        let mut last = self.final_fields(model, prompt_tokens);
        last["message"] = json!({"role": "assistant", "content": ""});
        steps.push(Step::Line(last));
        steps
    }

    /// The single object of a `stream: false` answer; `Err` for scripted failures.
    pub fn whole(&self, model: &str, prompt_tokens: u32) -> Result<Value, &Ending> {
        if !matches!(self.ending, Ending::Done) {
            return Err(&self.ending);
        }
        let mut message = json!({"role": "assistant", "content": self.content.concat()});
        if !self.thinking.is_empty() {
            message["thinking"] = json!(self.thinking.concat());
        }
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = json!(self.tool_calls);
        }
        let mut object = self.final_fields(model, prompt_tokens);
        object["message"] = message;
        Ok(object)
    }

    /// Total artificial delay (slow replies answer `stream: false` after all of it).
    pub fn total_delay(&self) -> Duration {
        let chunks =
            self.thinking.len() + self.content.len() + usize::from(!self.tool_calls.is_empty());
        self.per_chunk * u32::try_from(chunks).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for text in [
            "Hello world, how are you?",
            "  leading",
            "trailing  ",
            "",
            "one",
            "a\nb\n\nc",
        ] {
            assert_eq!(words(text).concat(), text);
        }
        assert_eq!(words("Hello big world"), vec!["Hello", " big", " world"]);
    }

    #[test]
    fn token_estimate() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), "2025-01-01T00:00:00.000000000Z".len(), "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
