//! Tools on demand. Tool definitions are resent with every request (Ollama keeps no state), and
//! a few MCP servers easily bring 20+ tools and 3–4 thousand tokens: half of a small model's
//! context, in every request. On demand, the model is offered `find_tools`, whose description is
//! a one-line catalog of every tool (the same in every request, so that it never moves the
//! prompt's start), plus the full definitions of the tools it has called or found in the
//! session so far, in the order they were loaded: the list only ever grows.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::llm::{ChatMessage, Role};
use crate::tool::{ToolSpec, split_namespaced};

/// The meta tool's name (no `__`, so no server's tool can have it).
pub const FIND_TOOLS: &str = "find_tools";
/// Tools returned by one search.
const MAX_FOUND: usize = 5;
/// The score of a tool named exactly.
const EXACT: u32 = 1000;

/// `find_tools`, with a catalog of `tools` grouped by server.
pub fn find_tools_spec(tools: &[&ToolSpec]) -> ToolSpec {
    let mut by_server: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in tools {
        let (server, tool) = split_namespaced(&t.name).unwrap_or(("", t.name.as_str()));
        by_server.entry(server).or_default().push(tool);
    }
    let catalog: Vec<String> = by_server
        .iter()
        .map(|(server, tools)| format!("{server}: {}", tools.join(", ")))
        .collect();
    ToolSpec {
        name: FIND_TOOLS.into(),
        description: format!(
            "Makes more tools available. Call it with tool names or with words for what you \
             need; the tools it finds can be called right after, as server__tool. All tools: {}.",
            catalog.join("; ")
        ),
        parameters: json!({
            "type": "object",
            "properties": {"query": {"type": "string", "description": "tool names or keywords"}},
            "required": ["query"]
        })
        .into(),
    }
}

/// Lower-case words of `text`, split at anything but letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The tools a query asks for: the ones it names (with or without the server) if any, else
/// the tools whose name, server or description share words with it, best first.
pub fn search<'a>(tools: &'a [ToolSpec], query: &str) -> Vec<&'a ToolSpec> {
    let query_words = words(query);
    let exact: HashSet<&str> = query
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut scored: Vec<(u32, usize, &ToolSpec)> = tools
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let (server, tool) = split_namespaced(&t.name).unwrap_or(("", t.name.as_str()));
            if exact.contains(t.name.as_str()) || exact.contains(tool) {
                return Some((EXACT, i, t));
            }
            let name_words = words(&t.name);
            let server_words = words(server);
            let description_words: HashSet<String> = words(&t.description).into_iter().collect();
            let score: u32 = query_words
                .iter()
                .map(|w| {
                    if name_words.contains(w) {
                        3
                    } else if server_words.contains(w) {
                        2
                    } else if w.len() > 2 && description_words.contains(w) {
                        1
                    } else {
                        0
                    }
                })
                .sum();
            (score > 0).then_some((score, i, t))
        })
        .collect();
    // Asked by name: those tools only.
    if scored.iter().any(|(score, _, _)| *score >= EXACT) {
        scored.retain(|(score, _, _)| *score >= EXACT);
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(MAX_FOUND)
        .map(|(_, _, t)| t)
        .collect()
}

/// The query of a `find_tools` call (a bare string is accepted too).
fn query_of(arguments: &Value) -> String {
    match arguments {
        Value::Object(map) => map
            .get("query")
            .map(|q| q.as_str().map_or_else(|| q.to_string(), str::to_string))
            .unwrap_or_default(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// What the model reads back from a `find_tools` call.
pub fn run(tools: &[ToolSpec], arguments: &Value) -> String {
    let query = query_of(arguments);
    if query.trim().is_empty() {
        return "find_tools needs a `query`: tool names from the catalog, or words for what you need."
            .into();
    }
    let found = search(tools, &query);
    if found.is_empty() {
        return format!(
            "No tool matches `{query}`. Try other words, or names from the catalog in find_tools' description."
        );
    }
    // Short: the definitions themselves are in the tools of the next request, and this result
    // rides along in the history.
    let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
    format!(
        "Found {}. Their definitions are now in your tools: call them.",
        names.join(", ")
    )
}

/// A search of an earlier turn (the call, or its result): left out of the prompt, since the
/// tools it found and then used stay loaded through the calls themselves.
pub fn is_trace(m: &ChatMessage) -> bool {
    match m.role {
        Role::Tool => m.tool_name.as_deref() == Some(FIND_TOOLS),
        Role::Assistant => {
            m.content.trim().is_empty()
                && !m.tool_calls.is_empty()
                && m.tool_calls.iter().all(|c| c.function.name == FIND_TOOLS)
        }
        _ => false,
    }
}

/// Tools loaded by these messages (the ones called, and the ones `find_tools` found), each
/// once, in the order they were first loaded.
pub fn loaded<'m>(
    messages: impl IntoIterator<Item = &'m ChatMessage>,
    tools: &[ToolSpec],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    for m in messages.into_iter().filter(|m| m.role == Role::Assistant) {
        for call in &m.tool_calls {
            let name = call.function.name.as_str();
            if name == FIND_TOOLS {
                let query = query_of(&call.function.arguments);
                search(tools, &query).into_iter().for_each(|t| add(&t.name));
            } else if let Some(t) = resolve(tools, name) {
                add(&t.name);
            }
        }
    }
    out
}

/// A called name as the hub resolves it: exact, or a bare tool name that one server has.
fn resolve<'a>(tools: &'a [ToolSpec], name: &str) -> Option<&'a ToolSpec> {
    if let Some(t) = tools.iter().find(|t| t.name == name) {
        return Some(t);
    }
    let mut bare = tools
        .iter()
        .filter(|t| split_namespaced(&t.name).is_some_and(|(_, tool)| tool == name));
    match (bare.next(), bare.next()) {
        (Some(t), None) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn spec(name: &str, description: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters: json!({"type": "object"}).into(),
        }
    }

    fn tools() -> Vec<ToolSpec> {
        vec![
            spec(
                "memory__create_entities",
                "Create multiple new entities in the knowledge graph",
            ),
            spec("memory__read_graph", "Read the entire knowledge graph"),
            spec("everything__echo", "Echoes back the input"),
            spec("everything__get-sum", "Returns the sum of two numbers"),
            spec(
                "fetch__fetch",
                "Fetches a URL from the internet and extracts its contents as markdown.\nMore.",
            ),
        ]
    }

    fn names(found: &[&ToolSpec]) -> Vec<String> {
        found.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn exact_names_with_or_without_the_server_come_first() {
        let tools = tools();
        assert_eq!(
            names(&search(&tools, "everything__echo")),
            ["everything__echo"]
        );
        assert_eq!(
            names(&search(&tools, "read_graph, get-sum")),
            ["memory__read_graph", "everything__get-sum"]
        );
    }

    #[test]
    fn words_match_names_servers_and_descriptions() {
        let tools = tools();
        assert_eq!(
            names(&search(&tools, "knowledge graph"))[..2],
            ["memory__read_graph", "memory__create_entities"]
        );
        assert_eq!(
            names(&search(&tools, "fetch a web page url"))[0],
            "fetch__fetch"
        );
        assert_eq!(search(&tools, "memory").len(), 2, "a server's tools");
        assert!(search(&tools, "weather forecast").is_empty());
    }

    #[test]
    fn the_catalog_lists_tools_by_server() {
        let tools = tools();
        let refs: Vec<&ToolSpec> = tools.iter().collect();
        let spec = find_tools_spec(&refs);
        assert_eq!(spec.name, FIND_TOOLS);
        assert!(
            spec.description.contains(
                "everything: echo, get-sum; fetch: fetch; memory: create_entities, read_graph."
            ),
            "{}",
            spec.description
        );
    }

    #[test]
    fn results_say_what_was_found_or_what_to_do() {
        let tools = tools();
        let found = run(&tools, &json!({"query": "fetch"}));
        assert!(found.starts_with("Found fetch__fetch."), "{found}");
        assert!(run(&tools, &json!({"query": "zebra"})).starts_with("No tool matches `zebra`"));
        assert!(run(&tools, &json!({})).contains("needs a `query`"));
    }

    #[test]
    fn calls_and_searches_load_tools() {
        let tools = tools();
        let mut found = ChatMessage::assistant("");
        found
            .tool_calls
            .push(ToolCall::new(FIND_TOOLS, json!({"query": "get-sum"})));
        let mut called = ChatMessage::assistant("");
        called
            .tool_calls
            .push(ToolCall::new("read_graph", json!({})));
        called
            .tool_calls
            .push(ToolCall::new("nothing__here", json!({})));
        assert!(is_trace(&found) && !is_trace(&called));
        assert!(is_trace(&ChatMessage::tool(FIND_TOOLS, "Found x.")));
        assert!(!is_trace(&ChatMessage::tool("fetch__fetch", "page")));
        let messages = [ChatMessage::user("hi"), found, called];
        let mut loaded: Vec<String> = loaded(&messages, &tools).into_iter().collect();
        loaded.sort();
        assert_eq!(loaded, ["everything__get-sum", "memory__read_graph"]);
    }
}
