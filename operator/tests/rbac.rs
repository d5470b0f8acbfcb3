//! Least RBAC, derived rather than copied: the real controller runs a BotDeployment through its
//! whole life in the in-memory API server (every child kind created, switched off and deleted,
//! an invalid spec reported twice, the object deleted), the server records what its authorizer
//! would check for each request, and the result must equal the ClusterRole of
//! `manifests/install/rbac.yaml` (which tests/tests/chart.rs holds equal to the chart's). An
//! unused permission fails here as surely as a missing one.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::collections::BTreeSet;
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

type Rules = BTreeSet<(String, String, String)>;

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

fn secret(name: &str, key: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
           "data": {key: "c2VjcmV0"}})
}

/// The rules of the operator's ClusterRole in manifests/install/rbac.yaml, one triple per
/// (group, resource, verb).
fn installed_rules() -> Rules {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/install/rbac.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Rules::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] != json!("ClusterRole")
            || v["metadata"]["name"] != json!("ollama-mcp-operator")
        {
            continue;
        }
        for rule in v["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            g.as_str().unwrap().to_string(),
                            r.as_str().unwrap().to_string(),
                            verb.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
    }
    assert!(
        !out.is_empty(),
        "no ClusterRole ollama-mcp-operator in {path}"
    );
    out
}

fn exists(api: &FakeApi, gv: &str, plural: &str, name: &str) -> bool {
    api.get(gv, plural, NS, name).is_some()
}

fn degraded_reason(api: &FakeApi) -> Option<String> {
    let bd = api.get("ollama-mcp.io/v1alpha1", "botdeployments", NS, "helper")?;
    bd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == json!("Degraded") && c["status"] == json!("True"))
        .and_then(|c| c["reason"].as_str().map(str::to_string))
}

#[tokio::test]
async fn the_rbac_rules_are_exactly_what_the_controller_uses() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::new(true);
    api.insert("v1", "secrets", secret("helper-discord", "token"));
    api.insert("v1", "secrets", secret("helper-mcp", "auth"));
    let client = api.client();
    let setup = api.setup_client();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let ctx = Arc::new(Context::new(
        client.clone(),
        ControllerOptions {
            bot_image: Some("ghcr.io/ollama-mcp/bot:0.1.0".into()),
            ollama_url_override: Some(nowhere),
            ..Default::default()
        },
        Arc::new(Metrics::default()),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, Some(NS.into()), async move {
        let _ = stopped.await;
    }));

    // Every child: managed Ollama with storage, persistence, a ServiceMonitor, a sidecar and a
    // remote server whose header comes from a Secret.
    let bds: Api<BotDeployment> = Api::namespaced(setup.clone(), NS);
    let bd: BotDeployment = serde_json::from_value(json!({
        "apiVersion": "ollama-mcp.io/v1alpha1", "kind": "BotDeployment",
        "metadata": {"name": "helper", "namespace": NS},
        "spec": {
            "discord": {"tokenSecretRef": {"name": "helper-discord", "key": "token"}},
            "model": {"name": "llama3.2"},
            "ollama": {"managed": {"storage": {"size": "10Gi"}}},
            "mcpServers": [
                {"name": "memory", "preset": "memory"},
                {"name": "remote", "url": "https://mcp.example.com/mcp",
                 "headers": [{"name": "Authorization",
                              "valueFrom": {"secretKeyRef": {"name": "helper-mcp", "key": "auth"}}}]},
            ],
            "persistence": {"size": "1Gi"},
            "metrics": {"serviceMonitor": true},
        }
    }))
    .unwrap();
    bds.create(&PostParams::default(), &bd).await.unwrap();
    eventually("every child exists", || {
        exists(
            &api,
            "monitoring.coreos.com/v1",
            "servicemonitors",
            "helper",
        ) && exists(&api, "v1", "persistentvolumeclaims", "helper-ollama")
            && exists(&api, "v1", "persistentvolumeclaims", "helper-data")
    })
    .await;

    // Switch the optional children off: each is looked up and deleted.
    let patch = json!({"spec": {"ollama": {"managed": null, "url": "http://ollama.ai.svc:11434"},
                                "persistence": null, "metrics": {"serviceMonitor": false}}});
    bds.patch("helper", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("the switched-off children are gone", || {
        !exists(
            &api,
            "monitoring.coreos.com/v1",
            "servicemonitors",
            "helper",
        ) && !exists(&api, "apps/v1", "deployments", "helper-ollama")
            && !exists(&api, "v1", "persistentvolumeclaims", "helper-data")
    })
    .await;

    // The same problem twice: the second Warning event is a patch of the first.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(setup, NS);
    for round in 0..2 {
        secrets
            .delete("helper-mcp", &DeleteParams::default())
            .await
            .unwrap();
        eventually(&format!("invalid spec reported ({round})"), || {
            degraded_reason(&api).as_deref() == Some("InvalidSpec")
        })
        .await;
        api.insert("v1", "secrets", secret("helper-mcp", "auth"));
        eventually(&format!("valid again ({round})"), || {
            degraded_reason(&api).is_none()
        })
        .await;
    }
    bds.delete("helper", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    controller.await.unwrap();

    let used = api.authorizations();
    let granted = installed_rules();
    let missing: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "manifests/install/rbac.yaml (and the chart) must grant exactly what the controller \
         uses.\nmissing: {missing:#?}\nunused: {unused:#?}"
    );
}
