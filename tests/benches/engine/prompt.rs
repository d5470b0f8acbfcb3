//! Target 3: bytes sent to `/api/chat` over a scripted 30-turn conversation with the 4 servers
//! attached, against the naive baseline computed from the same conversation: every schema as
//! the servers give them, and all history in full, in every request.
//!
//! The release `chat` (default configuration: `history_token_budget = 6000`) talks to the double
//! in its own process, which records every request body. Tool turns call the real servers,
//! among them `fetch` on ~8 KB pages served on 127.0.0.1. The current turn's tool results must
//! reach the model in full: the benchmark fails if they do not.

use std::collections::BTreeMap;

use anyhow::{Context as _, ensure};
use ollama_mcp_bot::llm::Role;
use ollama_mcp_bot::mcp::namespaced;
use ollama_mcp_bot::store::Store;
use ollama_mcp_tests::servers::PageServer;
use serde_json::{Value, json};

use super::support::{Chat, DoubleProcess, four_servers, note, raw_connect, table};

/// A deterministic article of about `bytes` bytes of HTML, ending with `marker`.
fn article(title: &str, bytes: usize, marker: &str) -> String {
    const TOPICS: [&str; 8] = [
        "trams",
        "tiles",
        "viewpoints",
        "bakeries",
        "river ferries",
        "museums",
        "markets",
        "hills",
    ];
    let mut html = format!(
        "<!doctype html><html><head><title>{title}</title></head><body><article><h1>{title}</h1>\n"
    );
    let mut section = 0;
    while html.len() + 200 < bytes {
        let topic = TOPICS[section % TOPICS.len()];
        html.push_str(&format!("<h2>Section {}: {topic}</h2>\n", section + 1));
        for p in 0..2 {
            html.push_str(&format!(
                "<p>Paragraph {p} of section {s} covers {topic} in some depth. Visitors often ask \
                 about opening hours, prices and the best time of day; fact number {n} is that \
                 locals recommend arriving early, bringing water, and checking the schedule \
                 posted at the entrance, because it changes with the seasons.</p>\n",
                s = section + 1,
                n = section * 2 + p + 1,
            ));
        }
        section += 1;
    }
    html.push_str(&format!(
        "<p>Last words: {marker}.</p></article></body></html>\n"
    ));
    html
}

/// One scripted user message, and a substring the real tool result of that turn must contain.
struct Line {
    text: String,
    expect: Option<&'static str>,
}

fn script(article_url: &str, guide_url: &str) -> Vec<Line> {
    let plain = |t: &str| Line {
        text: t.to_string(),
        expect: None,
    };
    let call = |t: &str, name: &str, args: Value, expect: &'static str| Line {
        text: format!("{t} [[call {name} {args}]]"),
        expect: Some(expect),
    };
    let fetch = |url: &str| json!({"url": url, "max_length": 20000});
    vec![
        plain("Hi! I am planning a four-day trip to Lisbon next spring."),
        call(
            "Please remember that.",
            "memory__create_entities",
            json!({"entities": [{"name": "Lisbon trip", "entityType": "plan", "observations": ["next spring", "four days"]}]}),
            "Lisbon trip",
        ),
        plain("What should I pack for Lisbon in April?"),
        call(
            "Read this article for me.",
            "fetch__fetch",
            fetch(article_url),
            "END-OF-ARTICLE",
        ),
        plain("Summarise that article in three bullet points."),
        call(
            "Think it through step by step.",
            "thinking__sequentialthinking",
            json!({"thought": "List the neighbourhoods worth a day each.", "thoughtNumber": 1, "totalThoughts": 3, "nextThoughtNeeded": true}),
            "thoughtNumber",
        ),
        plain("Which neighbourhood would you start with?"),
        call(
            "What do you remember about me?",
            "memory__read_graph",
            json!({}),
            "Lisbon trip",
        ),
        plain("Good. How do I get from the airport to the centre?"),
        call(
            "Add the tram fares for two people.",
            "everything__get-sum",
            json!({"a": 3.1, "b": 3.1}),
            "6.2",
        ),
        plain("Is a day pass better value?"),
        call(
            "Now read the transport guide.",
            "fetch__fetch",
            fetch(guide_url),
            "END-OF-GUIDE",
        ),
        plain("Which of those passes fits a four-day stay?"),
        plain("And for a day trip to Sintra?"),
        call(
            "Remember that I prefer the day pass.",
            "memory__add_observations",
            json!({"observations": [{"entityName": "Lisbon trip", "contents": ["prefers the day pass"]}]}),
            "prefers the day pass",
        ),
        plain("Thanks. What about food: which dishes should I try?"),
        call(
            "Look up my trip and confirm the plan.",
            "memory__search_nodes",
            json!({"query": "Lisbon"}),
            "Lisbon trip",
        ),
        plain("Where can I find good pastel de nata?"),
        call(
            "Keep thinking about the itinerary.",
            "thinking__sequentialthinking",
            json!({"thought": "Day one: Alfama and the castle; day two: Belém.", "thoughtNumber": 2, "totalThoughts": 3, "nextThoughtNeeded": true}),
            "thoughtNumber",
        ),
        plain("That sounds good. What about day three?"),
        call(
            "Read the article again, I lost it.",
            "fetch__fetch",
            fetch(article_url),
            "END-OF-ARTICLE",
        ),
        plain("Which viewpoint from the article is best at sunset?"),
        plain("Is it safe to walk there at night?"),
        call(
            "What do you know about my trip so far?",
            "memory__read_graph",
            json!({}),
            "day pass",
        ),
        plain("Great. Any tips for rainy days?"),
        call(
            "Repeat my plan back to me.",
            "everything__echo",
            json!({"message": "Four days in Lisbon with a day pass, Alfama first."}),
            "Echo: Four days",
        ),
        plain("How much cash should I carry?"),
        call(
            "One last look at the transport guide.",
            "fetch__fetch",
            fetch(guide_url),
            "END-OF-GUIDE",
        ),
        plain("Thanks, that is all for now."),
        plain("Goodbye!"),
    ]
}

/// Tool schemas as a naive client sends them: the servers' own `inputSchema`, untouched.
async fn naive_tools(dir: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let mut tools = Vec::new();
    for server in four_servers(dir) {
        let client = raw_connect(&server).await?;
        for t in client.peer().list_all_tools().await? {
            tools.push(json!({
                "type": "function",
                "function": {
                    "name": namespaced(&server.name, &t.name),
                    "description": t.description.as_deref().unwrap_or_default(),
                    "parameters": Value::Object((*t.input_schema).clone()),
                }
            }));
        }
        let _ = client.cancel().await;
    }
    Ok(tools)
}

/// The engine's tool search (bot/src/conversation/tool_search.rs).
const FIND_TOOLS: &str = ollama_mcp_bot::conversation::tool_search::FIND_TOOLS;

/// A `find_tools` call or its result.
fn is_search(m: &Value) -> bool {
    m["tool_name"] == FIND_TOOLS
        || m["tool_calls"].as_array().is_some_and(|calls| {
            !calls.is_empty()
                && calls
                    .iter()
                    .all(|c| c.pointer("/function/name") == Some(&json!(FIND_TOOLS)))
        })
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0)
}

pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let record = dir.path().join("requests.ndjson");
    let double = DoubleProcess::spawn(Some(&record)).await?;
    let pages = PageServer::start(&[
        (
            "/article.html",
            article("Lisbon for first-timers", 8192, "END-OF-ARTICLE"),
        ),
        (
            "/guide.html",
            article("Getting around Lisbon", 8192, "END-OF-GUIDE"),
        ),
    ])
    .await;
    let lines = script(&pages.url("/article.html"), &pages.url("/guide.html"));
    ensure!(lines.len() == 30, "the script has 30 turns");

    let chat_dir = dir.path().join("chat");
    std::fs::create_dir_all(&chat_dir)?;
    let servers = four_servers(&chat_dir);
    let mut chat = Chat::spawn(&chat_dir, &double.url, servers, |_| {})?;
    for line in &lines {
        chat.turn(&line.text).await?;
    }
    chat.finish().await?;

    // What really happened: every message of every turn, in full, from the store.
    let store = Store::open(&chat_dir.join("bot.db").display().to_string())?;
    let history = store.history("bench").await?;
    let mut turns: BTreeMap<i64, Vec<ollama_mcp_bot::llm::ChatMessage>> = BTreeMap::new();
    for m in history {
        turns.entry(m.turn).or_default().push(m.message);
    }
    let turns: Vec<_> = turns.into_values().collect();
    ensure!(turns.len() == 30, "30 turns stored, found {}", turns.len());
    for (i, (line, messages)) in lines.iter().zip(&turns).enumerate() {
        let results: Vec<&str> = messages
            .iter()
            .filter(|m| m.role == Role::Tool && m.tool_name.as_deref() != Some(FIND_TOOLS))
            .map(|m| m.content.as_str())
            .collect();
        match line.expect {
            Some(expect) => ensure!(
                results.len() == 1 && results[0].contains(expect),
                "turn {}: the real tool result should contain {expect:?}: {results:?}",
                i + 1
            ),
            None => ensure!(results.is_empty(), "turn {} is plain", i + 1),
        }
    }

    let bodies: Vec<Value> = std::fs::read_to_string(&record)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading the recorded requests")?;
    let raw_sizes: Vec<usize> = std::fs::read_to_string(&record)?
        .lines()
        .map(str::len)
        .collect();
    let naive_tools = naive_tools(&dir.path().join("naive")).await?;

    let message_of = |m: &Value| -> (String, String) {
        (
            m["role"].as_str().unwrap_or_default().to_string(),
            m["content"].as_str().unwrap_or_default().to_string(),
        )
    };
    // The full messages of each finished turn, as a naive client would resend them.
    let mut full_turns: Vec<Vec<Value>> = Vec::new();
    let (mut ours, mut naive) = (0usize, 0usize);
    let (mut ours_tools, mut naive_tools_bytes) = (0usize, 0usize);
    let mut turn_index = 0usize;
    let mut last_current: Vec<Value> = Vec::new();
    let (mut searches, mut naive_requests) = (0usize, 0usize);
    for (body, raw_len) in bodies.iter().zip(&raw_sizes) {
        let messages = body["messages"].as_array().context("messages")?;
        let last_user = messages
            .iter()
            .rposition(|m| m["role"] == "user")
            .context("a request without a user message")?;
        let user_text = message_of(&messages[last_user]).1;
        // Which scripted turn this request belongs to.
        let t = lines
            .iter()
            .position(|l| l.text == user_text)
            .with_context(|| format!("request for an unscripted message {user_text:?}"))?;
        while turn_index < t {
            // The previous turn is over: its last request's current part plus its reply.
            let reply = turns[turn_index]
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let mut full = std::mem::take(&mut last_current);
            full.push(json!({"role": "assistant", "content": reply}));
            full_turns.push(full);
            turn_index += 1;
        }
        let current: Vec<Value> = messages[last_user..].to_vec();

        // The current turn's tool results reach the model in full.
        let sent_results: Vec<String> = current
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| message_of(m).1)
            .collect();
        let stored_results: Vec<&str> = turns[t]
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| m.content.as_str())
            .collect();
        for (sent, stored) in sent_results.iter().zip(&stored_results) {
            ensure!(
                sent == stored,
                "turn {}: a tool result of the current turn was not sent in full ({} of {} chars)",
                t + 1,
                sent.chars().count(),
                stored.chars().count()
            );
        }
        let real_results: Vec<&str> = current
            .iter()
            .filter(|m| m["role"] == "tool" && !is_search(m))
            .map(|m| m["content"].as_str().unwrap_or_default())
            .collect();
        if let Some(expect) = lines[t].expect.filter(|_| !real_results.is_empty()) {
            ensure!(
                real_results[0].contains(expect),
                "turn {}: {expect} missing",
                t + 1
            );
        }

        ours += raw_len;
        ours_tools += body.get("tools").map(json_len).unwrap_or(0);
        // A naive client, every tool offered, never searches: it makes no request after a
        // search and has no search in its history.
        let after_search = current
            .last()
            .is_some_and(|m| m["role"] == "tool" && m["tool_name"] == FIND_TOOLS);
        if after_search {
            searches += 1;
        } else {
            let mut naive_messages: Vec<Value> = messages
                .iter()
                .take_while(|m| m["role"] == "system")
                .cloned()
                .collect();
            naive_messages.extend(
                full_turns
                    .iter()
                    .flatten()
                    .chain(&current)
                    .filter(|m| !is_search(m))
                    .cloned(),
            );
            let mut naive_body = body.clone();
            naive_body["messages"] = Value::Array(naive_messages);
            naive_body["tools"] = Value::Array(naive_tools.clone());
            naive += json_len(&naive_body);
            naive_tools_bytes += json_len(&naive_body["tools"]);
            naive_requests += 1;
        }
        last_current = current;
    }
    ensure!(turn_index == 29, "every scripted turn made requests");

    let tool_turns = lines.iter().filter(|l| l.expect.is_some()).count();
    let kib = |b: usize| format!("{:.1}", b as f64 / 1024.0);
    table(
        &format!(
            "Bytes sent to /api/chat over the scripted 30-turn conversation ({} plain + {tool_turns} tool turns; {} tools; naive: {naive_requests} requests, ours: {} of which {searches} after a `find_tools` search)",
            30 - tool_turns,
            naive_tools.len(),
            bodies.len(),
        ),
        &[
            "",
            "tool schemas (KiB)",
            "messages and the rest (KiB)",
            "total (KiB)",
            "share of naive",
        ],
        &[
            vec![
                "naive: servers' schemas + all history, every request".into(),
                kib(naive_tools_bytes),
                kib(naive - naive_tools_bytes),
                kib(naive),
                "100 %".into(),
            ],
            vec![
                "ollama-mcp (default config)".into(),
                kib(ours_tools),
                kib(ours - ours_tools),
                kib(ours),
                format!("{:.1} %", 100.0 * ours as f64 / naive as f64),
            ],
        ],
    );
    note(&format!(
        "\nPer request: schemas {:.1} KiB naive vs {:.1} KiB ours. Target: ≤ 50 % of naive, with the current turn's tool results in full (asserted).",
        naive_tools_bytes as f64 / naive_requests as f64 / 1024.0,
        ours_tools as f64 / bodies.len() as f64 / 1024.0
    ));
    Ok(())
}
