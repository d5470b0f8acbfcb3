//! `remember`: a fact about a person stored in the knowledge graph of the memory MCP server
//! (`@modelcontextprotocol/server-memory`): the person is an entity, the fact one of its
//! observations. The calls go through the same approval as the model's own tool calls, so a
//! command cannot do what a chat message could not.

use serde_json::{Value, json};

use super::{Engine, TurnObserver};
use crate::llm::ToolSpec;
use crate::mcp::{namespaced, split_namespaced};

const CREATE_ENTITIES: &str = "create_entities";
const ADD_OBSERVATIONS: &str = "add_observations";

/// Why nothing was remembered. The message is meant for the person.
#[derive(Debug, thiserror::Error)]
pub enum RememberError {
    #[error(
        "no memory server is configured or ready: add the memory MCP server under `[[mcp.servers]]` (see the README)"
    )]
    NoMemoryServer,
    #[error("`{tool}` was not approved, so nothing was remembered")]
    NotApproved { tool: String },
    #[error("the memory server refused while {step}: {message}")]
    Refused { step: &'static str, message: String },
}

impl Engine {
    /// Stores `fact` as an observation of the entity `about` (created when new) on the first
    /// server that offers the memory tools.
    pub async fn remember(
        &self,
        about: &str,
        fact: &str,
        observer: &dyn TurnObserver,
    ) -> Result<(), RememberError> {
        let server = memory_server(&self.tools().tools()).ok_or(RememberError::NoMemoryServer)?;
        self.call_approved(
            &namespaced(&server, CREATE_ENTITIES),
            json!({"entities": [{"name": about, "entityType": "person", "observations": []}]}),
            "creating the entity",
            observer,
        )
        .await?;
        self.call_approved(
            &namespaced(&server, ADD_OBSERVATIONS),
            json!({"observations": [{"entityName": about, "contents": [fact]}]}),
            "adding the observation",
            observer,
        )
        .await
    }

    async fn call_approved(
        &self,
        name: &str,
        arguments: Value,
        step: &'static str,
        observer: &dyn TurnObserver,
    ) -> Result<(), RememberError> {
        let tools = self.tools();
        if tools.needs_approval(name) && !observer.approve_tool(name, &arguments).await {
            return Err(RememberError::NotApproved {
                tool: name.to_string(),
            });
        }
        observer.on_tool_call(name, &arguments).await;
        let outcome = tools.call(name, arguments).await;
        observer.on_tool_result(name, &outcome).await;
        if outcome.is_error() {
            return Err(RememberError::Refused {
                step,
                message: outcome.content,
            });
        }
        Ok(())
    }
}

/// The first server offering both memory tools.
fn memory_server(tools: &[ToolSpec]) -> Option<String> {
    tools
        .iter()
        .filter_map(|t| split_namespaced(&t.name))
        .filter(|(_, tool)| *tool == CREATE_ENTITIES)
        .map(|(server, _)| server)
        .find(|server| {
            let add = namespaced(server, ADD_OBSERVATIONS);
            tools.iter().any(|t| t.name == add)
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: json!({"type": "object"}).into(),
        }
    }

    #[test]
    fn the_memory_server_offers_both_tools() {
        let tools = [
            spec("half__create_entities"),
            spec("fetch__fetch"),
            spec("mem__create_entities"),
            spec("mem__add_observations"),
        ];
        assert_eq!(memory_server(&tools).as_deref(), Some("mem"));
        assert_eq!(memory_server(&tools[..2]), None);
    }
}
