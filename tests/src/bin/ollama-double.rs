//! The protocol-faithful Ollama double as a standalone process: for benchmarks (its CPU is then
//! not counted as the engine's) and for developers who want `ollama-mcp-bot chat` without a GPU.
//!
//! ```text
//! ollama-double --port 11434 --instant --record requests.ndjson --eval-log evals.ndjson
//! ```
//!
//! The model it plays is scripted by the conversation itself (see [`scripted_reply`]):
//! - a user message holding `[[call SERVER__TOOL {json arguments}]]` (one or more) gets those
//!   structured `tool_calls`, once; like a careful model it calls only tools it was offered,
//!   so when one is missing and `find_tools` is offered, it first searches for the missing ones;
//! - a request whose last message is a tool result gets a reply quoting the result;
//! - anything else gets `echo: <message>` padded to `--reply-words` words.
//!
//! It prints `listening on http://127.0.0.1:PORT` on stdout once it accepts connections, and
//! stops on Ctrl-C, SIGTERM, or when its standard input closes with `--exit-on-eof`.
#![allow(clippy::print_stdout)] // the listening line on stdout is this program's interface

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ollama_mcp_bot::llm::Role;
use ollama_mcp_tests::ollama_double::{ModelSpec, OllamaDouble, Reply, SeenRequest};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "ollama-double",
    about = "A protocol-faithful Ollama double whose replies are scripted by the conversation"
)]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 11434)]
    port: u16,
    /// No delay between streamed chunks (by default 1 ms each, like a very fast model).
    #[arg(long)]
    instant: bool,
    /// A model to serve, as NAME or NAME=cap,cap (capabilities: completion, tools, thinking,
    /// vision). Repeatable. `gemma-tools`, `gemma-notools` and `gemma-think` alone are the
    /// models of the Ollama 0.24 recordings. Default: llama3.2=completion,tools.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Append the body of every answered `/api/chat` request to this file, one JSON per line.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Append what every answered `/api/chat` request's prompt cost to this file, one JSON per
    /// line in the order of `--record`: `{"model", "eval": {"prompt_tokens", "fresh_tokens",
    /// "cached_tokens", "num_ctx", "truncated", ...}}` (the double's prompt-cache model).
    #[arg(long)]
    eval_log: Option<PathBuf>,
    /// Length of a plain reply, in words (the echo is padded with filler prose up to it).
    #[arg(long, default_value_t = 60)]
    reply_words: usize,
    /// Characters of a tool result quoted in the reply that follows it.
    #[arg(long, default_value_t = 300)]
    quote_chars: usize,
    /// Stop when standard input reaches end of file (for a parent that may die without
    /// signalling).
    #[arg(long)]
    exit_on_eof: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let create = |path: &Option<PathBuf>| -> anyhow::Result<Option<Arc<Mutex<File>>>> {
        Ok(match path {
            Some(path) => Some(Arc::new(Mutex::new(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ))),
            None => None,
        })
    };
    let record = create(&args.record)?;
    let eval_log = create(&args.eval_log)?;
    let style = ReplyStyle {
        reply_words: args.reply_words,
        quote_chars: args.quote_chars,
    };
    let mut builder = OllamaDouble::builder().responder(move |seen| {
        // Written before the reply goes out, so a client that has its reply finds the line.
        if let Some(file) = &record {
            append(file, seen.raw.to_vec());
        }
        if let Some(file) = &eval_log {
            let line = serde_json::json!({"model": seen.model, "eval": seen.eval});
            append(file, line.to_string().into_bytes());
        }
        scripted_reply(seen, &style)
    });
    if args.instant {
        builder = builder.instant();
    }
    if args.models.is_empty() {
        builder = builder.model("llama3.2", &["completion", "tools"]);
    }
    for spec in &args.models {
        builder = builder.model_spec(model_spec(spec));
    }
    let double = Arc::new(
        builder
            .start_on(args.port)
            .await
            .with_context(|| format!("listening on 127.0.0.1:{}", args.port))?,
    );
    println!("listening on {}", double.url());
    std::io::stdout().flush()?;

    // The library keeps every request for assertions; a long-running process must not.
    let forgetful = double.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            forgetful.clear_requests();
        }
    });

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let eof = async {
        if args.exit_on_eof {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        () = eof => {}
    }
    Ok(())
}

/// One line to a record file.
fn append(file: &Mutex<File>, mut line: Vec<u8>) {
    line.push(b'\n');
    let mut file = file
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(e) = file.write_all(&line) {
        tracing::error!(error = %e, "ollama double: writing a record file failed");
    }
}

/// `NAME` or `NAME=cap,cap`.
fn model_spec(arg: &str) -> ModelSpec {
    match arg.trim() {
        "gemma-tools" => return ModelSpec::gemma_tools(),
        "gemma-notools" => return ModelSpec::gemma_notools(),
        "gemma-think" => return ModelSpec::gemma_think(),
        _ => {}
    }
    match arg.split_once('=') {
        Some((name, caps)) => {
            let caps: Vec<&str> = caps.split(',').map(str::trim).collect();
            ModelSpec::new(name.trim(), &caps)
        }
        None => ModelSpec::new(arg.trim(), &["completion", "tools"]),
    }
}

struct ReplyStyle {
    reply_words: usize,
    quote_chars: usize,
}

/// Prose used to pad plain replies to a realistic length.
const FILLER: &str = "Here is a little more detail so that this answer has the length of a typical \
chat reply from a local model, which usually restates the question, gives the answer in a few \
sentences, and ends with an offer to help further if anything is unclear or needs a closer look.";

/// The tool calls this request should make for the user's `[[call ...]]` directives, as a
/// careful model would: only tools it was offered; when some are missing and `find_tools` is
/// offered, it searches for them first (once). None once the directives have been called.
fn directive_calls(seen: &SeenRequest) -> Option<Vec<(String, Value)>> {
    let user = seen.last_user_message()?;
    let calls = directives(user);
    // This turn's messages: after the last user message.
    let start = seen.messages.iter().rposition(|m| m.role == Role::User)?;
    let called: Vec<&str> = seen.messages[start..]
        .iter()
        .flat_map(|m| &m.tool_calls)
        .map(|c| c.function.name.as_str())
        .collect();
    if calls.is_empty() || calls.iter().any(|(n, _)| called.contains(&n.as_str())) {
        return None;
    }
    let offered = seen.tool_names();
    let missing: Vec<&str> = calls
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !offered.iter().any(|o| o == n))
        .collect();
    if !missing.is_empty()
        && offered.iter().any(|o| o == FIND_TOOLS)
        && !called.contains(&FIND_TOOLS)
    {
        return Some(vec![(
            FIND_TOOLS.to_string(),
            serde_json::json!({"query": missing.join(" ")}),
        )]);
    }
    Some(calls)
}

/// The engine's tool search.
const FIND_TOOLS: &str = ollama_mcp_bot::conversation::tool_search::FIND_TOOLS;

/// The scripted model; see the module documentation.
fn scripted_reply(seen: &SeenRequest, style: &ReplyStyle) -> Reply {
    if let Some(calls) = directive_calls(seen) {
        return Reply::ToolCalls(calls);
    }
    if seen.messages.last().is_some_and(|m| m.role == Role::Tool) {
        // Every result of the last round, each quoted briefly, as a model summarising them.
        let results: Vec<String> = seen
            .messages
            .iter()
            .rev()
            .take_while(|m| m.role == Role::Tool)
            .map(|m| {
                let quote: String = m
                    .content
                    .chars()
                    .take(style.quote_chars)
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                format!(
                    "{} returned {} characters: {quote}",
                    m.tool_name.as_deref().unwrap_or("the tool"),
                    m.content.chars().count()
                )
            })
            .collect();
        return Reply::text(results.into_iter().rev().collect::<Vec<_>>().join(" "));
    }
    let user = seen.last_user_message().unwrap_or_default();
    let mut reply = format!(
        "echo: {}",
        user.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let mut words = reply.split_whitespace().count();
    let filler: Vec<&str> = FILLER.split_whitespace().collect();
    let mut i = 0;
    while words < style.reply_words && !filler.is_empty() {
        reply.push(' ');
        reply.push_str(filler[i % filler.len()]);
        words += 1;
        i += 1;
    }
    Reply::text(reply)
}

/// The `[[call NAME {json}]]` directives in a user message, in order. A malformed directive is
/// ignored (the message is then answered as plain text).
fn directives(text: &str) -> Vec<(String, Value)> {
    const OPEN: &str = "[[call ";
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        rest = &rest[at + OPEN.len()..];
        let name_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let name = rest[..name_end].trim_end_matches("]]").to_string();
        let after_name = rest[name_end..].trim_start();
        let mut values = serde_json::Deserializer::from_str(after_name).into_iter::<Value>();
        let (arguments, used) = match values.next() {
            Some(Ok(v)) if v.is_object() => (v, values.byte_offset()),
            _ => (Value::Object(Default::default()), 0),
        };
        let tail = after_name[used..].trim_start();
        if !name.is_empty() && tail.starts_with("]]") {
            calls.push((name, arguments));
            rest = &tail[2..];
        } else if !name.is_empty() && used == 0 && rest[..name_end].ends_with("]]") {
            // `[[call NAME]]` without arguments.
            calls.push((name, Value::Object(Default::default())));
            rest = &rest[name_end..];
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn directives_are_parsed() {
        assert_eq!(
            directives(
                r#"please [[call memory__read_graph {}]] and [[call everything__echo {"message": "a ]] b"}]] now"#
            ),
            vec![
                ("memory__read_graph".to_string(), json!({})),
                ("everything__echo".to_string(), json!({"message": "a ]] b"})),
            ]
        );
        assert_eq!(
            directives("[[call memory__read_graph]]"),
            vec![("memory__read_graph".to_string(), json!({}))]
        );
        assert!(directives("no directive here").is_empty());
        assert!(directives("[[call broken {\"a\": ]]").is_empty());
    }
}
