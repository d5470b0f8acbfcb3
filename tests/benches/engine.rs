//! The engine benchmarks of issues 2 and 9 (figures and how to read them: docs/BENCHMARKS.md).
//!
//! ```text
//! cargo build --release -p ollama-mcp-bot
//! cargo bench -p ollama-mcp-tests --bench engine                 # everything (~5 min)
//! cargo bench -p ollama-mcp-tests --bench engine -- cpu session  # some sections
//! cargo bench -p ollama-mcp-tests --bench engine -- --quick      # fewer repetitions
//! cargo bench -p ollama-mcp-tests --bench engine -- --reply-words=5 cpu   # shorter replies
//! ```
//!
//! Sections: `startup` (target 1), `cpu` (target 2; whole-process `chat` CPU per plain and
//! one-tool turn first, issue 13), `session` (issue 13: CPU per turn by block of 100 turns over
//! one 1000-turn session of the release `chat`), `prompt` (target 3: fresh tokens per request
//! with Ollama's prompt cache, issue 9), `memory` (target 4).
//! The Ollama double runs as its own process (`ollama-double`), the MCP servers are the real
//! ones installed by scripts/setup-test-deps.sh, and `chat` is the release binary. A figure that
//! misses its target is reported, not hidden; a broken measurement (wrong reply, a tool result
//! not sent in full) fails the run.

use std::time::Duration;

#[path = "engine/conversation.rs"]
mod conversation;
#[path = "engine/cpu.rs"]
mod cpu;
#[path = "engine/memory.rs"]
mod memory;
#[path = "engine/prompt.rs"]
mod prompt;
#[path = "engine/session.rs"]
mod session;
#[path = "engine/startup.rs"]
mod startup;
#[path = "engine/support.rs"]
mod support;

const SECTIONS: [&str; 5] = ["startup", "cpu", "session", "prompt", "memory"];

fn main() -> anyhow::Result<()> {
    // reqwest and rmcp's HTTP client share rustls; it needs one process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` passes `--bench`; other flags are ours.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(words) = args.iter().find_map(|a| a.strip_prefix("--reply-words=")) {
        let words = words
            .parse()
            .map_err(|e| anyhow::anyhow!("--reply-words={words}: {e}"))?;
        let _ = support::REPLY_WORDS.set(words);
    }
    let unknown: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") && !SECTIONS.contains(&a.as_str()))
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "unknown section(s) {unknown:?}; the sections are {SECTIONS:?}"
    );
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| SECTIONS.contains(&a.as_str()))
        .map(String::as_str)
        .collect();
    let wanted = |s: &str| chosen.is_empty() || chosen.contains(&s);

    support::note(&format!(
        "# Engine benchmarks (issues 2 and 9){}\n\nmachine: {} CPUs, load average {}",
        if quick { " — quick run" } else { "" },
        std::thread::available_parallelism().map_or(0, usize::from),
        support::loadavg()
    ));
    // Sections that drive the engine in this process use the runtime of `chat` (the CPU
    // section also the one of `run`); the others measure the binary.
    if wanted("startup") {
        support::chat_runtime()?.block_on(startup::run(if quick { 2 } else { 7 }))?;
    }
    if wanted("cpu") {
        let sizes = if quick {
            cpu::Sizes {
                warmup: 10,
                batches: 5,
                per_batch: 10,
                binary_turns: 100,
            }
        } else {
            cpu::Sizes {
                warmup: 30,
                batches: 20,
                per_batch: 10,
                binary_turns: 400,
            }
        };
        cpu::run(&sizes)?;
    }
    if wanted("session") {
        // One long session, whole `chat` process, CPU per block of 100 turns (issue 13).
        support::chat_runtime()?.block_on(session::run(if quick { 200 } else { 1000 }))?;
    }
    if wanted("prompt") {
        // The 100-turn conversation of the target; fewer turns for a quick look.
        support::chat_runtime()?.block_on(prompt::run(if quick { 40 } else { 100 }))?;
    }
    if wanted("memory") {
        support::chat_runtime()?.block_on(memory::run(Duration::from_secs(if quick {
            2
        } else {
            12
        })))?;
    }
    Ok(())
}
