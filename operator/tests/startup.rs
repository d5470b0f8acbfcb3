//! The operator binary started before its CRD exists, against the in-memory API server served
//! on 127.0.0.1: it says at error level what is missing and how to install it, reports not
//! ready, starts once the CRD appears, and exits promptly on SIGTERM in either state.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::fake_api::FakeApi;
use tokio::io::AsyncReadExt;

struct Operator {
    child: tokio::process::Child,
    metrics: String,
    _dir: tempfile::TempDir,
}

async fn start(api: &FakeApi) -> Operator {
    let addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollama-mcp-operator"))
        .args(["run", "--metrics-addr", &metrics, "--namespace", "bots"])
        .args([
            "--bot-image",
            "ghcr.io/ollama-mcp/bot:0.1.0",
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the operator binary");
    Operator {
        child,
        metrics,
        _dir: dir,
    }
}

async fn readyz(op: &Operator) -> Option<u16> {
    let url = format!("http://{}/readyz", op.metrics);
    reqwest::get(&url).await.ok().map(|r| r.status().as_u16())
}

async fn eventually_readyz(op: &Operator, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if readyz(op).await == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM and returns how long the process took to exit, and its stderr.
async fn terminate(mut op: Operator) -> (Duration, String) {
    let pid = op.child.id().unwrap().to_string();
    let started = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
    tokio::time::timeout(Duration::from_secs(30), op.child.wait())
        .await
        .expect("the operator did not exit within 30 s of SIGTERM")
        .unwrap();
    let took = started.elapsed();
    let mut stderr = String::new();
    op.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    (took, stderr)
}

#[tokio::test]
async fn without_its_crd_the_operator_says_so_is_not_ready_and_stops_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::new(false);
    api.set_crd_installed(false);
    let op = start(&api).await;
    eventually_readyz(&op, 503).await;
    // Still not ready a little later: nothing is being reconciled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(readyz(&op).await, Some(503));
    let (took, stderr) = terminate(op).await;
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
    let error = stderr
        .lines()
        .find(|l| l.contains("\"level\":\"ERROR\""))
        .unwrap_or_else(|| panic!("no error logged:\n{stderr}"));
    assert!(
        error.contains("CRD") && error.contains("not installed") && error.contains("kubectl apply"),
        "{error}"
    );
}

#[tokio::test]
async fn the_operator_starts_when_its_crd_appears_and_stops_promptly() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::new(false);
    api.set_crd_installed(false);
    let op = start(&api).await;
    eventually_readyz(&op, 503).await;
    // Only once the operator has looked for the CRD and not found it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .requests()
        .iter()
        .any(|r| r.path.trim_end_matches('/') == "/apis/ollama-mcp.io/v1alpha1")
    {
        assert!(
            Instant::now() < deadline,
            "the operator never looked for its CRD"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.set_crd_installed(true);
    // The check repeats every 10 s.
    eventually_readyz(&op, 200).await;
    let (took, stderr) = terminate(op).await;
    assert!(took < Duration::from_secs(12), "took {took:?} to stop");
    assert!(stderr.contains("starting the controller"), "{stderr}");
}
