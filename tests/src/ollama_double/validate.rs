//! Checks a request body the way Ollama's Go `encoding/json` decoding into `api.ChatRequest`
//! would: wrong JSON types fail with Go's error text, unknown fields are ignored, `null` is
//! accepted anywhere (Go leaves the zero value).

use serde_json::{Map, Value};

/// Go's name for the JSON type of `v`, as `json.UnmarshalTypeError` prints it.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Bool,
    Int,
    Array,
    Object,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Bool => v.is_boolean(),
            Kind::Int => v.is_i64() || v.is_u64(),
            Kind::Array => v.is_array(),
            Kind::Object => v.is_object(),
        }
    }
}

/// `json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments`
fn type_error(v: &Value, go_struct: &str, path: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {go_struct}.{path} of type {go_type}",
        json_kind(v)
    )
}

/// Checks field `key` of `object` (absent and null are fine).
fn field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    kind: Kind,
    go_struct: &str,
    path: &str,
    go_type: &str,
) -> Result<Option<&'a Value>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) if kind.accepts(v) => Ok(Some(v)),
        Some(v) => Err(type_error(v, go_struct, path, go_type)),
    }
}

/// Validates the body of `POST /api/chat`; `Err` is the message Ollama would put in `error`.
pub(super) fn chat_request(body: &Value) -> Result<(), String> {
    let Some(request) = body.as_object() else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type api.ChatRequest",
            json_kind(body)
        ));
    };
    let s = "ChatRequest";
    field(request, "model", Kind::Str, s, "model", "string")?;
    field(request, "stream", Kind::Bool, s, "stream", "bool")?;
    field(
        request,
        "options",
        Kind::Object,
        s,
        "options",
        "map[string]interface {}",
    )?;
    if let Some(messages) = field(
        request,
        "messages",
        Kind::Array,
        s,
        "messages",
        "[]api.Message",
    )? {
        for message in messages.as_array().into_iter().flatten() {
            self::message(message)?;
        }
    }
    if let Some(tools) = field(request, "tools", Kind::Array, s, "tools", "api.Tools")? {
        for tool in tools.as_array().into_iter().flatten() {
            self::tool(tool)?;
        }
    }
    if let Some(think) = request.get("think") {
        think_value(think)?;
    }
    if let Some(keep_alive) = request.get("keep_alive") {
        keep_alive_value(keep_alive)?;
    }
    Ok(())
}

/// `api.Message` decodes itself through a `type Alias Message`, so its type errors name
/// `Alias` and paths relative to the message (file 15d: `Go struct field Alias.content`).
fn message(message: &Value) -> Result<(), String> {
    let Some(m) = message.as_object() else {
        return if message.is_null() {
            Ok(())
        } else {
            Err(format!(
                "json: cannot unmarshal {} into Go value of type api.Alias",
                json_kind(message)
            ))
        };
    };
    let s = "Alias";
    field(m, "role", Kind::Str, s, "role", "string")?;
    field(m, "content", Kind::Str, s, "content", "string")?;
    field(m, "thinking", Kind::Str, s, "thinking", "string")?;
    field(m, "tool_name", Kind::Str, s, "tool_name", "string")?;
    field(m, "tool_call_id", Kind::Str, s, "tool_call_id", "string")?;
    if let Some(images) = field(m, "images", Kind::Array, s, "images", "[]api.ImageData")? {
        for image in images.as_array().into_iter().flatten() {
            if !(image.is_string() || image.is_null()) {
                return Err(type_error(image, s, "images", "api.ImageData"));
            }
        }
    }
    if let Some(calls) = field(
        m,
        "tool_calls",
        Kind::Array,
        s,
        "tool_calls",
        "[]api.ToolCall",
    )? {
        for call in calls.as_array().into_iter().flatten() {
            tool_call(call)?;
        }
    }
    Ok(())
}

/// What `buger/jsonparser` (which Ollama 0.24 decodes tool-call arguments with) says about
/// anything but an object (file 20b: arguments sent as a JSON string).
const ARGUMENTS_NOT_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";

fn tool_call(call: &Value) -> Result<(), String> {
    let Some(c) = call.as_object() else {
        return if call.is_null() {
            Ok(())
        } else {
            Err(type_error(call, "Alias", "tool_calls", "api.ToolCall"))
        };
    };
    field(c, "id", Kind::Str, "ToolCall", "tool_calls.id", "string")?;
    let Some(function) = field(
        c,
        "function",
        Kind::Object,
        "ToolCall",
        "tool_calls.function",
        "api.ToolCallFunction",
    )?
    else {
        return Ok(());
    };
    let Some(f) = function.as_object() else {
        return Ok(());
    };
    let s = "ToolCallFunction";
    let p = "tool_calls.function";
    field(f, "name", Kind::Str, s, &format!("{p}.name"), "string")?;
    field(f, "index", Kind::Int, s, &format!("{p}.index"), "int")?;
    match f.get("arguments") {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err(ARGUMENTS_NOT_OBJECT.to_string()),
    }
}

fn tool(tool: &Value) -> Result<(), String> {
    let Some(t) = tool.as_object() else {
        return if tool.is_null() {
            Ok(())
        } else {
            Err(type_error(tool, "ChatRequest", "tools", "api.Tool"))
        };
    };
    field(t, "type", Kind::Str, "Tool", "tools.type", "string")?;
    let Some(function) = field(
        t,
        "function",
        Kind::Object,
        "Tool",
        "tools.function",
        "api.ToolFunction",
    )?
    else {
        return Ok(());
    };
    let Some(f) = function.as_object() else {
        return Ok(());
    };
    let s = "ToolFunction";
    field(f, "name", Kind::Str, s, "tools.function.name", "string")?;
    field(
        f,
        "description",
        Kind::Str,
        s,
        "tools.function.description",
        "string",
    )?;
    field(
        f,
        "parameters",
        Kind::Object,
        s,
        "tools.function.parameters",
        "api.ToolFunctionParameters",
    )?;
    Ok(())
}

/// `think` is a bool, or one of "high" / "medium" / "low" (for models with levels).
fn think_value(v: &Value) -> Result<(), String> {
    match v {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::String(s) if matches!(s.as_str(), "high" | "medium" | "low") => Ok(()),
        Value::String(s) => Err(format!(
            "invalid think value: {s:?} (must be \"high\", \"medium\", \"low\", true, or false)"
        )),
        other => Err(format!(
            "invalid think value: {other} (must be \"high\", \"medium\", \"low\", true, or false)"
        )),
    }
}

/// `keep_alive` as Ollama's `api.Duration` reads it: a number of seconds (negative: forever)
/// or a Go duration string; the duration in nanoseconds, `None` for "forever".
pub(super) fn keep_alive_value(v: &Value) -> Result<Option<i128>, String> {
    const SECOND: i128 = 1_000_000_000;
    match v {
        Value::Null => Ok(Some(300 * SECOND)),
        Value::Number(n) => {
            let seconds = n.as_f64().unwrap_or(0.0);
            // Go: `time.Duration(int(t) * int(time.Second))`, truncating.
            Ok((seconds >= 0.0).then(|| (seconds.trunc() as i128) * SECOND))
        }
        Value::String(s) => {
            let d = super::go::parse_duration(s)?;
            Ok((d >= 0).then_some(d))
        }
        // Go prints `reflect.TypeOf(v)` of the decoded `any`.
        Value::Bool(_) => Err("Unsupported type: 'bool'".into()),
        Value::Array(_) => Err("Unsupported type: '[]interface {}'".into()),
        Value::Object(_) => Err("Unsupported type: 'map[string]interface {}'".into()),
    }
}

/// The JSON type each option Ollama knows must have (`api.Options` and `api.Runner`); others are
/// accepted and ignored (file 18), as Ollama only logs a warning.
#[derive(Clone, Copy, PartialEq, Debug)]
enum OptionKind {
    Int,
    Float,
    Bool,
    Strings,
}

const OPTIONS: &[(&str, OptionKind)] = &[
    ("num_keep", OptionKind::Int),
    ("seed", OptionKind::Int),
    ("num_predict", OptionKind::Int),
    ("top_k", OptionKind::Int),
    ("top_p", OptionKind::Float),
    ("min_p", OptionKind::Float),
    ("typical_p", OptionKind::Float),
    ("repeat_last_n", OptionKind::Int),
    ("temperature", OptionKind::Float),
    ("repeat_penalty", OptionKind::Float),
    ("presence_penalty", OptionKind::Float),
    ("frequency_penalty", OptionKind::Float),
    ("stop", OptionKind::Strings),
    ("num_ctx", OptionKind::Int),
    ("num_batch", OptionKind::Int),
    ("num_gpu", OptionKind::Int),
    ("main_gpu", OptionKind::Int),
    ("use_mmap", OptionKind::Bool),
    ("num_thread", OptionKind::Int),
];

/// `api.Options.FromMap`: the first option of the wrong type, in Go's words (a 500 from
/// `/api/chat`, file 15). Integers accept any JSON number (Go truncates a float), floats any
/// number, `null` is skipped.
pub(super) fn options(options: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in options {
        let Some((_, kind)) = OPTIONS.iter().find(|(name, _)| name == key) else {
            continue;
        };
        let ok = match (kind, value) {
            (_, Value::Null) => true,
            (OptionKind::Int | OptionKind::Float, v) => v.is_number(),
            (OptionKind::Bool, v) => v.is_boolean(),
            (OptionKind::Strings, Value::Array(items)) => {
                if items.iter().any(|i| !i.is_string()) {
                    return Err(format!("option {key:?} must be of an array of strings"));
                }
                true
            }
            (OptionKind::Strings, _) => false,
        };
        if !ok {
            let wanted = match kind {
                OptionKind::Int => "integer",
                OptionKind::Float => "float32",
                OptionKind::Bool => "boolean",
                OptionKind::Strings => "array",
            };
            return Err(format!("option {key:?} must be of type {wanted}"));
        }
    }
    Ok(())
}

/// An integer option as Ollama reads it (a float is truncated), if set.
pub(super) fn int_option(options: &Map<String, Value>, key: &str) -> Option<i64> {
    let v = options.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f.trunc() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_type_errors() {
        let e = chat_request(
            &json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"function": {"name": "x", "arguments": "{}"}}]}]}),
        )
        .expect_err("string arguments rejected");
        assert_eq!(e, ARGUMENTS_NOT_OBJECT);
        assert_eq!(
            chat_request(&json!({"model": "m", "messages": [{"role": "user", "content": 5}]}))
                .expect_err("number content"),
            "json: cannot unmarshal number into Go struct field Alias.content of type string"
        );
        assert!(
            chat_request(&json!({"model": 3}))
                .expect_err("number model")
                .contains("ChatRequest.model")
        );
        assert!(
            chat_request(&json!([]))
                .expect_err("array body")
                .contains("Go value of type api.ChatRequest")
        );
        assert!(chat_request(&json!({"model": "m", "stream": "yes"})).is_err());
        assert!(chat_request(&json!({"model": "m", "think": "very"})).is_err());
        assert!(chat_request(&json!({"model": "m", "keep_alive": "5 minutes"})).is_err());
    }

    #[test]
    fn option_types() {
        let o = |v: Value| v.as_object().cloned().expect("object");
        assert_eq!(
            options(&o(json!({"num_ctx": "8192"}))),
            Err("option \"num_ctx\" must be of type integer".into())
        );
        options(&o(
            json!({"num_ctx": 2048.5, "bogus_opt": "x", "stop": ["a"], "seed": null}),
        ))
        .expect("a float is an integer to Go, unknown options are ignored");
        assert_eq!(
            options(&o(json!({"temperature": "hot"}))),
            Err("option \"temperature\" must be of type float32".into())
        );
        assert_eq!(
            options(&o(json!({"stop": "x"}))),
            Err("option \"stop\" must be of type array".into())
        );
        assert_eq!(
            int_option(&o(json!({"num_ctx": 2048.5})), "num_ctx"),
            Some(2048)
        );
    }

    #[test]
    fn accepts_what_go_accepts() {
        chat_request(&json!({
            "model": "m", "unknown_field": 1, "stream": null, "think": "high", "keep_alive": "1h30m",
            "messages": [{"role": "user", "content": "hi", "whatever": true, "images": null}],
            "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}],
            "options": {"num_ctx": 2048}
        }))
        .expect("valid request");
        chat_request(&json!({"model": "m", "keep_alive": -1})).expect("numeric keep_alive");
        assert_eq!(keep_alive_value(&json!(-1)), Ok(None));
        assert_eq!(keep_alive_value(&json!(0)), Ok(Some(0)));
        assert_eq!(
            keep_alive_value(&json!("forever")),
            Err("time: invalid duration \"forever\"".into())
        );
        chat_request(&json!({"model": "m", "keep_alive": "300ms"})).expect("ms keep_alive");
    }
}
