//! Recovers tool calls that a model wrote as JSON text in its reply instead of in `tool_calls`
//! Over 450 lines: most of it is its unit tests (one per reply shape a model writes).
//! (llama3.x and qwen models do this now and then, especially with many tools or small contexts).
//! An engine policy: the model client only reports what Ollama sent.
//!
//! Deliberately conservative: the reply must be nothing but the call(s), optionally inside one
//! Markdown code fence, `<tool_call>` tags (Hermes / Qwen style) or after `<|python_tag|>`
//! (Llama 3.1 style), and every call must name a tool we offered. Prose that merely quotes JSON
//! is never turned into a call.
//!
//! (Over 450 lines only because of its tests: every accepted and refused shape is one.)

use serde_json::{Map, Value};

use crate::llm::ToolCall;
use crate::tool::NAMESPACE_SEPARATOR;

/// Could this (partial) content still turn out to be a tool call written as text? While it can,
/// the engine holds it back from the user.
pub fn might_be_call(content: &str) -> bool {
    let t = content.trim_start();
    if t.is_empty() {
        return true;
    }
    const OPENERS: [&str; 5] = ["{", "[", "```", "<tool_call>", "<|python_tag|>"];
    OPENERS.iter().any(|o| t.starts_with(o) || o.starts_with(t))
}

/// The tool calls `content` consists of, or `None` when it is anything else.
///
/// Accepted shapes, alone or as a list, also separated by whitespace or `;`:
/// `{"name": .., "arguments"|"parameters": {..}}`, `{"function": {"name": .., "arguments": ..}}`,
/// `{"tool_calls": [..]}`. `arguments` may be a JSON string holding an object. A name must be one
/// of `known_tools`, or the bare tool name when exactly one namespaced tool (`server__name`)
/// ends with it; the full name is returned.
pub fn recover_tool_calls(content: &str, known_tools: &[&str]) -> Option<Vec<ToolCall>> {
    let mut values = Vec::new();
    for payload in payloads(content)? {
        values.extend(json_values(payload)?);
    }
    let mut calls = Vec::new();
    for value in &values {
        collect_calls(value, &mut calls)?;
    }
    if calls.is_empty() {
        return None;
    }
    calls
        .into_iter()
        .map(|(name, arguments)| {
            Some(ToolCall::new(
                resolve_name(name, known_tools)?,
                arguments_object(arguments)?,
            ))
        })
        .collect()
}

/// The JSON text(s) inside the accepted wrappers; `None` if anything else surrounds them.
fn payloads(content: &str) -> Option<Vec<&str>> {
    let text = content.trim();
    if text.is_empty() {
        return None;
    }
    if let Some(rest) = text.strip_prefix("<|python_tag|>") {
        return Some(vec![rest.trim()]);
    }
    if text.starts_with("```") {
        return Some(vec![unfence(text)?]);
    }
    if text.starts_with("<tool_call>") {
        return tagged(text);
    }
    Some(vec![text])
}

/// The body of a text that is exactly one code fence: "```json\n...\n```" (language optional).
fn unfence(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("```")?.strip_suffix("```")?;
    let (first_line, body) = inner.split_once('\n')?;
    let lang = first_line.trim();
    let lang_ok = lang.is_empty()
        || lang.eq_ignore_ascii_case("json")
        || lang.eq_ignore_ascii_case("tool_call");
    (lang_ok && !body.contains("```")).then(|| body.trim())
}

/// The bodies of a text that is only `<tool_call>..</tool_call>` blocks (the last closing tag may
/// be missing: models often stop right before it).
fn tagged(text: &str) -> Option<Vec<&str>> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut bodies = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let after_open = rest.strip_prefix(OPEN)?;
        match after_open.find(CLOSE) {
            Some(end) => {
                bodies.push(after_open[..end].trim());
                rest = after_open[end + CLOSE.len()..].trim_start();
            }
            None => {
                bodies.push(after_open.trim());
                rest = "";
            }
        }
    }
    (!bodies.is_empty()).then_some(bodies)
}

/// One or more JSON values making up the whole of `text`, separated by whitespace or `;`.
fn json_values(text: &str) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let value = stream.next()?.ok()?;
        if !(value.is_object() || value.is_array()) {
            return None;
        }
        values.push(value);
        rest = rest[stream.byte_offset()..].trim_start();
        if let Some(after) = rest.strip_prefix(';') {
            rest = after.trim_start();
        }
    }
    (!values.is_empty()).then_some(values)
}

/// Adds the (name, arguments) pairs `value` stands for; `None` if it is not purely tool calls.
fn collect_calls<'a>(value: &'a Value, out: &mut Vec<(&'a str, Option<&'a Value>)>) -> Option<()> {
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().try_for_each(|item| {
            out.push(single_call(item.as_object()?)?);
            Some(())
        }),
        Value::Object(object) if object.contains_key("tool_calls") => {
            let only_envelope = object.iter().all(|(k, v)| match k.as_str() {
                "tool_calls" => true,
                "role" => v == "assistant",
                "content" => v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()),
                _ => false,
            });
            let calls = object
                .get("tool_calls")?
                .as_array()
                .filter(|c| !c.is_empty())?;
            if !only_envelope {
                return None;
            }
            calls.iter().try_for_each(|item| {
                out.push(single_call(item.as_object()?)?);
                Some(())
            })
        }
        Value::Object(object) => {
            out.push(single_call(object)?);
            Some(())
        }
        _ => None,
    }
}

/// `{"name", "arguments"|"parameters"}` or `{"function": {...}}`, with nothing else but a
/// `type` / `id` that OpenAI-style output carries.
fn single_call(object: &Map<String, Value>) -> Option<(&str, Option<&Value>)> {
    let is_meta = |k: &str| matches!(k, "type" | "id" | "index");
    if let Some(function) = object.get("function") {
        if !object.keys().all(|k| k == "function" || is_meta(k)) {
            return None;
        }
        return single_call(function.as_object()?);
    }
    let name = object.get("name")?.as_str()?;
    if !object
        .keys()
        .all(|k| matches!(k.as_str(), "name" | "arguments" | "parameters") || is_meta(k))
    {
        return None;
    }
    if object.contains_key("arguments") && object.contains_key("parameters") {
        return None;
    }
    Some((
        name,
        object.get("arguments").or_else(|| object.get("parameters")),
    ))
}

/// The offered tool `name` refers to: itself, or the one `server__name` that ends with it.
fn resolve_name(name: &str, known_tools: &[&str]) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if known_tools.contains(&name) {
        return Some(name.to_string());
    }
    let suffix = format!("{}{name}", NAMESPACE_SEPARATOR);
    let mut matches = known_tools.iter().filter(|t| t.ends_with(&suffix));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Some((*only).to_string()),
        _ => None,
    }
}

/// Arguments as an object: missing or null → `{}`, a string holding an object → that object.
fn arguments_object(arguments: Option<&Value>) -> Option<Value> {
    match arguments {
        None | Some(Value::Null) => Some(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ if s.trim().is_empty() => Some(Value::Object(Map::new())),
            _ => None,
        },
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOOLS: &[&str] = &[
        "memory__read_graph",
        "memory__create_entities",
        "fetch__fetch",
        "everything__echo",
        "echo",
    ];

    fn recover(content: &str) -> Option<Vec<(String, Value)>> {
        recover_tool_calls(content, TOOLS).map(|calls| {
            calls
                .into_iter()
                .map(|c| (c.function.name, c.function.arguments))
                .collect()
        })
    }

    fn one(name: &str, args: Value) -> Option<Vec<(String, Value)>> {
        Some(vec![(name.to_string(), args)])
    }

    #[test]
    fn json_prefix_detection() {
        assert!(might_be_call("  {\"na"));
        assert!(might_be_call("``"));
        assert!(might_be_call("<tool"));
        assert!(!might_be_call("Hello"));
        assert!(!might_be_call("<b>"));
    }

    #[test]
    fn bare_object_with_arguments_or_parameters() {
        assert_eq!(
            recover(r#"{"name": "fetch__fetch", "arguments": {"url": "http://x"}}"#),
            one("fetch__fetch", json!({"url": "http://x"}))
        );
        assert_eq!(
            recover("  \n{\"name\": \"fetch__fetch\", \"parameters\": {\"url\": \"http://x\"}}\n "),
            one("fetch__fetch", json!({"url": "http://x"}))
        );
        assert_eq!(
            recover(r#"{"name": "memory__read_graph"}"#),
            one("memory__read_graph", json!({}))
        );
        assert_eq!(
            recover(r#"{"type": "function", "name": "memory__read_graph", "parameters": null}"#),
            one("memory__read_graph", json!({}))
        );
    }

    #[test]
    fn list_of_calls_and_separated_objects() {
        let expected = Some(vec![
            ("memory__read_graph".to_string(), json!({})),
            ("fetch__fetch".to_string(), json!({"url": "u"})),
        ]);
        assert_eq!(
            recover(
                r#"[{"name": "memory__read_graph", "arguments": {}}, {"name": "fetch__fetch", "arguments": {"url": "u"}}]"#
            ),
            expected
        );
        assert_eq!(
            recover(
                "{\"name\": \"memory__read_graph\", \"arguments\": {}}\n{\"name\": \"fetch__fetch\", \"arguments\": {\"url\": \"u\"}}"
            ),
            expected
        );
        assert_eq!(
            recover(
                r#"{"name": "memory__read_graph", "parameters": {}}; {"name": "fetch__fetch", "parameters": {"url": "u"}}"#
            ),
            expected
        );
    }

    #[test]
    fn function_wrapper_and_tool_calls_envelope() {
        assert_eq!(
            recover(
                r#"{"function": {"name": "everything__echo", "arguments": {"message": "hi"}}}"#
            ),
            one("everything__echo", json!({"message": "hi"}))
        );
        assert_eq!(
            recover(
                r#"{"type": "function", "id": "call_1", "function": {"name": "everything__echo", "arguments": {"message": "hi"}}}"#
            ),
            one("everything__echo", json!({"message": "hi"}))
        );
        assert_eq!(
            recover(
                r#"{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "everything__echo", "arguments": {"message": "a"}}}, {"name": "memory__read_graph", "arguments": {}}]}"#
            ),
            Some(vec![
                ("everything__echo".to_string(), json!({"message": "a"})),
                ("memory__read_graph".to_string(), json!({})),
            ])
        );
    }

    #[test]
    fn inside_a_json_fence() {
        let content =
            "```json\n{\"name\": \"fetch__fetch\", \"arguments\": {\"url\": \"http://x\"}}\n```";
        assert_eq!(
            recover(content),
            one("fetch__fetch", json!({"url": "http://x"}))
        );
        let content = "```\n[{\"name\": \"memory__read_graph\", \"arguments\": {}}]\n```\n";
        assert_eq!(recover(content), one("memory__read_graph", json!({})));
    }

    #[test]
    fn inside_tool_call_tags() {
        let content = "<tool_call>\n{\"name\": \"fetch__fetch\", \"arguments\": {\"url\": \"http://x\"}}\n</tool_call>";
        assert_eq!(
            recover(content),
            one("fetch__fetch", json!({"url": "http://x"}))
        );
        let two = "<tool_call>\n{\"name\": \"memory__read_graph\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"everything__echo\", \"arguments\": {\"message\": \"m\"}}\n</tool_call>";
        assert_eq!(
            recover(two),
            Some(vec![
                ("memory__read_graph".to_string(), json!({})),
                ("everything__echo".to_string(), json!({"message": "m"})),
            ])
        );
        let unclosed = "<tool_call>\n{\"name\": \"memory__read_graph\", \"arguments\": {}}";
        assert_eq!(recover(unclosed), one("memory__read_graph", json!({})));
    }

    #[test]
    fn after_python_tag() {
        assert_eq!(
            recover("<|python_tag|>{\"name\": \"memory__read_graph\", \"parameters\": {}}"),
            one("memory__read_graph", json!({}))
        );
    }

    #[test]
    fn arguments_as_a_json_string() {
        assert_eq!(
            recover(
                r#"{"name": "fetch__fetch", "arguments": "{\"url\": \"http://x\", \"max_length\": 500}"}"#
            ),
            one(
                "fetch__fetch",
                json!({"url": "http://x", "max_length": 500})
            )
        );
        assert_eq!(
            recover(r#"{"function": {"name": "memory__read_graph", "arguments": ""}}"#),
            one("memory__read_graph", json!({}))
        );
    }

    #[test]
    fn bare_name_resolves_to_the_only_namespaced_tool() {
        assert_eq!(
            recover(r#"{"name": "read_graph", "arguments": {}}"#),
            one("memory__read_graph", json!({}))
        );
        // `echo` is itself offered: the exact name wins over `everything__echo`.
        assert_eq!(
            recover(r#"{"name": "echo", "arguments": {}}"#),
            one("echo", json!({}))
        );
    }

    #[test]
    fn ambiguous_bare_name_is_not_recovered() {
        let tools = ["a__search", "b__search"];
        assert!(recover_tool_calls(r#"{"name": "search", "arguments": {}}"#, &tools).is_none());
        assert!(recover_tool_calls(r#"{"name": "a__search", "arguments": {}}"#, &tools).is_some());
    }

    #[test]
    fn unknown_tools_are_not_recovered() {
        assert_eq!(
            recover(r#"{"name": "get_weather", "arguments": {"city": "Oslo"}}"#),
            None
        );
        // One unknown call spoils the lot: we do not run half of what the model meant.
        assert_eq!(
            recover(
                r#"[{"name": "memory__read_graph", "arguments": {}}, {"name": "nope", "arguments": {}}]"#
            ),
            None
        );
        assert_eq!(
            recover_tool_calls(r#"{"name": "memory__read_graph", "arguments": {}}"#, &[]),
            None
        );
    }

    #[test]
    fn prose_around_json_is_never_hijacked() {
        for content in [
            r#"You can call it like this: {"name": "fetch__fetch", "arguments": {"url": "http://x"}}"#,
            "{\"name\": \"fetch__fetch\", \"arguments\": {\"url\": \"http://x\"}}\nThat is how you would fetch it.",
            "Here:\n```json\n{\"name\": \"fetch__fetch\", \"arguments\": {}}\n```",
            "```json\n{\"name\": \"fetch__fetch\", \"arguments\": {}}\n```\nDone.",
            "<tool_call>{\"name\": \"fetch__fetch\", \"arguments\": {}}</tool_call> and then some words",
            "```python\n{\"name\": \"fetch__fetch\", \"arguments\": {}}\n```",
        ] {
            assert_eq!(recover(content), None, "{content}");
        }
    }

    #[test]
    fn json_that_is_not_a_tool_call_is_left_alone() {
        for content in [
            "",
            "   ",
            "Hello there",
            "42",
            "\"memory__read_graph\"",
            "[]",
            "{}",
            r#"{"name": "memory__read_graph", "age": 3}"#,
            r#"{"name": "memory__read_graph", "arguments": {}, "parameters": {}}"#,
            r#"{"name": "memory__read_graph", "arguments": [1, 2]}"#,
            r#"{"name": "memory__read_graph", "arguments": "not json"}"#,
            r#"{"name": "memory__read_graph", "arguments": 5}"#,
            r#"{"name": 5, "arguments": {}}"#,
            r#"{"tool_calls": []}"#,
            r#"{"tool_calls": [{"name": "memory__read_graph"}], "content": "I will now read the graph"}"#,
            r#"{"function": {"name": "memory__read_graph"}, "extra": true}"#,
            r#"[{"name": "memory__read_graph"}, 3]"#,
            r#"{"name": "memory__read_graph", "arguments": {}"#,
            r#"{"name": "memory__read_graph", "arguments": {}} trailing"#,
        ] {
            assert_eq!(recover(content), None, "{content}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A tool call as models write it in text, in each wrapper the recovery accepts.
    fn written_call() -> impl Strategy<Value = String> {
        let wrapper = prop::sample::select(vec![
            ("", ""),
            ("```json\n", "\n```"),
            ("<tool_call>", "</tool_call>"),
            ("<|python_tag|>", ""),
            ("[", "]"),
        ]);
        (wrapper, "[a-z_]{1,12}", "[ -~]{0,20}", any::<bool>()).prop_map(
            |((open, close), name, value, parameters)| {
                let key = if parameters {
                    "parameters"
                } else {
                    "arguments"
                };
                let call = serde_json::json!({"name": name, key: {"q": value}});
                format!("{open}{call}{close}")
            },
        )
    }

    proptest! {
        /// Every prefix of a call written as text is held back: none of it streams to the user.
        #[test]
        fn every_prefix_of_a_written_call_is_held(call in written_call(), lead in "[ \n]{0,2}") {
            let text = format!("{lead}{call}");
            for (i, _) in text.char_indices().skip(1) {
                prop_assert!(might_be_call(&text[..i]), "not held: {:?}", &text[..i]);
            }
            prop_assert!(might_be_call(&text));
        }

        /// Prose streams at once: text that starts with a letter or digit is never held.
        #[test]
        fn prose_is_never_held(first in "[A-Za-z0-9]", rest in ".{0,40}") {
            let text = format!("{first}{rest}");
            prop_assert!(!might_be_call(&text));
        }

        /// Arbitrary replies give calls or nothing, never a panic, and a recovered call always
        /// names a known tool with an object of arguments.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}", call in written_call()) {
            const TOOLS: &[&str] = &["memory__read_graph", "fetch__fetch"];
            for input in [text.as_str(), call.as_str()] {
                if let Some(calls) = recover_tool_calls(input, TOOLS) {
                    for c in calls {
                        prop_assert!(TOOLS.contains(&c.function.name.as_str()));
                        prop_assert!(c.function.arguments.is_object());
                    }
                }
            }
        }
    }
}
