//! Benchmark: the operator binary (`ollama-mcp-operator run`, a separate process) against the
//! in-memory API server served on 127.0.0.1.
//!
//!   cargo bench -p ollama-mcp-operator --bench reconcile
//!
//! 1. One BotDeployment at a time (the `full.yaml` example: managed Ollama, four sidecars,
//!    persistence, a ServiceMonitor): the time from its creation to its last child (the
//!    NetworkPolicy, or the ServiceMonitor) applied and its status written; median and p90.
//! 2. 100 BotDeployments created at once: the time until every one is reconciled.
//! 3. The operator process's resident memory afterwards, and its peak.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary"
)]

#[path = "../tests/support/fake_api.rs"]
mod fake_api;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use futures::StreamExt;
use kube::Api;
use kube::api::PostParams;
use ollama_mcp_operator::crd::BotDeployment;
use serde_json::{Value, json};

const NS: &str = "bench";
const ONE_BY_ONE: usize = 200;
const AT_ONCE: usize = 100;

fn example() -> BotDeployment {
    let text = include_str!("../../manifests/examples/full.yaml");
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == json!("BotDeployment") {
            return serde_json::from_value(v).unwrap();
        }
    }
    unreachable!("full.yaml holds a BotDeployment")
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until every name has had its last child applied and then its status written.
async fn reconciled(
    events: &mut (impl futures::Stream<Item = (String, String, String, &'static str)> + Unpin),
    names: &HashSet<String>,
) {
    let mut applied = HashSet::new();
    let mut status = HashSet::new();
    while status.len() < names.len() {
        let (plural, _, name, type_) =
            tokio::time::timeout(Duration::from_secs(120), events.next())
                .await
                .expect("no progress for 120 s")
                .expect("event stream ended");
        if !names.contains(&name) {
            continue;
        }
        match (plural.as_str(), type_) {
            ("servicemonitors", _) => {
                applied.insert(name);
            }
            ("botdeployments", "MODIFIED") if applied.contains(&name) => {
                status.insert(name);
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::new(true).without_cel();
    let total = ONE_BY_ONE + AT_ONCE;
    for i in 0..total {
        api.insert("v1", "secrets", json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("bot{i}-discord"), "namespace": NS}, "data": {"token": "eA=="}}));
    }
    let addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NS}\n\
         current-context: fake\nusers:\n- name: fake\n  user: {{}}\n")).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollama-mcp-operator"))
        .args([
            "run",
            "--metrics-addr",
            &metrics_addr,
            "--namespace",
            NS,
            "--log-format",
            "json",
        ])
        .args([
            "--bot-image",
            "ghcr.io/ollama-mcp/bot:0.1.0",
            "--ollama-url-override",
            &nowhere,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start the operator binary");
    let pid = operator.id().unwrap();

    let bds: Api<BotDeployment> = Api::namespaced(api.client(), NS);
    let mut events = Box::pin(api.subscribe());
    let mut template = example();
    let mut create = |i: usize| {
        template.metadata.name = Some(format!("bot{i}"));
        template.metadata.namespace = Some(NS.into());
        template.spec.discord.token_secret_ref.name = format!("bot{i}-discord");
        template.clone()
    };

    // The first object also waits for the operator to start and sync its caches.
    let first = create(0);
    bds.create(&PostParams::default(), &first).await.unwrap();
    reconciled(&mut events, &HashSet::from(["bot0".to_string()])).await;
    let baseline = proc_kib(pid, "VmRSS:");

    let mut times = Vec::new();
    for i in 1..ONE_BY_ONE {
        let bd = create(i);
        let start = Instant::now();
        bds.create(&PostParams::default(), &bd).await.unwrap();
        reconciled(&mut events, &HashSet::from([format!("bot{i}")])).await;
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!(
        "one BotDeployment (full.yaml), creation → every child applied and status written: median {median:.1?}, p90 {p90:.1?}, max {:.1?} (n = {})",
        times[times.len() - 1],
        times.len()
    );

    let batch: Vec<BotDeployment> = (ONE_BY_ONE..total).map(&mut create).collect();
    let names: HashSet<String> = batch
        .iter()
        .map(|b| b.metadata.name.clone().unwrap())
        .collect();
    let start = Instant::now();
    for bd in &batch {
        bds.create(&PostParams::default(), bd).await.unwrap();
    }
    reconciled(&mut events, &names).await;
    println!(
        "{AT_ONCE} BotDeployments created at once → all reconciled: {:.2?}",
        start.elapsed()
    );
    println!(
        "operator resident memory: {} MiB with one BotDeployment, {} MiB with {total} (peak {} MiB)",
        baseline / 1024,
        proc_kib(pid, "VmRSS:") / 1024,
        proc_kib(pid, "VmHWM:") / 1024
    );
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("?")
            .to_string()
    };
    println!(
        "reconciliations: {}, their total time {} s, API requests served: {}",
        value("ollama_mcp_operator_reconciliations_total"),
        value("ollama_mcp_operator_reconcile_duration_seconds_sum"),
        api.requests().len()
    );
    operator.kill().await.unwrap();
}
