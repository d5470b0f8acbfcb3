//! What the model really reads: the request rendered through the recordings' Gemma template
//! into tokens, fitted into `num_ctx` the way Ollama does it, and compared with the model's
//! prompt cache (file 30) to tell how many tokens are evaluated afresh.
//!
//! Tokens are deterministic stand-ins: every special marker (`<bos>`, `<start_of_turn>`,
//! `<end_of_turn>`) is one token, and each piece of text is cut into 4-character tokens on its
//! own, so that appending a message never re-tokenises what came before (as with a real
//! tokenizer at message boundaries).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::models::ModelSpec;

/// One token: a hash of its text.
pub(super) type Token = u64;

const TOOLS_INTRO: &str = "user\nYou can call these tools. To call one, answer only with <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>\n";

fn hash(salt: u8, text: &str) -> Token {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(salt);
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn special(out: &mut Vec<Token>, marker: &str) {
    out.push(hash(1, marker));
}

/// `text` as 4-character tokens (the last may be shorter).
pub(super) fn text(out: &mut Vec<Token>, text: &str) {
    let mut chunk = String::new();
    for c in text.chars() {
        chunk.push(c);
        if chunk.chars().count() == 4 {
            out.push(hash(0, &chunk));
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        out.push(hash(0, &chunk));
    }
}

/// What an assistant turn consists of in the prompt, and what the model generates for it: one
/// piece of text, so that a reply sent back as history matches the tokens it was generated as.
pub(super) fn assistant_body(thinking: Option<&str>, content: &str, calls: &[Value]) -> String {
    let mut body = String::new();
    if let Some(t) = thinking.filter(|t| !t.is_empty()) {
        body.push_str(&format!("<think>{t}</think>"));
    }
    if calls.is_empty() {
        body.push_str(content);
    }
    for call in calls {
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        let arguments = f.get("arguments").cloned().unwrap_or(Value::Null);
        body.push_str(&format!(
            "<tool_call>{{\"name\": \"{name}\", \"arguments\": {arguments}}}</tool_call>"
        ));
    }
    body
}

/// A message after Ollama's `collate`: consecutive messages of one role merged.
struct Collated<'a> {
    role: &'a str,
    content: String,
    thinking: Option<&'a str>,
    calls: Vec<Value>,
}

fn str_field<'a>(m: &'a Value, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Ollama's `template.collate`: all system contents joined for `.System`; consecutive
/// messages of the same role merged (contents joined by a blank line, the later tool calls lost).
fn collate<'a>(messages: &[&'a Value]) -> (String, Vec<Collated<'a>>) {
    let mut system = Vec::new();
    let mut out: Vec<Collated<'a>> = Vec::new();
    for m in messages {
        let role = str_field(m, "role");
        let content = str_field(m, "content");
        if role == "system" {
            system.push(content);
        }
        match out.last_mut() {
            Some(last) if last.role == role => {
                last.content.push_str("\n\n");
                last.content.push_str(content);
            }
            _ => out.push(Collated {
                role,
                content: content.to_string(),
                thinking: m.get("thinking").and_then(Value::as_str),
                calls: m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            }),
        }
    }
    (system.join("\n\n"), out)
}

/// The prompt's tokens as the recordings' Gemma templates render these messages and tools.
pub(super) fn render(model: &ModelSpec, messages: &[&Value], tools: &[Value]) -> Vec<Token> {
    let mut out = vec![hash(1, "<bos>")];
    let (system, messages) = collate(messages);
    let turn = |out: &mut Vec<Token>, opening: &str| {
        special(out, "<start_of_turn>");
        text(out, opening);
    };
    let end = |out: &mut Vec<Token>| {
        special(out, "<end_of_turn>");
        text(out, "\n");
    };
    if !system.is_empty() {
        turn(&mut out, "user\n");
        text(&mut out, &system);
        end(&mut out);
    }
    if !tools.is_empty() && model.supports("tools") {
        turn(&mut out, TOOLS_INTRO);
        for tool in tools {
            text(&mut out, &format!("{tool}\n"));
        }
        end(&mut out);
    }
    let count = messages.len();
    for (i, m) in messages.iter().enumerate() {
        let last = i + 1 == count;
        match m.role {
            "user" | "tool" => {
                if m.role == "user" {
                    turn(&mut out, "user\n");
                    text(&mut out, &m.content);
                } else {
                    turn(&mut out, "user\n<tool_response>\n");
                    text(&mut out, &m.content);
                    text(&mut out, "\n</tool_response>");
                }
                end(&mut out);
                if last {
                    turn(&mut out, "model\n");
                }
            }
            "assistant" => {
                turn(&mut out, "model\n");
                let thinking = m.thinking.filter(|_| model.supports("thinking"));
                text(&mut out, &assistant_body(thinking, &m.content, &m.calls));
                if !last {
                    end(&mut out);
                }
            }
            // System messages are in `.System`; roles the template does not know render
            // nothing (file 20c: a lone "wizard" message is a prompt of one token).
            _ => {}
        }
    }
    out
}

/// The prompt of a request after Ollama fitted it into `num_ctx`.
pub(super) struct Fitted {
    pub tokens: Vec<Token>,
    /// Tokens of the whole request as rendered, before anything was left out.
    pub rendered: usize,
    /// Old messages left out (server/prompt.go `chatPrompt`).
    pub dropped_messages: usize,
}

/// Ollama's two cuts: `chatPrompt` leaves out the oldest messages (keeping system messages and
/// always the last message) until the prompt fits; if it still does not, the runner keeps the
/// first `num_keep` tokens and drops tokens after them (file 25: `prompt_eval_count` = num_ctx,
/// the system prompt and the tools lost).
pub(super) fn fit(
    model: &ModelSpec,
    messages: &[Value],
    tools: &[Value],
    num_ctx: usize,
    num_keep: usize,
) -> Fitted {
    let all: Vec<&Value> = messages.iter().collect();
    let full = render(model, &all, tools);
    let rendered = full.len();
    let mut tokens = full;
    let mut dropped_messages = 0;
    if rendered > num_ctx && all.len() > 1 {
        let system_before = |i: usize| -> Vec<&Value> {
            all[..i]
                .iter()
                .copied()
                .filter(|m| str_field(m, "role") == "system")
                .collect()
        };
        let mut n = all.len() - 1;
        let mut kept_system = Vec::new();
        let mut cut = false;
        for i in (0..n).rev() {
            let system = system_before(i);
            let candidate: Vec<&Value> = system
                .iter()
                .copied()
                .chain(all[i..].iter().copied())
                .collect();
            if render(model, &candidate, tools).len() > num_ctx {
                kept_system = system;
                cut = true;
                break;
            }
            n = i;
        }
        if cut {
            let kept: Vec<&Value> = kept_system
                .iter()
                .copied()
                .chain(all[n..].iter().copied())
                .collect();
            dropped_messages = all.len() - kept.len();
            tokens = render(model, &kept, tools);
        }
    }
    if tokens.len() > num_ctx {
        let keep = num_keep.min(num_ctx.saturating_sub(1));
        let discard = tokens.len() - num_ctx;
        tokens.drain(keep..keep + discard);
    }
    Fitted {
        tokens,
        rendered,
        dropped_messages,
    }
}

/// Per-request prompt figures: what the double logs and tests and benchmarks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptEval {
    /// The window the request got: its `num_ctx` (or the model's, or the default), capped at
    /// the model's context length.
    pub num_ctx: u32,
    /// Tokens of the request as the template renders it, before anything is cut.
    pub rendered_tokens: u32,
    /// Tokens of the prompt the model read (`prompt_eval_count`): never more than `num_ctx`.
    pub prompt_tokens: u32,
    /// Of those, the ones found in the model's prompt cache (the prefix shared with what the
    /// previous request to this model read and generated).
    pub cached_tokens: u32,
    /// The ones evaluated afresh: `prompt_tokens - cached_tokens`, at least 1 (Ollama always
    /// evaluates the last token again). They set `prompt_eval_duration`.
    pub fresh_tokens: u32,
    /// Old messages Ollama left out to fit the window.
    pub dropped_messages: u32,
    /// Whether anything was left out or cut: the model did not see the whole request.
    pub truncated: bool,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl PromptEval {
    pub(super) fn new(fitted: &Fitted, cached: usize, num_ctx: usize) -> Self {
        let prompt = fitted.tokens.len();
        let cached = cached.min(prompt.saturating_sub(1));
        Self {
            num_ctx: u32_of(num_ctx),
            rendered_tokens: u32_of(fitted.rendered),
            prompt_tokens: u32_of(prompt),
            cached_tokens: u32_of(cached),
            fresh_tokens: u32_of(prompt - cached),
            dropped_messages: u32_of(fitted.dropped_messages),
            truncated: fitted.rendered > prompt,
        }
    }
}

/// Length of the longest common prefix.
pub(super) fn shared_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The double's prompt model without HTTP, for baselines: `/api/chat` bodies evaluated in turn
/// against one model's prompt cache, exactly as the double evaluates the requests it answers.
pub struct PromptCache {
    model: ModelSpec,
    num_ctx: usize,
    cache: Vec<Token>,
}

impl PromptCache {
    pub fn new(model: ModelSpec) -> Self {
        Self {
            model,
            num_ctx: 0,
            cache: Vec::new(),
        }
    }

    /// Evaluates `body` (its `messages`, `tools`, `options.num_ctx` and `options.num_keep`),
    /// then remembers `reply` (an assistant message: `content`, `thinking`, `tool_calls`) as
    /// what the model generated.
    pub fn request(&mut self, body: &Value, reply: &Value) -> PromptEval {
        let options = body.get("options").and_then(Value::as_object);
        let int = |key: &str| {
            options
                .and_then(|o| o.get(key))
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.trunc() as i64)))
        };
        let num_ctx = usize::try_from(self.model.window(int("num_ctx"))).unwrap_or(usize::MAX);
        if num_ctx != self.num_ctx {
            // Another window means another runner: the cache starts empty.
            self.num_ctx = num_ctx;
            self.cache.clear();
        }
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tools = body
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let num_keep = int("num_keep")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(4);
        let fitted = fit(&self.model, &messages, &tools, num_ctx, num_keep);
        let eval = PromptEval::new(&fitted, shared_prefix(&self.cache, &fitted.tokens), num_ctx);
        let mut remembered = fitted.tokens;
        let calls = reply
            .get("tool_calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let thinking = reply
            .get("thinking")
            .and_then(Value::as_str)
            .filter(|_| self.model.supports("thinking"));
        text(
            &mut remembered,
            &assistant_body(thinking, str_field(reply, "content"), &calls),
        );
        remembered.truncate(num_ctx);
        self.cache = remembered;
        eval
    }
}

/// Tokens of a request body as rendered for a model with the `tools` capability, nothing cut:
/// what the double reports as `prompt_eval_count` while it fits the window.
pub fn prompt_tokens(body: &Value) -> u32 {
    let model = ModelSpec::new("any", &["completion", "tools"]);
    let messages: Vec<&Value> = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    u32_of(render(&model, &messages, &tools).len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(messages: Value) -> Vec<Token> {
        let messages: Vec<Value> = messages.as_array().cloned().unwrap_or_default();
        fit(&ModelSpec::gemma_tools(), &messages, &[], 100_000, 4).tokens
    }

    #[test]
    fn hello_is_about_ten_tokens() {
        // The real gemma-tools counted 10 for this prompt (file 09).
        let n = tokens(json!([{"role": "user", "content": "hello"}])).len();
        assert!((9..=12).contains(&n), "{n}");
        // Unknown roles render nothing: only <bos> (file 20c).
        assert_eq!(
            tokens(json!([{"role": "wizard", "content": "hello"}])).len(),
            1
        );
    }

    #[test]
    fn a_reply_sent_back_extends_the_prompt_it_was_generated_from() {
        let first = json!([{"role": "user", "content": "what is the weather like"}]);
        let mut cache = tokens(first);
        text(
            &mut cache,
            &assistant_body(None, "Sunny and warm today.", &[]),
        );
        let second = tokens(json!([
            {"role": "user", "content": "what is the weather like"},
            {"role": "assistant", "content": "Sunny and warm today."},
            {"role": "user", "content": "and tomorrow?"}
        ]));
        assert_eq!(shared_prefix(&cache, &second), cache.len());
    }

    #[test]
    fn the_cache_model_sees_an_appended_turn_as_cheap_and_a_changed_start_as_dear() {
        let mut cache = PromptCache::new(ModelSpec::gemma_tools());
        let body = |system: &str, messages: Value| {
            let mut all = vec![json!({"role": "system", "content": system})];
            all.extend(messages.as_array().cloned().unwrap_or_default());
            json!({"model": "gemma-tools", "messages": all, "options": {"num_ctx": 2048}})
        };
        let system = "You are a helpful assistant. ".repeat(20);
        let reply = json!({"role": "assistant", "content": "Hello! How can I help?"});
        let first = cache.request(
            &body(&system, json!([{"role": "user", "content": "hi"}])),
            &reply,
        );
        assert_eq!(first.fresh_tokens, first.prompt_tokens);
        let second = cache.request(
            &body(&system, json!([{"role": "user", "content": "hi"}, reply, {"role": "user", "content": "tell me more"}])),
            &reply,
        );
        assert!(second.fresh_tokens < 15, "{second:?}");
        let changed = cache.request(
            &body(
                &format!("Be brief. {system}"),
                json!([{"role": "user", "content": "hi"}]),
            ),
            &reply,
        );
        assert!(
            changed.fresh_tokens + 5 > changed.prompt_tokens,
            "{changed:?}"
        );
    }

    #[test]
    fn fitting_drops_old_messages_then_cuts_from_the_start() {
        let model = ModelSpec::gemma_tools();
        let long = "word ".repeat(200);
        let messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": long}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": "short question"}),
        ];
        let f = fit(&model, &messages, &[], 100, 4);
        assert_eq!(
            f.dropped_messages, 1,
            "the long message goes, the system prompt stays"
        );
        assert!(f.tokens.len() <= 100);
        let alone = vec![json!({"role": "user", "content": "word ".repeat(600)})];
        let f = fit(&model, &alone, &[], 256, 4);
        assert_eq!(f.tokens.len(), 256);
        assert!(f.rendered > 256);
        let e = PromptEval::new(&f, 0, 256);
        assert!(e.truncated);
        assert_eq!((e.prompt_tokens, e.fresh_tokens), (256, 256));
    }
}
