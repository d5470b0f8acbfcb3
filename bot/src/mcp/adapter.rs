//! MCP ⇄ Ollama: tool schemas become compact Ollama `parameters`, tool results become the text
//! the model reads (text joined, binary parts described, huge results cut with a note).

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents, Tool};
use serde_json::{Map, Value};

use super::namespaced;
use crate::tool::ToolSpec;

/// The Ollama-facing spec of `tool` on `server`: namespaced name, description, and the MCP
/// `inputSchema` as `parameters` (made an object schema, `$schema` dropped, otherwise intact).
pub fn tool_spec(server: &str, tool: &Tool) -> ToolSpec {
    let description = match (&tool.description, &tool.title) {
        (Some(d), _) if !d.trim().is_empty() => d.to_string(),
        (_, Some(t)) => t.clone(),
        _ => String::new(),
    };
    ToolSpec {
        name: namespaced(server, &tool.name),
        description,
        parameters: parameters(&tool.input_schema).into(),
    }
}

/// An MCP input schema as Ollama `parameters`, compacted (see [`compact_schema`]).
pub fn parameters(input_schema: &Map<String, Value>) -> Value {
    let mut schema = input_schema.clone();
    // Ollama's function `parameters` must be an object schema; some servers omit `type` or
    // `properties` for tools without arguments.
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    if schema.get("type").and_then(Value::as_str) == Some("object") {
        schema
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let mut schema = Value::Object(schema);
    compact_schema(&mut schema);
    schema
}

/// Schemas as servers write them carry weight the model does not need (`$schema`, titles,
/// `additionalProperties: false`, integer bounds at JavaScript's largest safe integer); every
/// request repeats them, so drop that weight once, when the tool is listed. Only schema keywords
/// are touched: a property named `title`, or a `default` value, is data and stays. Arguments are
/// still checked against the server's own schema.
pub fn compact_schema(v: &mut Value) {
    /// JavaScript's Number.MAX_SAFE_INTEGER, which zod writes for `.int()`: no real bound.
    const SAFE_INTEGER: i64 = 9_007_199_254_740_991;
    let Value::Object(map) = v else { return };
    map.remove("$schema");
    map.remove("title");
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        map.remove("additionalProperties");
    }
    if map.get("maximum").and_then(Value::as_i64) >= Some(SAFE_INTEGER) {
        map.remove("maximum");
    }
    if map
        .get("minimum")
        .and_then(Value::as_i64)
        .is_some_and(|m| m <= -SAFE_INTEGER)
    {
        map.remove("minimum");
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            // Maps of name → schema.
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(named) = value {
                    named.values_mut().for_each(compact_schema);
                }
            }
            // One schema.
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "unevaluatedProperties"
            | "unevaluatedItems" => match value {
                Value::Array(list) => list.iter_mut().for_each(compact_schema),
                other => compact_schema(other),
            },
            // Lists of schemas.
            "anyOf" | "allOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(list) = value {
                    list.iter_mut().for_each(compact_schema);
                }
            }
            _ => {}
        }
    }
}

/// The text of a tool result for the model: text parts joined by newlines, other parts described
/// briefly, `structuredContent` as JSON when there is no text at all.
pub fn result_text(result: &CallToolResult) -> String {
    let parts: Vec<String> = result.content.iter().map(describe_block).collect();
    let has_text = result
        .content
        .iter()
        .any(|c| matches!(c, ContentBlock::Text(_)));
    let mut text = parts.join("\n");
    if !has_text && let Some(structured) = &result.structured_content {
        let json = serde_json::to_string(structured).unwrap_or_default();
        if text.is_empty() {
            text = json;
        } else {
            text = format!("{json}\n{text}");
        }
    }
    if text.is_empty() {
        text = "(the tool returned no content)".into();
    }
    text
}

fn describe_block(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(t) => t.text.clone(),
        ContentBlock::Image(i) => {
            format!("[image: {}, {} bytes]", i.mime_type, base64_len(&i.data))
        }
        ContentBlock::Audio(a) => {
            format!("[audio: {}, {} bytes]", a.mime_type, base64_len(&a.data))
        }
        ContentBlock::Resource(r) => match &r.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                format!("[resource {uri}]\n{text}")
            }
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => format!(
                "[resource {uri}: {}, {} bytes]",
                mime_type.as_deref().unwrap_or("application/octet-stream"),
                base64_len(blob)
            ),
            _ => "[resource of a kind this client does not show]".into(),
        },
        ContentBlock::ResourceLink(link) => {
            let mut s = format!("[resource link: {} ({})", link.name, link.uri);
            if let Some(d) = link.description.as_deref().filter(|d| !d.is_empty()) {
                s.push_str(": ");
                s.push_str(d);
            }
            s.push(']');
            s
        }
        // ContentBlock is non_exhaustive: a kind added by a later protocol version.
        _ => "[content of a kind this client does not show]".into(),
    }
}

/// Decoded size of base64 data, without decoding it.
fn base64_len(data: &str) -> usize {
    let trimmed = data.trim_end();
    let padding = trimmed.bytes().rev().take_while(|&b| b == b'=').count();
    (trimmed.len() / 4 * 3 + (trimmed.len() % 4).saturating_sub(1)).saturating_sub(padding)
}

/// Cuts `text` to at most `max_chars` characters (at a char boundary) and says so; `0` means no
/// limit.
pub fn truncate(text: String, max_chars: usize) -> String {
    if max_chars == 0 {
        return text;
    }
    let Some((cut, _)) = text.char_indices().nth(max_chars) else {
        return text;
    };
    let total = text.chars().count();
    let mut out = String::with_capacity(cut + 64);
    out.push_str(&text[..cut]);
    out.push_str(&format!(
        "\n[truncated: {max_chars} of {total} characters shown]"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(schema: Value) -> Tool {
        serde_json::from_value(
            json!({"name": "get-sum", "description": "Adds", "inputSchema": schema}),
        )
        .expect("tool")
    }

    #[test]
    fn schema_becomes_parameters() {
        let t = tool(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"a": {"type": "number"}},
            "required": ["a"],
            "additionalProperties": false
        }));
        let spec = tool_spec("everything", &t);
        assert_eq!(spec.name, "everything__get-sum");
        assert_eq!(spec.description, "Adds");
        assert_eq!(
            *spec.parameters,
            json!({"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]})
        );
    }

    fn compact(mut schema: Value) -> Value {
        compact_schema(&mut schema);
        schema
    }

    #[test]
    fn compact_strips_weight_but_keeps_meaning() {
        let t = compact(
            json!({"$schema": "x", "type": "object", "additionalProperties": false,
                "properties": {"a": {"type": "string", "title": "A", "description": "keep"}}, "required": ["a"]}),
        );
        assert_eq!(
            t,
            json!({"type": "object", "properties": {"a": {"type": "string", "description": "keep"}}, "required": ["a"]})
        );
    }

    #[test]
    fn compact_leaves_properties_and_values_named_like_keywords() {
        let t = compact(json!({"type": "object", "title": "Args",
                "properties": {
                    "title": {"type": "string", "title": "Title"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991_i64},
                    "opts": {"type": "object", "default": {"title": "kept"},
                        "properties": {"$schema": {"type": "string"}}},
                    "list": {"type": "array", "items": {"type": "object", "title": "Item",
                        "properties": {"title": {"type": "string"}}}}
                },
                "required": ["title"]}));
        assert_eq!(
            t,
            json!({"type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "n": {"type": "integer", "minimum": 1},
                    "opts": {"type": "object", "default": {"title": "kept"},
                        "properties": {"$schema": {"type": "string"}}},
                    "list": {"type": "array", "items": {"type": "object",
                        "properties": {"title": {"type": "string"}}}}
                },
                "required": ["title"]})
        );
    }

    #[test]
    fn empty_schema_becomes_object_schema() {
        let t = tool(json!({}));
        assert_eq!(
            *tool_spec("s", &t).parameters,
            json!({"type": "object", "properties": {}})
        );
    }

    fn result(v: Value) -> CallToolResult {
        serde_json::from_value(v).expect("result")
    }

    #[test]
    fn text_parts_joined_and_binary_described() {
        let r = result(json!({"content": [
            {"type": "text", "text": "first"},
            {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
            {"type": "text", "text": "second"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "inside"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAECAw==", "mimeType": "application/x"}},
            {"type": "resource_link", "uri": "file:///c", "name": "c", "description": "a link"}
        ]}));
        assert_eq!(
            result_text(&r),
            "first\n[image: image/png, 5 bytes]\nsecond\n[resource file:///a.txt]\ninside\n\
             [resource file:///b.bin: application/x, 4 bytes]\n[resource link: c (file:///c): a link]"
        );
    }

    #[test]
    fn structured_content_used_without_text() {
        let r = result(json!({"content": [], "structuredContent": {"temperature": 21}}));
        assert_eq!(result_text(&r), r#"{"temperature":21}"#);
        let r = result(json!({"content": [{"type": "text", "text": "21 degrees"}],
                               "structuredContent": {"temperature": 21}}));
        assert_eq!(result_text(&r), "21 degrees");
        let r = result(json!({"content": []}));
        assert_eq!(result_text(&r), "(the tool returned no content)");
    }

    #[test]
    fn base64_sizes() {
        assert_eq!(base64_len(""), 0);
        assert_eq!(base64_len("aA=="), 1);
        assert_eq!(base64_len("aGk="), 2);
        assert_eq!(base64_len("aGVs"), 3);
        assert_eq!(base64_len("aGVsbG8"), 5); // unpadded
    }

    #[test]
    fn truncation_at_char_boundary_with_note() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("exactly".into(), 7), "exactly");
        assert_eq!(truncate("anything".into(), 0), "anything");
        let t = truncate("héllo wörld".into(), 4);
        assert_eq!(t, "héll\n[truncated: 4 of 11 characters shown]");
        let emoji = "🙂".repeat(10);
        assert!(truncate(emoji, 3).starts_with("🙂🙂🙂\n[truncated: 3 of 10"));
    }
}
