//! Running the tool calls of one round: `find_tools` answered here, filtered or unapproved calls
//! refused with a message the model reads, everything else through the tool host.

use std::time::Duration;

use serde_json::Value;

use super::plan::TurnPlan;
use super::{Engine, TurnObserver, TurnRequest, tool_search};
use crate::llm::ToolCall;
use crate::tool::{OutcomeKind, ToolOutcome, split_namespaced};

impl Engine {
    /// Runs the round's tool calls concurrently; outcomes in the order the model gave them.
    pub(super) async fn run_tools(
        &self,
        calls: &[ToolCall],
        request: &TurnRequest,
        plan: &TurnPlan,
        observer: &dyn TurnObserver,
    ) -> Vec<ToolOutcome> {
        let runs = calls.iter().map(|call| async move {
            let name = call.function.name.as_str();
            let args = normalize_arguments(&call.function.arguments);
            observer.on_tool_call(name, &args).await;
            let outcome = if plan.on_demand && name == tool_search::FIND_TOOLS {
                ToolOutcome {
                    server: String::new(),
                    tool: tool_search::FIND_TOOLS.into(),
                    content: tool_search::run(&plan.tools, &args),
                    kind: OutcomeKind::Ok,
                    duration: Duration::ZERO,
                }
            } else if request
                .tool_filter
                .as_ref()
                .is_some_and(|allow| !allow(name))
            {
                refused(name, "this tool is not available to you here")
            } else if self.inner.tools.needs_approval(name)
                && !observer.approve_tool(name, &args).await
            {
                refused(
                    name,
                    "the user did not approve this tool call; do not retry it, answer without it",
                )
            } else {
                self.inner.tools.call(name, args.clone()).await
            };
            observer.on_tool_result(name, &outcome).await;
            outcome
        });
        futures::future::join_all(runs).await
    }
}

fn refused(name: &str, why: &str) -> ToolOutcome {
    let (server, tool) = split_namespaced(name).unwrap_or(("", name));
    ToolOutcome {
        server: server.to_string(),
        tool: tool.to_string(),
        content: format!("Tool call refused: {why}."),
        kind: OutcomeKind::Denied,
        duration: Duration::ZERO,
    }
}

/// Some models send arguments as a JSON string holding an object; tools want the object.
fn normalize_arguments(args: &Value) -> Value {
    match args {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => args.clone(),
        },
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_arguments_become_objects() {
        assert_eq!(
            normalize_arguments(&Value::String("{\"a\":1}".into())),
            serde_json::json!({"a": 1})
        );
        assert_eq!(normalize_arguments(&Value::Null), serde_json::json!({}));
        assert_eq!(
            normalize_arguments(&Value::String("x".into())),
            Value::String("x".into())
        );
    }
}
