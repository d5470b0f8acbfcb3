//! Issue 13, "flat with session length": the release `chat` binary through ONE long session
//! (1000 turns; 200 with `--quick`), whole-process CPU per turn by block of 100 turns, and the
//! ratio of the last block to the first (target ≤ 1.2).
//!
//! The mix is fixed: of every 5 turns, 4 are plain (a 60-word reply) and 1 calls
//! `everything__echo` (two model requests, one MCP call, a four-message SQLite write). The 4 real
//! MCP servers are attached (their 24 tools offered in every request), the instant Ollama double
//! runs in a process of its own, `chat` is pinned to CPU 1 (`taskset -a -p -c 1`), start-up and
//! 10 warm-up turns are excluded. CPU is the run time of every `chat` thread from
//! `/proc/<pid>/task/*/schedstat` (nanoseconds; `/proc/<pid>/stat` counts 10 ms ticks, too coarse
//! for a block of 100 turns at under 1 ms, so it is only the whole session's cross-check).

use anyhow::ensure;

use super::support::{
    Chat, DoubleProcess, cpu_between, four_servers, loadavg, ms, pin, process_cpu, table,
    threads_cpu,
};

const BLOCK: usize = 100;
const WARMUP: usize = 10;

fn is_tool_turn(i: usize) -> bool {
    i % 5 == 4
}

fn message(i: usize) -> String {
    if is_tool_turn(i) {
        format!(r#"Say it back to me: [[call everything__echo {{"message": "hello {i}"}}]]"#)
    } else {
        format!("Tell me one interesting thing about the number {i}, please.")
    }
}

fn check(i: usize, reply: &str) -> anyhow::Result<()> {
    let ok = if is_tool_turn(i) {
        reply.contains(&format!("Echo: hello {i}"))
    } else {
        reply.starts_with("echo: Tell me") && reply.contains(&i.to_string())
    };
    ensure!(ok, "turn {i}: unexpected reply {reply:?}");
    Ok(())
}

pub async fn run(turns: usize) -> anyhow::Result<()> {
    let double = DoubleProcess::spawn(None).await?;
    let dir = tempfile::tempdir()?;
    let mut chat = Chat::spawn(dir.path(), &double.url, four_servers(dir.path()), |_| {})?;
    let pid = chat.pid()?;
    pin(pid)?;
    let mut i = 0;
    for _ in 0..WARMUP {
        check(i, &chat.turn(&message(i)).await?)?;
        i += 1;
    }
    let load_before = loadavg();
    let ticks_before = process_cpu(pid)?;
    let mut blocks = Vec::new();
    for _ in 0..turns.div_ceil(BLOCK) {
        let first = i;
        let before = threads_cpu(pid)?;
        let started = std::time::Instant::now();
        for _ in 0..BLOCK {
            check(i, &chat.turn(&message(i)).await?)?;
            i += 1;
        }
        let cpu = ms(cpu_between(&before, &threads_cpu(pid)?)?) / BLOCK as f64;
        let wall = ms(started.elapsed()) / BLOCK as f64;
        blocks.push((first - WARMUP + 1, i - WARMUP, cpu, wall));
    }
    // Cross-check of the per-thread clock against the process's tick clock (which also counts
    // threads that exited), over the whole session.
    let ticks = ms(process_cpu(pid)? - ticks_before) / (blocks.len() * BLOCK) as f64;
    chat.finish().await?;
    let first = blocks.first().map_or(f64::NAN, |b| b.2);
    let rows: Vec<Vec<String>> = blocks
        .iter()
        .map(|&(from, to, cpu, wall)| {
            vec![
                format!("{from}–{to}"),
                format!("{cpu:.3}"),
                format!("{:.2}×", cpu / first),
                format!("{wall:.2}"),
            ]
        })
        .collect();
    let last = blocks.last().map_or(f64::NAN, |b| b.2);
    table(
        &format!(
            "One session of {} turns through the release `chat` (4 plain : 1 `everything__echo` turn; whole process, pinned to CPU 1; load average {} → {}): last block / first block = **{:.2}×** (target ≤ 1.2×); over all blocks {:.3} ms per turn by /proc/<pid>/stat ticks",
            blocks.len() * BLOCK,
            load_before,
            loadavg(),
            last / first,
            ticks
        ),
        &[
            "turns",
            "CPU per turn (ms)",
            "vs first block",
            "wall per turn (ms)",
        ],
        &rows,
    );
    Ok(())
}
