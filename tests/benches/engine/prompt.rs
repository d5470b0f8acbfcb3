//! Target 3 (issue 9; replaces the withdrawn "prompt bytes ≤ 50 % of naive"): what our prompts
//! cost Ollama. Ollama evaluates only the tokens after the prefix a prompt shares with what the
//! model read and wrote last (recordings, file 30), so the figure that counts is FRESH tokens per
//! request. The release `chat` (default configuration, num_ctx 8192, 4 real MCP servers) runs a
//! conversation against the Ollama double in its own process, whose prompt-cache model logs
//! each request's prompt and fresh tokens. The same conversation (every message as the store
//! kept it, in full) is then replayed through the same cache model as two baselines:
//! - naive: every tool as the servers describe it, all history, in every request;
//! - ollmcp-style: every tool, and of earlier turns only the user's messages and the final
//!   answers (what ollmcp sends); the current turn in full.
//!
//! Both go through the same 8192-token window, which Ollama fits by leaving out old messages
//! (and the cache follows). "Adds" is what a request brings that the model has not seen: the new
//! user message or this round's tool results, with their template tokens (the fresh tokens of
//! an ideal append-only prompt with an unbounded window).
//!
//! Targets: median fresh tokens per request ≤ 1.3 × what it adds; over 100 turns, total fresh
//! tokens ≤ 1/3 of the ollmcp-style baseline's; no prompt over the window; the current turn's
//! tool results sent in full whenever they fit. A missed target is reported; a broken
//! measurement (a tool that did not run, a reply that is not in the store) fails the run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, ensure};
use ollama_mcp_bot::mcp::namespaced;
use ollama_mcp_bot::store::Store;
use ollama_mcp_tests::ollama_double::{ModelSpec, PromptCache, PromptEval};
use ollama_mcp_tests::servers::PageServer;
use serde_json::{Value, json};

use super::conversation::{Line, article, long_script, script};
use super::support::{Chat, DoubleProcess, four_servers, note, raw_connect, summary, table};

/// The window of the measurement (the default `ollama.options.num_ctx`).
const WINDOW: u64 = 8192;
/// Tokens a prompt leaves for the reply: a current turn "fits" when it leaves this much.
const REPLY_ROOM: u32 = 1024;

/// The model the double serves by default, as the cache model renders it.
fn model() -> ModelSpec {
    ModelSpec::new("llama3.2", &["completion", "tools"])
}

/// Tool schemas as a naive client sends them: the servers' own `inputSchema`, untouched.
async fn naive_tools(dir: &Path) -> anyhow::Result<Vec<Value>> {
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

/// What one run of `chat` over a conversation sent and kept.
struct Run {
    /// Every `/api/chat` body, in order.
    bodies: Vec<Value>,
    /// The double's verdict on each.
    evals: Vec<PromptEval>,
    /// Every message of every turn, in full, from the store, as Ollama JSON.
    turns: Vec<Vec<Value>>,
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    std::fs::read_to_string(path)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

async fn run_chat(dir: &Path, lines: &[Line]) -> anyhow::Result<Run> {
    let record = dir.join("requests.ndjson");
    let eval_log = dir.join("evals.ndjson");
    let double = DoubleProcess::spawn_logging(&record, &eval_log).await?;
    let chat_dir = dir.join("chat");
    std::fs::create_dir_all(&chat_dir)?;
    let mut chat = Chat::spawn(&chat_dir, &double.url, four_servers(&chat_dir), |_| {})?;
    for line in lines {
        chat.turn(&line.text).await?;
    }
    chat.finish().await?;

    let store = Store::open(&chat_dir.join("bot.db").display().to_string())?;
    let mut turns: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for m in store.history("bench").await? {
        turns
            .entry(m.turn)
            .or_default()
            .push(serde_json::to_value(&m.message)?);
    }
    let turns: Vec<Vec<Value>> = turns.into_values().collect();
    ensure!(
        turns.len() == lines.len(),
        "{} turns stored, {} sent",
        turns.len(),
        lines.len()
    );
    for (i, (line, messages)) in lines.iter().zip(&turns).enumerate() {
        let results: Vec<&str> = messages
            .iter()
            .filter(|m| m["role"] == "tool" && !is_search(m))
            .map(|m| m["content"].as_str().unwrap_or_default())
            .collect();
        match line.expect {
            Some(expect) => ensure!(
                results.len() == 1 && results[0].contains(expect),
                "turn {}: one real tool result containing {expect:?} expected: {results:?}",
                i + 1
            ),
            None => ensure!(results.is_empty(), "turn {} is plain", i + 1),
        }
    }
    let bodies = read_lines(&record)?;
    let evals: Vec<PromptEval> = read_lines(&eval_log)?
        .into_iter()
        .map(|v| serde_json::from_value(v["eval"].clone()))
        .collect::<Result<_, _>>()
        .context("the double's prompt evaluations")?;
    ensure!(
        bodies.len() == evals.len(),
        "{} requests, {} evaluations",
        bodies.len(),
        evals.len()
    );
    ensure!(
        bodies
            .iter()
            .all(|b| b["options"]["num_ctx"] == json!(WINDOW)),
        "every request asks for num_ctx {WINDOW}"
    );
    Ok(Run {
        bodies,
        evals,
        turns,
    })
}

/// Prompt and fresh tokens of each request of one way of prompting.
#[derive(Default)]
struct Series {
    prompt: Vec<f64>,
    fresh: Vec<f64>,
}

impl Series {
    fn push(&mut self, eval: &PromptEval) {
        self.prompt.push(f64::from(eval.prompt_tokens));
        self.fresh.push(f64::from(eval.fresh_tokens));
    }

    fn row(&self, name: &str) -> Vec<String> {
        let stats = |v: &[f64]| {
            let s = summary(v);
            [
                format!("{:.0}", s.median),
                format!("{:.0}", s.p90),
                format!("{:.0}", v.iter().sum::<f64>()),
            ]
        };
        let mut row = vec![name.to_string(), self.prompt.len().to_string()];
        row.extend(stats(&self.prompt));
        row.extend(stats(&self.fresh));
        row
    }

    fn total_fresh(&self) -> f64 {
        self.fresh.iter().sum()
    }
}

fn chat_body(messages: Vec<Value>, tools: &[Value], num_ctx: u64) -> Value {
    json!({"model": "llama3.2", "messages": messages, "tools": tools, "options": {"num_ctx": num_ctx}})
}

/// The messages of a stored turn before its `j`-th assistant message, and that message.
fn before_assistant(turn: &[Value], j: usize) -> Option<(Vec<Value>, Value)> {
    let at = turn
        .iter()
        .enumerate()
        .filter(|(_, m)| m["role"] == "assistant")
        .nth(j)?
        .0;
    Some((turn[..at].to_vec(), turn[at].clone()))
}

/// What one conversation cost, and the targets it is held to.
struct Verdict {
    ours: Series,
    adds: Series,
    naive: Series,
    ollmcp: Series,
    /// Median over our requests of fresh tokens / tokens added.
    median_ratio: f64,
    truncated: usize,
    /// Current tool results that were shortened although the current turn fitted in full.
    shortened_fitting: usize,
    /// Our requests whose replay through the cache model agrees with the double.
    replay_agrees: usize,
}

fn account(run: &Run, lines: &[Line], naive_tools: &[Value]) -> anyhow::Result<Verdict> {
    let first = run.bodies.first().context("no request")?;
    let system: Vec<Value> = first["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .take_while(|m| m["role"] == "system")
        .cloned()
        .collect();
    let first_tools: Vec<Value> = first["tools"].as_array().cloned().unwrap_or_default();

    let mut ours = Series::default();
    let mut adds = Series::default();
    let unbounded = model().with_context_length(100_000_000);
    let mut ideal = PromptCache::new(unbounded.clone());
    let mut replay = PromptCache::new(model());
    let (mut ratios, mut truncated, mut shortened_fitting, mut replay_agrees) =
        (Vec::new(), 0, 0, 0);
    let mut previous_turn = usize::MAX;
    let mut j = 0;
    for (body, eval) in run.bodies.iter().zip(&run.evals) {
        let messages = body["messages"].as_array().context("messages")?;
        let last_user = messages
            .iter()
            .rposition(|m| m["role"] == "user")
            .context("a request without a user message")?;
        let user_text = messages[last_user]["content"].as_str().unwrap_or_default();
        let t = lines
            .iter()
            .position(|l| l.text == user_text)
            .with_context(|| format!("request for an unscripted message {user_text:?}"))?;
        j = if t == previous_turn { j + 1 } else { 0 };
        previous_turn = t;
        let (prefix, reply) = before_assistant(&run.turns[t], j)
            .with_context(|| format!("turn {}: no stored reply to request {}", t + 1, j + 1))?;

        ours.push(eval);
        truncated += usize::from(eval.truncated || u64::from(eval.prompt_tokens) > WINDOW);
        if replay.request(body, &reply) == *eval {
            replay_agrees += 1;
        }

        // What this request adds: an append-only prompt over the stored conversation.
        let mut history: Vec<Value> = system.clone();
        history.extend(run.turns[..t].iter().flatten().cloned());
        history.extend(prefix.iter().cloned());
        let added = ideal.request(&chat_body(history, &first_tools, 100_000_000), &reply);
        adds.push(&added);
        ratios.push(f64::from(eval.fresh_tokens) / f64::from(added.fresh_tokens.max(1)));

        // The current turn's tool results in full, whenever the whole current turn fits.
        let sent: Vec<&Value> = messages[last_user..]
            .iter()
            .filter(|m| m["role"] == "tool")
            .collect();
        let stored: Vec<&Value> = prefix.iter().filter(|m| m["role"] == "tool").collect();
        let shortened = sent
            .iter()
            .zip(&stored)
            .any(|(s, k)| s["content"] != k["content"]);
        if shortened {
            let mut current: Vec<Value> = system.clone();
            current.extend(prefix.iter().cloned());
            let tools = body["tools"].as_array().cloned().unwrap_or_default();
            let need = PromptCache::new(unbounded.clone())
                .request(&chat_body(current, &tools, 100_000_000), &Value::Null)
                .prompt_tokens;
            if u64::from(need + REPLY_ROOM) <= WINDOW {
                shortened_fitting += 1;
            }
        }
    }

    // The baselines make one request per stored model reply, searches aside.
    let mut naive = Series::default();
    let mut ollmcp = Series::default();
    let mut naive_cache = PromptCache::new(model());
    let mut ollmcp_cache = PromptCache::new(model());
    for (t, turn) in run.turns.iter().enumerate() {
        let replies = turn.iter().filter(|m| m["role"] == "assistant").count();
        for j in 0..replies {
            let Some((prefix, reply)) = before_assistant(turn, j) else {
                continue;
            };
            if is_search(&reply) {
                continue;
            }
            let prefix: Vec<Value> = prefix.into_iter().filter(|m| !is_search(m)).collect();
            let mut full = system.clone();
            full.extend(
                run.turns[..t]
                    .iter()
                    .flatten()
                    .filter(|m| !is_search(m))
                    .cloned(),
            );
            full.extend(prefix.iter().cloned());
            naive.push(&naive_cache.request(&chat_body(full, naive_tools, WINDOW), &reply));
            let mut texts = system.clone();
            for earlier in &run.turns[..t] {
                texts.extend(earlier.iter().find(|m| m["role"] == "user").cloned());
                texts.extend(
                    earlier
                        .iter()
                        .rev()
                        .find(|m| m["role"] == "assistant")
                        .cloned(),
                );
            }
            texts.extend(prefix);
            ollmcp.push(&ollmcp_cache.request(&chat_body(texts, naive_tools, WINDOW), &reply));
        }
    }
    Ok(Verdict {
        median_ratio: summary(&ratios).median,
        ours,
        adds,
        naive,
        ollmcp,
        truncated,
        shortened_fitting,
        replay_agrees,
    })
}

fn report(title: &str, v: &Verdict, requests: usize) {
    table(
        title,
        &[
            "",
            "requests",
            "prompt median",
            "prompt p90",
            "prompt total",
            "fresh median",
            "fresh p90",
            "fresh total",
        ],
        &[
            v.adds.row("what each request adds"),
            v.ours.row("ollama-mcp (default config)"),
            v.naive.row("naive: all tools, all history"),
            v.ollmcp.row("ollmcp-style: all tools, user + final texts"),
        ],
    );
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    note(&format!(
        "\n- median of fresh / added tokens per request: **{:.2}** (target ≤ 1.3: {})\n- total fresh tokens: {:.0} ours, {:.1} % of ollmcp-style's {:.0}, {:.1} % of naive's {:.0}\n- prompts over the {WINDOW}-token window (cut by Ollama): **{}** of {requests} (target 0: {})\n- current tool results shortened although the current turn fitted: **{}** (target 0: {})\n- our requests replayed through the same cache model from the store: {} of {requests} agree with the double",
        v.median_ratio,
        met(v.median_ratio <= 1.3),
        v.ours.total_fresh(),
        100.0 * v.ours.total_fresh() / v.ollmcp.total_fresh().max(1.0),
        v.ollmcp.total_fresh(),
        100.0 * v.ours.total_fresh() / v.naive.total_fresh().max(1.0),
        v.naive.total_fresh(),
        v.truncated,
        met(v.truncated == 0),
        v.shortened_fitting,
        met(v.shortened_fitting == 0),
        v.replay_agrees,
    ));
}

pub async fn run(long_turns: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
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
    let (article_url, guide_url) = (pages.url("/article.html"), pages.url("/guide.html"));
    let naive_tools = naive_tools(&dir.path().join("naive")).await?;

    let lines = script(&article_url, &guide_url);
    ensure!(lines.len() == 30, "the script has 30 turns");
    let short_dir = dir.path().join("short");
    std::fs::create_dir_all(&short_dir)?;
    let run30 = run_chat(&short_dir, &lines).await?;
    let v30 = account(&run30, &lines, &naive_tools)?;
    let tool_turns = lines.iter().filter(|l| l.expect.is_some()).count();
    report(
        &format!(
            "Prompt and fresh tokens per request, scripted 30-turn conversation ({} plain + {tool_turns} tool turns, {} tools, num_ctx {WINDOW})",
            30 - tool_turns,
            naive_tools.len()
        ),
        &v30,
        run30.bodies.len(),
    );

    let long = long_script(&article_url, &guide_url, long_turns);
    let long_dir = dir.path().join("long");
    std::fs::create_dir_all(&long_dir)?;
    let run_long = run_chat(&long_dir, &long).await?;
    let v_long = account(&run_long, &long, &naive_tools)?;
    report(
        &format!(
            "Prompt and fresh tokens per request, {long_turns}-turn conversation (the script over and over, num_ctx {WINDOW})"
        ),
        &v_long,
        run_long.bodies.len(),
    );
    let share = v_long.ours.total_fresh() / v_long.ollmcp.total_fresh().max(1.0);
    note(&format!(
        "\nTarget over {long_turns} turns: total fresh tokens ≤ 1/3 of ollmcp-style's: **{:.1} %** ({}).",
        100.0 * share,
        if share <= 1.0 / 3.0 {
            "met"
        } else {
            "**not met**"
        }
    ));
    Ok(())
}
