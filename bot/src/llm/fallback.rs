//! (placeholder until the `llm` branch lands: its fallback replaces this file)
use super::ToolCall;

pub fn recover_tool_calls(content: &str, known_tools: &[&str]) -> Option<Vec<ToolCall>> {
    let v: serde_json::Value = serde_json::from_str(content.trim()).ok()?;
    let name = v.get("name")?.as_str()?;
    known_tools.contains(&name).then(|| {
        vec![ToolCall::new(
            name,
            v.get("arguments").cloned().unwrap_or_default(),
        )]
    })
}
