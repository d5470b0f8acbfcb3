//! The real controller loop (watches, owned objects, the Secret mapping, the generation filter)
//! against the in-memory API server: create, update, removal of a sidecar, invalid spec, a
//! Secret that appears later, persistence switched on and off, deletion (the bot is forgotten).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use ollama_mcp_operator::controller::{self, Context, ControllerOptions};
use ollama_mcp_operator::crd::BotDeployment;
use ollama_mcp_operator::metrics::Metrics;
use serde_json::{Value, json};
use support::fake_api::FakeApi;

const NS: &str = "bots";

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn condition(api: &FakeApi, type_: &str) -> Option<(String, String, String)> {
    let bd = api.get("ollama-mcp.io/v1alpha1", "botdeployments", NS, "helper")?;
    bd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == json!(type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn init_containers(api: &FakeApi) -> Vec<String> {
    api.get("apps/v1", "deployments", NS, "helper")
        .and_then(|d| {
            d["spec"]["template"]["spec"]["initContainers"]
                .as_array()
                .cloned()
        })
        .unwrap_or_default()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": {"token": "c2VjcmV0"}})
}

#[tokio::test]
async fn the_controller_keeps_a_bot_through_its_life() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::new(false);
    api.insert("v1", "secrets", secret("helper-discord"));
    let client = api.client();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let settings = ControllerOptions {
        bot_image: Some("ghcr.io/ollama-mcp/bot:0.1.0".into()),
        ollama_url_override: Some(nowhere),
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        Arc::new(Metrics::default()),
    ));
    let view = Arc::clone(&ctx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, Some(NS.into()), async move {
        let _ = stopped.await;
    }));

    // Create.
    let bds: Api<BotDeployment> = Api::namespaced(client.clone(), NS);
    let bd: BotDeployment = serde_json::from_value(json!({
        "apiVersion": "ollama-mcp.io/v1alpha1", "kind": "BotDeployment",
        "metadata": {"name": "helper", "namespace": NS},
        "spec": {
            "discord": {"tokenSecretRef": {"name": "helper-discord", "key": "token"}},
            "model": {"name": "llama3.2"},
            "ollama": {"url": "http://ollama.ai.svc:11434"},
            "mcpServers": [{"name": "memory", "preset": "memory"}, {"name": "thinking", "preset": "sequential-thinking"}],
        }
    }))
    .unwrap();
    bds.create(&PostParams::default(), &bd).await.unwrap();
    eventually("the Deployment exists with both sidecars", || {
        init_containers(&api) == ["bridge-copy", "mcp-memory", "mcp-thinking"]
    })
    .await;
    for (gv, plural, name) in [
        ("v1", "configmaps", "helper-config"),
        ("v1", "serviceaccounts", "helper"),
        ("v1", "services", "helper-metrics"),
        ("networking.k8s.io/v1", "networkpolicies", "helper"),
    ] {
        let obj = api
            .get(gv, plural, NS, name)
            .unwrap_or_else(|| panic!("{plural}/{name} missing"));
        assert_eq!(
            obj["metadata"]["ownerReferences"][0]["name"],
            json!("helper")
        );
    }
    eventually("status says the model cannot be checked", || {
        condition(&api, "ModelReady")
            .is_some_and(|(s, r, _)| s == "False" && r == "OllamaUnreachable")
    })
    .await;
    assert_eq!(condition(&api, "Ready").unwrap().0, "False");

    // Update: remove a server; its sidecar goes.
    let patch = json!({"spec": {"mcpServers": [{"name": "memory", "preset": "memory"}]}});
    bds.patch("helper", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("the thinking sidecar is gone", || {
        init_containers(&api) == ["bridge-copy", "mcp-memory"]
    })
    .await;

    // Persistence on, then off: the PVC comes and goes.
    bds.patch(
        "helper",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"persistence": {"size": "1Gi"}}})),
    )
    .await
    .unwrap();
    eventually("the data PVC exists", || {
        api.get("v1", "persistentvolumeclaims", NS, "helper-data")
            .is_some()
    })
    .await;
    bds.patch(
        "helper",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"persistence": null}})),
    )
    .await
    .unwrap();
    eventually("the data PVC is deleted", || {
        api.get("v1", "persistentvolumeclaims", NS, "helper-data")
            .is_none()
    })
    .await;

    // Invalid: a header from a Secret that does not exist.
    let remote = json!({"spec": {"mcpServers": [
        {"name": "memory", "preset": "memory"},
        {"name": "remote", "url": "https://mcp.example.com/mcp",
         "headers": [{"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "remote-auth", "key": "auth"}}}]}
    ]}});
    bds.patch("helper", &PatchParams::default(), &Patch::Merge(&remote))
        .await
        .unwrap();
    eventually("status is Degraded with advice", || {
        condition(&api, "Degraded").is_some_and(|(s, r, m)| {
            s == "True" && r == "InvalidSpec" && m.contains("Secret `remote-auth` does not exist")
        })
    })
    .await;
    let events = api.list("events.k8s.io/v1", "events", NS);
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == json!("InvalidSpec") && e["type"] == json!("Warning")),
        "{events:#?}"
    );

    // The Secret appears: the watch on Secrets brings the bot back without a spec change.
    api.insert("v1", "secrets", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "remote-auth", "namespace": NS}, "data": {"auth": "eA=="}}));
    eventually("Degraded clears once the Secret exists", || {
        condition(&api, "Degraded").is_some_and(|(s, ..)| s == "False")
    })
    .await;
    let bot = api.get("apps/v1", "deployments", NS, "helper").unwrap();
    let env = bot["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == json!("OLLAMA_MCP_HEADER_REMOTE_0")),
        "{env:#?}"
    );
    assert!(
        bot["spec"]["template"]["metadata"]["annotations"]["ollama-mcp.io/secrets-hash"]
            .is_string()
    );

    // The operator never asked for a Secret's data: every Secret request was metadata-only.
    let secret_requests: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/secrets"))
        .collect();
    assert!(secret_requests.len() >= 2, "{secret_requests:#?}");
    assert!(
        secret_requests
            .iter()
            .all(|r| r.metadata_only && r.method == "GET"),
        "{secret_requests:#?}"
    );

    // Deleted: forgotten at once (its model check stops, the gauges count it no more).
    let gauge = |n: u32| format!("ollama_mcp_operator_bot_deployments {n}\n");
    assert!(view.metrics.encode().contains(&gauge(1)));
    assert!(view.models.tracks("bots/helper"));
    bds.delete("helper", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted bot is forgotten", || {
        view.metrics.encode().contains(&gauge(0)) && !view.models.tracks("bots/helper")
    })
    .await;
    assert!(
        view.metrics
            .encode()
            .contains("ollama_mcp_operator_managed_objects{kind=\"Deployment\"} 0"),
        "{}",
        view.metrics.encode()
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), controller)
        .await
        .expect("the controller stops")
        .unwrap();
}
