//! Target 4: resident memory of the release `chat`, idle with the 4 servers connected, our
//! process only (`VmRSS` of its pid; the servers are children with their own memory).

use std::time::{Duration, Instant};

use anyhow::ensure;
use ollama_mcp_tests::servers::{PageServer, descendants};

use super::support::{Chat, DoubleProcess, four_servers, proc_status, table};

/// `VmRSS` after `idle` of quiet, sampled every 100 ms (the last sample; the runtime's blocking
/// threads linger a few seconds after the last SQLite call, so idle means idle for a while).
async fn idle_rss(pid: u32, idle: Duration) -> anyhow::Result<u64> {
    let until = Instant::now() + idle;
    let mut rss = proc_status(pid, "VmRSS")?;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss = proc_status(pid, "VmRSS")?;
    }
    Ok(rss)
}

/// Resident KiB per mapping source (`/proc/<pid>/smaps`): the executable, each shared library,
/// and anonymous memory (heap, stacks), largest first. Says where the RSS is, not just how much.
pub fn rss_by_mapping(pid: u32) -> anyhow::Result<Vec<(String, u64)>> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: address perms offset dev inode [path].
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            current = if path.is_empty() || path.starts_with('[') {
                format!("anonymous {path}").trim().to_string()
            } else {
                // Split by permissions: code (r-x), read-only data (r--), written data (rw-).
                format!("{} {perms}", path.rsplit('/').next().unwrap_or(path))
            };
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by.entry(current.clone()).or_default() += kib;
        }
    }
    let mut rows: Vec<(String, u64)> = by.into_iter().filter(|(_, k)| *k > 0).collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    Ok(rows)
}

fn children_rss(pid: u32) -> u64 {
    descendants(pid)
        .into_iter()
        .filter_map(|p| proc_status(p, "VmRSS").ok())
        .sum()
}

pub async fn run(idle: Duration) -> anyhow::Result<()> {
    let double = DoubleProcess::spawn(None).await?;
    let page = PageServer::start(&[(
        "/page.html",
        format!(
            "<html><body><h1>Notes</h1>{}</body></html>",
            "<p>A paragraph of ordinary text that makes the page about eight kilobytes long.</p>"
                .repeat(100)
        ),
    )])
    .await;
    let dir = tempfile::tempdir()?;
    let mut chat = Chat::spawn(dir.path(), &double.url, four_servers(dir.path()), |_| {})?;
    let pid = chat.pid()?;
    let reply = chat.turn("hello").await?;
    ensure!(
        reply.starts_with("echo: hello"),
        "unexpected reply {reply:?}"
    );
    let ready_rss = idle_rss(pid, idle).await?;
    let ready_anon = proc_status(pid, "RssAnon")?;
    let ready_threads = proc_status(pid, "Threads")?;
    let ready_file = proc_status(pid, "RssFile")?;
    let by_mapping = rss_by_mapping(pid)?;

    let fetch = format!(
        r#"read [[call fetch__fetch {{"url": "{}", "max_length": 20000}}]]"#,
        page.url("/page.html")
    );
    let turns = [
        "What is the capital of Portugal?".to_string(),
        r#"note [[call memory__create_entities {"entities": [{"name": "Ada", "entityType": "person", "observations": ["likes tea"]}]}]]"#.into(),
        fetch.clone(),
        r#"think [[call thinking__sequentialthinking {"thought": "Step one.", "thoughtNumber": 1, "totalThoughts": 2, "nextThoughtNeeded": true}]]"#.into(),
        r#"echo [[call everything__echo {"message": "hi"}]]"#.into(),
        "Summarise all that.".into(),
        r#"recall [[call memory__read_graph {}]]"#.into(),
        fetch,
        "Thanks!".into(),
        "Bye.".into(),
    ];
    for t in &turns {
        chat.turn(t).await?;
    }
    let after_rss = idle_rss(pid, idle).await?;
    let after_anon = proc_status(pid, "RssAnon")?;
    let after_file = proc_status(pid, "RssFile")?;
    let hwm = proc_status(pid, "VmHWM")?;
    let threads = proc_status(pid, "Threads")?;
    let servers_rss = children_rss(pid);
    chat.finish().await?;

    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    table(
        &format!(
            "Resident memory of `ollama-mcp-bot chat` (release), our process only, after {} s idle",
            idle.as_secs()
        ),
        &[
            "moment",
            "VmRSS (MiB)",
            "anonymous (heap, stacks)",
            "file (executable, libraries)",
            "threads",
            "target",
        ],
        &[
            vec![
                "ready (4 servers, 1 turn)".into(),
                mib(ready_rss),
                mib(ready_anon),
                mib(ready_file),
                ready_threads.to_string(),
                "≤ 13 MiB".into(),
            ],
            vec![
                format!(
                    "after {} more turns (7 with tools, 2 fetches of ~8 KB)",
                    turns.len()
                ),
                mib(after_rss),
                mib(after_anon),
                mib(after_file),
                threads.to_string(),
                "≤ 13 MiB".into(),
            ],
            vec![
                "peak (VmHWM)".into(),
                mib(hwm),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
            vec![
                "for scale: the 4 MCP server processes together".into(),
                mib(servers_rss),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
        ],
    );
    table(
        "Where the ready RSS is (`/proc/<pid>/smaps`, by mapping)",
        &["mapping", "resident (MiB)"],
        &by_mapping
            .iter()
            .map(|(m, kib)| vec![format!("`{m}`"), mib(*kib)])
            .collect::<Vec<_>>(),
    );
    Ok(())
}
