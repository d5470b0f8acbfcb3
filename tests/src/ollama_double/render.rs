//! Turns a scripted [`Reply`] into what Ollama puts on the wire: NDJSON lines for `stream: true`,
//! one JSON object otherwise, with Ollama's token counts and nanosecond durations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Reply;
use super::prompt::PromptEval;

/// Ollama's tokenizer stands in as "one token per 4 characters, rounded up", which is close to
/// what llama-family tokenizers give for English and, above all, deterministic.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
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
    timestamp_at(SystemTime::now())
}

/// [`timestamp`] of a given time.
pub(super) fn timestamp_at(time: SystemTime) -> String {
    let now = time.duration_since(UNIX_EPOCH).unwrap_or_default();
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

/// What shapes the model's output beyond the scripted reply: the request and the model.
pub(super) struct Generation<'a> {
    /// The model thinks and the request did not say `think: false`.
    pub thinking: bool,
    /// Tools were offered and the model's template has a tool-call prefix: output starting with
    /// it becomes `tool_calls`.
    pub tool_call_prefix: Option<&'a str>,
    /// Tokens the model may generate (`num_predict`).
    pub max_tokens: Option<u32>,
    pub per_chunk: Duration,
}

/// What a reply consists of once the request's model and `think` are known.
pub(super) struct Plan {
    pub thinking: Vec<String>,
    pub content: Vec<String>,
    pub tool_calls: Vec<Value>,
    pub ending: Ending,
    /// Delay before each chunk.
    pub per_chunk: Duration,
    /// "stop", or "length" when `num_predict` or the window cut the output.
    pub done_reason: &'static str,
    /// What the model generated, as it would read it back in the next prompt.
    pub generated: String,
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

/// A fresh tool-call id as Ollama makes them: `call_` and 8 lowercase letters or digits.
fn call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let mut x = NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    // splitmix64, then base 36.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::from("call_");
    for _ in 0..8 {
        id.push(char::from(alphabet[(x % 36) as usize]));
        x /= 36;
    }
    id
}

/// Structured tool calls as Ollama sends them: an id, and `function.index` counting from 0.
fn structured(calls: &[(String, Value)]) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            json!({"id": call_id(), "function": {"index": i, "name": name, "arguments": args}})
        })
        .collect()
}

/// The first `max` tokens of `text` (4 characters each).
fn cut(text: &str, max: u32) -> String {
    text.chars().take(max as usize * 4).collect()
}

/// Parses output that starts with the tool-call prefix the way Ollama's tool parser does:
/// every complete `PREFIX{"name": ..., "arguments": {...}}</tool_call>` becomes a call; an
/// unfinished one is held back (never shown as content). `None` if the output is not a call.
fn parse_tool_calls(output: &str, prefix: &str) -> Option<(Vec<(String, Value)>, String)> {
    let trimmed = output.trim_start();
    if trimmed.is_empty() || !(trimmed.starts_with(prefix) || prefix.starts_with(trimmed)) {
        return None;
    }
    let close = prefix.replacen('<', "</", 1);
    let mut calls = Vec::new();
    let mut rest = trimmed;
    while let Some(after) = rest.trim_start().strip_prefix(prefix) {
        let Some(end) = after.find(&close) else {
            // Cut before the call was complete: held back.
            return Some((calls, String::new()));
        };
        let parsed: Option<(String, Value)> = serde_json::from_str::<Value>(after[..end].trim())
            .ok()
            .and_then(|v| {
                let name = v.get("name")?.as_str()?.to_string();
                let args = v.get("arguments").cloned().unwrap_or_else(|| json!({}));
                Some((name, args))
            });
        match parsed {
            Some(call) => calls.push(call),
            None => return Some((calls, String::new())),
        }
        rest = &after[end + close.len()..];
    }
    // A partial prefix at the end (cut) is held back too; other text after the calls is dropped
    // as Ollama's parser does once it has found calls.
    Some((calls, String::new()))
}

impl Plan {
    /// `None` for replies that are not a normal answer (status, hang, raw bytes).
    pub fn new(reply: &Reply, g: &Generation<'_>) -> Option<Self> {
        let plan = |content: Vec<String>, ending: Ending| Plan {
            thinking: Vec::new(),
            content,
            tool_calls: Vec::new(),
            ending,
            per_chunk: g.per_chunk,
            done_reason: "stop",
            generated: String::new(),
        };
        let (thinking, text, calls, per_chunk) = match reply {
            Reply::Text(text) => (String::new(), text.clone(), Vec::new(), g.per_chunk),
            Reply::ToolCalls(c) => (String::new(), String::new(), c.clone(), g.per_chunk),
            Reply::TextThenToolCalls(text, c) => {
                (String::new(), text.clone(), c.clone(), g.per_chunk)
            }
            Reply::ThinkingThenText { thinking, text } => (
                if g.thinking {
                    thinking.clone()
                } else {
                    String::new()
                },
                text.clone(),
                Vec::new(),
                g.per_chunk,
            ),
            Reply::Slow { per_chunk, text } => {
                (String::new(), text.clone(), Vec::new(), *per_chunk)
            }
            Reply::ErrorMidStream {
                after_chunks,
                message,
            } => {
                return Some(plan(
                    words(FILLER).into_iter().take(*after_chunks).collect(),
                    Ending::Error {
                        message: message.clone(),
                    },
                ));
            }
            Reply::DropMidStream { after_chunks } => {
                return Some(plan(
                    words(FILLER).into_iter().take(*after_chunks).collect(),
                    Ending::Drop,
                ));
            }
            Reply::Status { .. } | Reply::Hang | Reply::RawChunks(_) => return None,
        };
        Some(Self::generate(thinking, text, calls, per_chunk, g))
    }

    /// The output cut to the token limit, then split the way Ollama's parsers split it.
    fn generate(
        mut thinking: String,
        mut text: String,
        calls: Vec<(String, Value)>,
        per_chunk: Duration,
        g: &Generation<'_>,
    ) -> Self {
        let mut done_reason = "stop";
        let mut left = g.max_tokens.unwrap_or(u32::MAX);
        let mut take = |piece: &mut String, left: &mut u32| {
            let tokens = estimate_tokens(piece);
            if tokens > *left {
                *piece = cut(piece, *left);
                done_reason = "length";
            }
            *left = left.saturating_sub(tokens);
        };
        // A thinking model writes `<think>…</think>` first; Ollama moves it to `thinking`.
        if thinking.is_empty()
            && g.thinking
            && let Some(after) = text.trim_start().strip_prefix("<think>")
        {
            let (inner, rest) = after.split_once("</think>").unwrap_or((after, ""));
            thinking = inner.to_string();
            text = rest.trim_start().to_string();
        }
        let mut thought = if thinking.is_empty() {
            String::new()
        } else {
            format!("<think>{thinking}</think>")
        };
        take(&mut thought, &mut left);
        let thinking = thought
            .strip_prefix("<think>")
            .map(|t| t.trim_end_matches("</think>").to_string())
            .unwrap_or_default();
        take(&mut text, &mut left);
        let mut kept_calls = Vec::new();
        for call in calls {
            let mut rendered = super::prompt::assistant_body(
                None,
                "",
                &[json!({"function": {"name": call.0, "arguments": call.1}})],
            );
            let before = rendered.clone();
            take(&mut rendered, &mut left);
            if rendered != before {
                break;
            }
            kept_calls.push(call);
        }
        let (content, parsed) = match g.tool_call_prefix.and_then(|p| parse_tool_calls(&text, p)) {
            Some((parsed, content)) => (content, parsed),
            None => (text, Vec::new()),
        };
        kept_calls.splice(0..0, parsed);
        let tool_calls = structured(&kept_calls);
        let thinking_part = (!thinking.is_empty()).then_some(thinking.as_str());
        let generated = super::prompt::assistant_body(thinking_part, &content, &tool_calls);
        Plan {
            thinking: if thinking.is_empty() {
                Vec::new()
            } else {
                words(&thinking)
            },
            content: words(&content),
            tool_calls,
            ending: Ending::Done,
            per_chunk,
            done_reason,
            generated,
        }
    }

    fn final_fields(&self, model: &str, eval: &PromptEval) -> Value {
        let eval_count = estimate_tokens(&self.generated).max(1);
        // A plausible mid-range GPU: prompt at 4000 tokens/s, generation at 40 tokens/s. Only
        // the fresh tokens cost prompt time (file 30).
        let load = 12_000_000u64;
        let prompt_eval = u64::from(eval.fresh_tokens) * 250_000;
        let eval_ns = u64::from(eval_count) * 25_000_000;
        json!({
            "model": model,
            "created_at": timestamp(),
            "done": true,
            "done_reason": self.done_reason,
            "total_duration": load + prompt_eval + eval_ns + 1_000_000,
            "load_duration": load,
            "prompt_eval_count": eval.prompt_tokens,
            "prompt_eval_duration": prompt_eval,
            "eval_count": eval_count,
            "eval_duration": eval_ns,
        })
    }

    /// The NDJSON steps of the streamed answer.
    pub fn stream_steps(&self, model: &str, eval: &PromptEval) -> Vec<Step> {
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
        let mut last = self.final_fields(model, eval);
        last["message"] = json!({"role": "assistant", "content": ""});
        steps.push(Step::Line(last));
        steps
    }

    /// The single object of a `stream: false` answer; `Err` for scripted failures.
    pub fn whole(&self, model: &str, eval: &PromptEval) -> Result<Value, &Ending> {
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
        let mut object = self.final_fields(model, eval);
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

    fn generation(max_tokens: Option<u32>, prefix: Option<&str>) -> Generation<'_> {
        Generation {
            thinking: true,
            tool_call_prefix: prefix,
            max_tokens,
            per_chunk: Duration::ZERO,
        }
    }

    #[test]
    fn num_predict_cuts_with_done_reason_length() {
        let reply = Reply::text("one two three four five six seven eight");
        let plan = Plan::new(&reply, &generation(Some(3), None)).expect("plan");
        assert_eq!(plan.content.concat(), "one two thre");
        assert_eq!(plan.done_reason, "length");
        let plan = Plan::new(&reply, &generation(None, None)).expect("plan");
        assert_eq!(plan.done_reason, "stop");
    }

    #[test]
    fn tool_call_output_is_parsed_or_held_back() {
        let call = r#"<tool_call>{"name": "memory__read_graph", "arguments": {}}</tool_call>"#;
        let plan = Plan::new(
            &Reply::text(call.repeat(3)),
            &generation(Some(40), Some("<tool_call>")),
        )
        .expect("plan");
        assert!(plan.content.is_empty());
        assert_eq!(plan.done_reason, "length");
        assert!(!plan.tool_calls.is_empty());
        let id = plan.tool_calls[0]["id"].as_str().expect("id");
        assert!(id.starts_with("call_") && id.len() == 13, "{id}");
        assert_eq!(plan.tool_calls[0]["function"]["index"], 0);
        // Cut inside the first call: nothing at all (file 12d).
        let plan = Plan::new(
            &Reply::text(call),
            &generation(Some(8), Some("<tool_call>")),
        )
        .expect("plan");
        assert!(plan.content.is_empty() && plan.tool_calls.is_empty());
        assert_eq!(plan.done_reason, "length");
        // Without tools offered it is only text.
        let plan = Plan::new(&Reply::text(call), &generation(None, None)).expect("plan");
        assert_eq!(plan.content.concat(), call);
    }

    #[test]
    fn think_tags_become_thinking() {
        let plan = Plan::new(
            &Reply::text("<think>Let me think.</think>The answer is 42."),
            &generation(None, None),
        )
        .expect("plan");
        assert_eq!(plan.thinking.concat(), "Let me think.");
        assert_eq!(plan.content.concat(), "The answer is 42.");
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), "2025-01-01T00:00:00.000000000Z".len(), "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
