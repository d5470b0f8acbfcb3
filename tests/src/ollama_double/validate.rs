//! Checks a request body the way Ollama's Go `encoding/json` decoding into `api.ChatRequest`
//! would: wrong JSON types fail with Go's error text, unknown fields are ignored, `null` is
//! accepted anywhere (Go leaves the zero value).

use serde_json::{Map, Value};

/// Go's name for the JSON type of `v`, as `json.UnmarshalTypeError` prints it.
fn json_kind(v: &Value) -> &'static str {
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

fn message(message: &Value) -> Result<(), String> {
    let Some(m) = message.as_object() else {
        return if message.is_null() {
            Ok(())
        } else {
            Err(type_error(
                message,
                "ChatRequest",
                "messages",
                "api.Message",
            ))
        };
    };
    let s = "Message";
    field(m, "role", Kind::Str, s, "messages.role", "string")?;
    field(m, "content", Kind::Str, s, "messages.content", "string")?;
    field(m, "thinking", Kind::Str, s, "messages.thinking", "string")?;
    field(m, "tool_name", Kind::Str, s, "messages.tool_name", "string")?;
    if let Some(images) = field(
        m,
        "images",
        Kind::Array,
        s,
        "messages.images",
        "[]api.ImageData",
    )? {
        for image in images.as_array().into_iter().flatten() {
            if !(image.is_string() || image.is_null()) {
                return Err(type_error(image, s, "messages.images", "api.ImageData"));
            }
        }
    }
    if let Some(calls) = field(
        m,
        "tool_calls",
        Kind::Array,
        s,
        "messages.tool_calls",
        "[]api.ToolCall",
    )? {
        for call in calls.as_array().into_iter().flatten() {
            tool_call(call)?;
        }
    }
    Ok(())
}

fn tool_call(call: &Value) -> Result<(), String> {
    let Some(c) = call.as_object() else {
        return if call.is_null() {
            Ok(())
        } else {
            Err(type_error(
                call,
                "Message",
                "messages.tool_calls",
                "api.ToolCall",
            ))
        };
    };
    let Some(function) = field(
        c,
        "function",
        Kind::Object,
        "ToolCall",
        "messages.tool_calls.function",
        "api.ToolCallFunction",
    )?
    else {
        return Ok(());
    };
    let Some(f) = function.as_object() else {
        return Ok(());
    };
    let s = "ToolCallFunction";
    let p = "messages.tool_calls.function";
    field(f, "name", Kind::Str, s, &format!("{p}.name"), "string")?;
    field(f, "index", Kind::Int, s, &format!("{p}.index"), "int")?;
    field(
        f,
        "arguments",
        Kind::Object,
        s,
        &format!("{p}.arguments"),
        "api.ToolCallFunctionArguments",
    )?;
    Ok(())
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

/// `keep_alive` is seconds (a number) or a Go duration string ("5m", "1h30m", "-1").
fn keep_alive_value(v: &Value) -> Result<(), String> {
    match v {
        Value::Null | Value::Number(_) => Ok(()),
        Value::String(s) if is_go_duration(s) => Ok(()),
        Value::String(s) => Err(format!("time: invalid duration {s:?}")),
        _ => Err("Unsupported type: '".to_string() + json_kind(v) + "'"),
    }
}

fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" || s.parse::<f64>().is_ok() {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u))
        else {
            return false;
        };
        // "ms" must win over "m": the list is ordered so that two-letter units come first.
        rest = &rest[unit.len()..];
    }
    true
}

/// Roles Ollama's chat templates know.
pub(super) const ROLES: &[&str] = &["system", "user", "assistant", "tool"];

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
        assert_eq!(
            e,
            "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments"
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
    fn accepts_what_go_accepts() {
        chat_request(&json!({
            "model": "m", "unknown_field": 1, "stream": null, "think": "high", "keep_alive": "1h30m",
            "messages": [{"role": "user", "content": "hi", "whatever": true, "images": null}],
            "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}],
            "options": {"num_ctx": 2048}
        }))
        .expect("valid request");
        chat_request(&json!({"model": "m", "keep_alive": -1})).expect("numeric keep_alive");
        chat_request(&json!({"model": "m", "keep_alive": "300ms"})).expect("ms keep_alive");
    }
}
