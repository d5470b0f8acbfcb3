//! Reconcile against a mocked API server: every request is asserted in order (method, path,
//! field manager, force, body), then answered as the API server would.
//! Over ~450 lines: every reconcile scenario against one mocked API server script vocabulary.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::crd::{BotDeploymentStatus, McpServerSpec, Preset};
use crate::fixtures::{
    self, ApiServerVerifier, FakeOllama, NS, OllamaState, full, minimal, wait_model_check,
};

const CORE: &str = "/api/v1/namespaces/bots";
const APPS: &str = "/apis/apps/v1/namespaces/bots";

fn ready_deployment() -> Value {
    json!({"status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}})
}

/// A running bot pod whose sidecars are all ready.
fn running_pod(sidecars: &[&str]) -> Value {
    let init: Vec<Value> = sidecars
        .iter()
        .map(|s| json!({"name": s, "ready": true, "restartCount": 0, "image": "x", "imageID": "x",
                         "started": true, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}))
        .collect();
    json!({
        "metadata": {"name": "helper-5d9c7-abcde", "namespace": NS,
                     "labels": {"app.kubernetes.io/name": "ollama-mcp-bot", "app.kubernetes.io/instance": "helper"}},
        "spec": {"containers": [{"name": "bot", "image": "x"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                   "initContainerStatuses": init,
                   "containerStatuses": [{"name": "bot", "ready": true, "restartCount": 0, "image": "x", "imageID": "x",
                                          "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
    })
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == json!(type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
}

#[track_caller]
fn assert_condition(status: &Value, type_: &str, value: &str, reason: &str) {
    let c = condition(status, type_);
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some(value), Some(reason)),
        "{type_}: {c:#}"
    );
    assert_eq!(
        c["observedGeneration"],
        json!(1),
        "{type_} carries observedGeneration"
    );
    assert!(c["lastTransitionTime"].is_string());
}

async fn apply_ok(v: &mut ApiServerVerifier, path: &str) -> Value {
    let r = v.expect_apply(path).await;
    let body = r.body.clone();
    r.respond_applied(None);
    body
}

/// A GET of a child that must not exist (the operator checks before deleting).
async fn absent(v: &mut ApiServerVerifier, path: &str) {
    v.expect_get(path).await.not_found();
}

/// The requests of a reconcile of `minimal()` up to the status; returns the Deployment body.
async fn minimal_children(
    v: &mut ApiServerVerifier,
    deployment_status: Option<Value>,
    discovery: bool,
) -> Value {
    v.expect_secret_metadata("helper-discord", true).await;
    let cm = apply_ok(v, &format!("{CORE}/configmaps/helper-config")).await;
    let toml = cm["data"]["config.toml"].as_str().expect("config.toml");
    assert!(
        toml.contains("model = \"llama3.2\"")
            && toml.contains("url = \"http://ollama.ai.svc:11434\""),
        "{toml}"
    );
    let sa = apply_ok(v, &format!("{CORE}/serviceaccounts/helper")).await;
    assert_eq!(sa["automountServiceAccountToken"], json!(false));
    absent(v, &format!("{CORE}/persistentvolumeclaims/helper-data")).await;
    apply_ok(v, &format!("{CORE}/services/helper-metrics")).await;
    absent(v, &format!("{APPS}/deployments/helper-ollama")).await;
    absent(v, &format!("{CORE}/services/helper-ollama")).await;
    absent(v, &format!("{CORE}/persistentvolumeclaims/helper-ollama")).await;
    let r = v.expect_apply(&format!("{APPS}/deployments/helper")).await;
    let deployment = r.body.clone();
    r.respond_applied(deployment_status);
    apply_ok(
        v,
        "/apis/networking.k8s.io/v1/namespaces/bots/networkpolicies/helper",
    )
    .await;
    if discovery {
        v.expect_discovery(false).await;
    }
    deployment
}

async fn run_reconcile(bd: BotDeployment, ctx: &Arc<Context>) -> Result<Action, Error> {
    reconcile(Arc::new(bd), Arc::clone(ctx)).await
}

fn with_status(mut bd: BotDeployment, status: &Value) -> BotDeployment {
    bd.status = Some(
        serde_json::from_value::<BotDeploymentStatus>(status.clone()).expect("status deserializes"),
    );
    bd
}

#[tokio::test]
async fn minimal_bot_from_first_apply_to_ready() {
    let ollama = FakeOllama::start(OllamaState::default()).await;
    ollama.state.models.lock().unwrap().insert(
        "llama3.2:latest".into(),
        vec!["completion".into(), "tools".into()],
    );
    let (ctx, mut v) = fixtures::context(fixtures::options(Some(&ollama)));

    // First round: nothing is running yet.
    let api = tokio::spawn(async move {
        let deployment = minimal_children(&mut v, None, true).await;
        v.expect_list_pods("helper", vec![]).await;
        let status = v.expect_status("helper").await;
        (v, deployment, status)
    });
    let action = run_reconcile(minimal(), &ctx).await.expect("reconcile");
    let (mut v, deployment, status) = api.await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["name"],
        json!("bot")
    );
    let hash =
        deployment["spec"]["template"]["metadata"]["annotations"]["ollama-mcp.io/config-hash"]
            .clone();
    assert!(hash.as_str().is_some_and(|h| h.len() == 16), "{hash}");
    assert_eq!(status["configHash"], hash);
    assert_eq!(status["observedGeneration"], json!(1));
    assert_eq!(status["readyReplicas"], json!(0));
    assert_eq!(status["ollamaUrl"], json!("http://ollama.ai.svc:11434"));
    assert_condition(&status, "Ready", "False", "DeploymentNotReady");
    assert_condition(&status, "Progressing", "True", "RollingOut");
    assert_condition(&status, "Degraded", "False", "AsExpected");
    assert_condition(&status, "ModelReady", "Unknown", "Checking");

    // The model check finishes in the background; the pod becomes ready.
    wait_model_check(&ctx, "bots/helper").await;
    assert_eq!(
        *ollama.state.log.lock().unwrap(),
        ["/api/show llama3.2:latest"],
        "no pull for an external Ollama"
    );
    let api = tokio::spawn(async move {
        minimal_children(&mut v, Some(ready_deployment()), false).await;
        v.expect_list_pods("helper", vec![running_pod(&[])]).await;
        let status = v.expect_status("helper").await;
        (v, status)
    });
    let action = run_reconcile(with_status(minimal(), &status), &ctx)
        .await
        .expect("reconcile");
    let (v, second) = api.await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_condition(&second, "Ready", "True", "Ready");
    assert_condition(&second, "Progressing", "False", "Complete");
    assert_condition(&second, "ModelReady", "True", "ModelsReady");
    assert_eq!(
        condition(&second, "ModelReady")["message"],
        json!("llama3.2 (completion, tools)")
    );
    assert_eq!(
        second["models"],
        json!([{"name": "llama3.2", "present": true, "capabilities": ["completion", "tools"]}])
    );
    assert_eq!(second["readyReplicas"], json!(1));
    // Unchanged conditions keep their transition time.
    assert_eq!(
        condition(&second, "Degraded")["lastTransitionTime"],
        condition(&status, "Degraded")["lastTransitionTime"]
    );

    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn full_bot_with_managed_ollama_pulls_models_and_applies_every_child() {
    let ollama = FakeOllama::start(OllamaState::default()).await;
    {
        let mut lib = ollama.state.library.lock().unwrap();
        lib.insert(
            "qwen3:8b".into(),
            vec!["completion".into(), "tools".into(), "thinking".into()],
        );
        lib.insert(
            "llama3.2:latest".into(),
            vec!["completion".into(), "tools".into()],
        );
    }
    let (ctx, v) = fixtures::context(fixtures::options(Some(&ollama)));
    let sidecars = [
        "mcp-memory",
        "mcp-fetch",
        "mcp-browser",
        "mcp-thinking",
        "mcp-aws-docs",
        "mcp-tools",
        "mcp-web",
    ];

    let script = |mut v: ApiServerVerifier, ready: bool| async move {
        for s in ["helper-discord", "remote", "tools"] {
            v.expect_secret_metadata(s, true).await;
        }
        let cm = apply_ok(&mut v, &format!("{CORE}/configmaps/helper-config")).await;
        apply_ok(&mut v, &format!("{CORE}/serviceaccounts/helper")).await;
        let pvc = apply_ok(
            &mut v,
            &format!("{CORE}/persistentvolumeclaims/helper-data"),
        )
        .await;
        assert_eq!(
            pvc["spec"]["resources"]["requests"]["storage"],
            json!("2Gi")
        );
        apply_ok(&mut v, &format!("{CORE}/services/helper-metrics")).await;
        apply_ok(
            &mut v,
            &format!("{CORE}/persistentvolumeclaims/helper-ollama"),
        )
        .await;
        apply_ok(&mut v, &format!("{CORE}/services/helper-ollama")).await;
        let ollama_deploy = apply_ok(&mut v, &format!("{APPS}/deployments/helper-ollama")).await;
        assert_eq!(
            ollama_deploy["spec"]["template"]["spec"]["runtimeClassName"],
            json!("nvidia")
        );
        let r = v.expect_apply(&format!("{APPS}/deployments/helper")).await;
        let deployment = r.body.clone();
        r.respond_applied(ready.then(ready_deployment));
        apply_ok(
            &mut v,
            "/apis/networking.k8s.io/v1/namespaces/bots/networkpolicies/helper",
        )
        .await;
        if !ready {
            v.expect_discovery(true).await;
        }
        let sm = apply_ok(
            &mut v,
            "/apis/monitoring.coreos.com/v1/namespaces/bots/servicemonitors/helper",
        )
        .await;
        assert_eq!(sm["kind"], json!("ServiceMonitor"));
        v.expect_list_pods(
            "helper",
            if ready {
                vec![running_pod(&sidecars)]
            } else {
                vec![]
            },
        )
        .await;
        let status = v.expect_status("helper").await;
        (v, cm, deployment, status)
    };

    let api = tokio::spawn(script(v, false));
    run_reconcile(full(), &ctx).await.expect("reconcile");
    let (v, cm, deployment, status) = api.await.unwrap();
    let toml = cm["data"]["config.toml"].as_str().unwrap();
    assert!(
        toml.contains("url = \"http://helper-ollama.bots.svc:11434\""),
        "{toml}"
    );
    let init: Vec<&str> = deployment["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init[1..], sidecars);
    assert!(
        status["mcpServers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ready"] == json!(s["transport"] == json!("remote")))
    );
    assert_condition(&status, "ModelReady", "Unknown", "Checking");

    wait_model_check(&ctx, "bots/helper").await;
    let log = ollama.state.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "/api/show qwen3:8b",
            "/api/pull qwen3:8b",
            "/api/show qwen3:8b",
            "/api/show llama3.2:latest",
            "/api/pull llama3.2:latest",
            "/api/show llama3.2:latest"
        ]
    );
    let api = tokio::spawn(script(v, true));
    run_reconcile(with_status(full(), &status), &ctx)
        .await
        .expect("reconcile");
    let (v, _, _, status) = api.await.unwrap();
    assert_condition(&status, "Ready", "True", "Ready");
    assert_condition(&status, "ModelReady", "True", "ModelsReady");
    assert_eq!(
        status["models"][0],
        json!({"name": "qwen3:8b", "present": true, "capabilities": ["completion", "tools", "thinking"]})
    );
    let servers = status["mcpServers"].as_array().unwrap();
    assert_eq!(servers.len(), 8);
    assert!(
        servers.iter().all(|s| s["ready"] == json!(true)),
        "{servers:#?}"
    );
    assert_eq!(
        servers[7],
        json!({"name": "remote", "transport": "remote", "url": "https://mcp.example.com/mcp", "ready": true})
    );
    assert_eq!(servers[0]["transport"], json!("stdio"));
    assert_eq!(servers[6]["transport"], json!("http"));
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn invalid_spec_is_reported_once_and_waits_for_a_change() {
    let (ctx, mut v) = fixtures::context(fixtures::options(None));
    let api = tokio::spawn(async move {
        v.expect_secret_metadata("helper-discord", false).await;
        let status = v.expect_status("helper").await;
        let event = v.expect_event().await;
        (v, status, event)
    });
    let action = run_reconcile(minimal(), &ctx)
        .await
        .expect("an invalid spec is not an error");
    let (mut v, status, event) = api.await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_condition(&status, "Degraded", "True", "InvalidSpec");
    assert_condition(&status, "Ready", "False", "InvalidSpec");
    assert_condition(&status, "ModelReady", "Unknown", "NotChecked");
    let message = condition(&status, "Degraded")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("Secret `helper-discord` does not exist")
            && message.contains("kubectl create secret generic helper-discord"),
        "{message}"
    );
    assert_eq!(event["type"], json!("Warning"));
    assert_eq!(event["reason"], json!("InvalidSpec"));
    assert_eq!(event["note"], json!(message));
    assert_eq!(event["regarding"]["name"], json!("helper"));
    assert_eq!(event["reportingController"], json!("ollama-mcp-operator"));

    // The same problem again (e.g. a periodic resync): no status write, no second event.
    let api = tokio::spawn(async move {
        v.expect_secret_metadata("helper-discord", false).await;
        v
    });
    let action = run_reconcile(with_status(minimal(), &status), &ctx)
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
    let v = api.await.unwrap();
    assert_eq!(
        ctx.metrics
            .encode()
            .matches("ollama_mcp_operator_invalid_specs_total 2")
            .count(),
        1
    );
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn children_switched_off_are_deleted_only_when_this_bot_controls_them() {
    let (ctx, mut v) = fixtures::context(fixtures::options(None));
    let owned = |name: &str, uid: &str| {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"name": name, "namespace": NS, "uid": uid, "resourceVersion": "3",
                            "ownerReferences": [{"apiVersion": "ollama-mcp.io/v1alpha1", "kind": "BotDeployment",
                                                 "name": "helper", "uid": fixtures::UID, "controller": true}]}})
    };
    let api = tokio::spawn(async move {
        v.expect_secret_metadata("helper-discord", true).await;
        apply_ok(&mut v, &format!("{CORE}/configmaps/helper-config")).await;
        apply_ok(&mut v, &format!("{CORE}/serviceaccounts/helper")).await;
        // persistence was switched off: the PVC this bot owns goes.
        v.expect_get(&format!("{CORE}/persistentvolumeclaims/helper-data"))
            .await
            .respond(StatusCode::OK, &owned("helper-data", "pvc-uid"));
        let del = v.next().await;
        assert_eq!(
            (del.method.as_str(), del.path.as_str()),
            (
                "DELETE",
                format!("{CORE}/persistentvolumeclaims/helper-data").as_str()
            )
        );
        assert_eq!(
            del.body["preconditions"],
            json!({"uid": "pvc-uid"}),
            "deleted by uid, not by name alone"
        );
        assert_eq!(del.body["propagationPolicy"], json!("Background"));
        // The API server answers a DELETE with the object, now terminating.
        del.respond(
            StatusCode::OK,
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "helper-data", "namespace": NS, "uid": "pvc-uid",
                                 "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["kubernetes.io/pvc-protection"]}}),
        );
        apply_ok(&mut v, &format!("{CORE}/services/helper-metrics")).await;
        // A same-named Deployment owned by something else is left alone.
        let mut foreign = owned("helper-ollama", "other");
        foreign["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        v.expect_get(&format!("{APPS}/deployments/helper-ollama"))
            .await
            .respond(StatusCode::OK, &foreign);
        absent(&mut v, &format!("{CORE}/services/helper-ollama")).await;
        v.expect_get(&format!("{CORE}/persistentvolumeclaims/helper-ollama"))
            .await
            .respond(StatusCode::OK, &owned("helper-ollama", "models-uid"));
        let del = v.next().await;
        assert_eq!(
            (del.method.as_str(), del.path.as_str()),
            (
                "DELETE",
                format!("{CORE}/persistentvolumeclaims/helper-ollama").as_str()
            )
        );
        // Already gone meanwhile: fine.
        del.not_found();
        apply_ok(&mut v, &format!("{APPS}/deployments/helper")).await;
        apply_ok(
            &mut v,
            "/apis/networking.k8s.io/v1/namespaces/bots/networkpolicies/helper",
        )
        .await;
        // The ServiceMonitor CRD exists and the bot has one no longer asked for.
        v.expect_discovery(true).await;
        v.expect_get("/apis/monitoring.coreos.com/v1/namespaces/bots/servicemonitors/helper")
            .await
            .respond(StatusCode::OK, &owned("helper", "sm-uid"));
        let del = v.next().await;
        assert_eq!(
            (del.method.as_str(), del.path.as_str()),
            (
                "DELETE",
                "/apis/monitoring.coreos.com/v1/namespaces/bots/servicemonitors/helper"
            )
        );
        assert_eq!(del.body["preconditions"], json!({"uid": "sm-uid"}));
        del.respond(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        );
        v.expect_list_pods("helper", vec![]).await;
        v.expect_status("helper").await;
        v
    });
    run_reconcile(minimal(), &ctx).await.expect("reconcile");
    let v = api.await.unwrap();
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn service_monitor_without_its_crd_is_a_warning_not_degraded() {
    let (ctx, mut v) = fixtures::context(fixtures::options(None));
    let mut bd = minimal();
    bd.spec.metrics.service_monitor = true;
    let api = tokio::spawn(async move {
        minimal_children(&mut v, None, true).await;
        v.expect_list_pods("helper", vec![]).await;
        let status = v.expect_status("helper").await;
        let event = v.expect_event().await;
        (v, status, event)
    });
    run_reconcile(bd, &ctx).await.expect("reconcile");
    let (v, status, event) = api.await.unwrap();
    // A missing optional integration hides nothing: Degraded and Ready say what they would say
    // without it, and MonitoringReady says what to do.
    assert_condition(&status, "Degraded", "False", "AsExpected");
    assert_condition(&status, "Ready", "False", "DeploymentNotReady");
    assert_condition(
        &status,
        "MonitoringReady",
        "False",
        "ServiceMonitorUnavailable",
    );
    assert!(
        condition(&status, "MonitoringReady")["message"]
            .as_str()
            .unwrap()
            .contains("install the Prometheus operator")
    );
    assert_eq!(event["type"], json!("Warning"));
    assert_eq!(event["reason"], json!("ServiceMonitorUnavailable"));
    for c in status["conditions"].as_array().unwrap() {
        assert!(
            c["message"].as_str().is_some_and(|m| !m.trim().is_empty()),
            "a condition without a message: {c:#}"
        );
    }
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn a_rejected_apply_is_reported_and_retried() {
    let (ctx, mut v) = fixtures::context(fixtures::options(None));
    let api = tokio::spawn(async move {
        v.expect_secret_metadata("helper-discord", true).await;
        apply_ok(&mut v, &format!("{CORE}/configmaps/helper-config")).await;
        apply_ok(&mut v, &format!("{CORE}/serviceaccounts/helper")).await;
        absent(
            &mut v,
            &format!("{CORE}/persistentvolumeclaims/helper-data"),
        )
        .await;
        apply_ok(&mut v, &format!("{CORE}/services/helper-metrics")).await;
        absent(&mut v, &format!("{APPS}/deployments/helper-ollama")).await;
        absent(&mut v, &format!("{CORE}/services/helper-ollama")).await;
        absent(
            &mut v,
            &format!("{CORE}/persistentvolumeclaims/helper-ollama"),
        )
        .await;
        v.expect_apply(&format!("{APPS}/deployments/helper")).await.respond_status(
            422,
            "Invalid",
            "Deployment.apps \"helper\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: \"-1\"",
        );
        let status = v.expect_status("helper").await;
        let event = v.expect_event().await;
        (v, status, event)
    });
    let err = run_reconcile(minimal(), &ctx)
        .await
        .expect_err("the apply failed");
    let (v, status, event) = api.await.unwrap();
    assert_eq!(err.step(), "apply");
    assert!(
        err.to_string().contains("applying Deployment `helper`"),
        "{err}"
    );
    assert_condition(&status, "Degraded", "True", "ApplyRejected");
    assert!(
        condition(&status, "Degraded")["message"]
            .as_str()
            .unwrap()
            .contains("is invalid")
    );
    assert_eq!(event["reason"], json!("ApplyRejected"));
    let action = error_policy(Arc::new(minimal()), &err, Arc::clone(&ctx));
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    assert!(
        ctx.metrics
            .encode()
            .contains("ollama_mcp_operator_reconcile_errors_total{reason=\"apply\"} 1")
    );
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn a_failing_pod_says_which_container_and_why() {
    let (ctx, mut v) = fixtures::context(fixtures::options(None));
    let mut bd = minimal();
    bd.spec.mcp_servers = vec![McpServerSpec {
        name: "memory".into(),
        preset: Some(Preset::Memory),
        ..Default::default()
    }];
    let mut pod = running_pod(&[]);
    pod["status"]["initContainerStatuses"] = json!([{
        "name": "mcp-memory", "ready": false, "restartCount": 4, "image": "x", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}
    }]);
    let api = tokio::spawn(async move {
        minimal_children(&mut v, None, true).await;
        v.expect_list_pods("helper", vec![pod]).await;
        let status = v.expect_status("helper").await;
        let event = v.expect_event().await;
        (v, status, event)
    });
    run_reconcile(bd, &ctx).await.expect("reconcile");
    let (v, status, event) = api.await.unwrap();
    assert_condition(&status, "Degraded", "True", "PodFailing");
    let message = condition(&status, "Degraded")["message"].as_str().unwrap();
    assert_eq!(
        message,
        "container `mcp-memory` is CrashLoopBackOff: back-off 40s restarting failed container"
    );
    assert_eq!(
        status["mcpServers"],
        json!([{"name": "memory", "transport": "stdio", "url": "http://127.0.0.1:8100/mcp", "ready": false,
                "message": "the sidecar container `mcp-memory` is not ready"}])
    );
    assert_eq!(event["note"], json!(message));
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn a_model_without_tools_is_named() {
    let ollama = FakeOllama::start(OllamaState::default()).await;
    ollama.state.models.lock().unwrap().insert(
        "llama3.2:latest".into(),
        vec!["completion".into(), "vision".into()],
    );
    let (ctx, mut v) = fixtures::context(fixtures::options(Some(&ollama)));
    let api = tokio::spawn(async move {
        minimal_children(&mut v, Some(ready_deployment()), true).await;
        v.expect_list_pods("helper", vec![running_pod(&[])]).await;
        let first = v.expect_status("helper").await;
        (v, first)
    });
    run_reconcile(minimal(), &ctx).await.expect("reconcile");
    let (mut v, first) = api.await.unwrap();
    wait_model_check(&ctx, "bots/helper").await;
    let api = tokio::spawn(async move {
        minimal_children(&mut v, Some(ready_deployment()), false).await;
        v.expect_list_pods("helper", vec![running_pod(&[])]).await;
        (v.expect_status("helper").await, v)
    });
    let action = run_reconcile(with_status(minimal(), &first), &ctx)
        .await
        .expect("reconcile");
    let (status, v) = api.await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    assert_condition(&status, "ModelReady", "False", "ModelLacksTools");
    assert_condition(&status, "Ready", "False", "ModelNotReady");
    let message = condition(&status, "ModelReady")["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("model `llama3.2` cannot call tools (capabilities: completion, vision)"),
        "{message}"
    );
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn missing_models_and_unreachable_ollama_are_explained() {
    // A managed Ollama that cannot pull the model.
    let ollama = FakeOllama::start(OllamaState::default()).await;
    let checker = model_check::ModelChecker::new(model_check::CheckTiming::default());
    let req = model_check::CheckRequest {
        base_url: ollama.url(),
        models: vec!["nosuch".into()],
        pull: true,
    };
    assert_eq!(checker.observe("k", &req).reason, "Checking");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while checker.is_running("k") {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = checker.observe("k", &req);
    assert_eq!((r.ready, r.reason.as_str()), (Some(false), "PullFailed"));
    assert!(
        r.message
            .contains("pulling `nosuch` failed: pull model manifest: file does not exist"),
        "{}",
        r.message
    );
    assert_eq!(r.models[0].pull.as_deref(), Some("failed"));

    // An external Ollama without the model.
    let req = model_check::CheckRequest {
        base_url: ollama.url(),
        models: vec!["nosuch".into()],
        pull: false,
    };
    checker.observe("k", &req);
    while checker.is_running("k") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = checker.observe("k", &req);
    assert_eq!(r.reason, "ModelMissing");
    assert!(
        r.message.contains("run `ollama pull nosuch` there"),
        "{}",
        r.message
    );

    // Nobody listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let req = model_check::CheckRequest {
        base_url: url,
        models: vec!["a".into(), "b".into()],
        pull: false,
    };
    checker.observe("k", &req);
    while checker.is_running("k") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = checker.observe("k", &req);
    assert_eq!(r.reason, "OllamaUnreachable");
    assert!(r.message.contains("check spec.ollama.url"), "{}", r.message);
    assert_eq!(r.models.len(), 2);
}

#[tokio::test]
async fn secrets_map_to_the_bots_that_reference_them() {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event as WatchEvent;
    let mut writer: Writer<BotDeployment> = Writer::default();
    let mut other = full();
    other.metadata.name = Some("other".into());
    other.metadata.namespace = Some("elsewhere".into());
    for bd in [minimal(), other] {
        writer.apply_watcher_event(&WatchEvent::Apply(bd));
    }
    let store = writer.as_reader();
    let names = |ns: &str, secret: &str| -> Vec<String> {
        referencing(&store, ns, secret)
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(names(NS, "helper-discord"), ["helper"]);
    assert_eq!(names("elsewhere", "helper-discord"), ["other"]);
    assert_eq!(names("elsewhere", "remote"), ["other"]);
    assert!(names(NS, "remote").is_empty());
    assert!(names(NS, "unrelated").is_empty());
}

/// The status of `minimal()` once Ready, as a first operator run writes it.
async fn ready_status(ollama: &FakeOllama) -> Value {
    let (ctx, mut v) = fixtures::context(fixtures::options(Some(ollama)));
    let api = tokio::spawn(async move {
        minimal_children(&mut v, None, true).await;
        v.expect_list_pods("helper", vec![]).await;
        let status = v.expect_status("helper").await;
        (v, status)
    });
    run_reconcile(minimal(), &ctx).await.expect("reconcile");
    let (mut v, first) = api.await.unwrap();
    wait_model_check(&ctx, "bots/helper").await;
    let api = tokio::spawn(async move {
        minimal_children(&mut v, Some(ready_deployment()), false).await;
        v.expect_list_pods("helper", vec![running_pod(&[])]).await;
        v.expect_status("helper").await
    });
    run_reconcile(with_status(minimal(), &first), &ctx)
        .await
        .expect("reconcile");
    let ready = api.await.unwrap();
    assert_condition(&ready, "Ready", "True", "Ready");
    ready
}

fn ollama_with_llama() -> OllamaState {
    let state = OllamaState::default();
    state.models.lock().unwrap().insert(
        "llama3.2:latest".into(),
        vec!["completion".into(), "tools".into()],
    );
    state
}

#[tokio::test]
async fn a_restarted_operator_keeps_the_last_known_state_until_a_check_says_otherwise() {
    let ollama = FakeOllama::start(ollama_with_llama()).await;
    let ready = ready_status(&ollama).await;
    // A new operator process: it knows nothing of the bot but what its status says. Nothing
    // changed, so nothing is written (no ModelReady=Unknown, no Ready=False in between).
    let (ctx, mut v) = fixtures::context(fixtures::options(Some(&ollama)));
    let api = tokio::spawn(async move {
        minimal_children(&mut v, Some(ready_deployment()), true).await;
        v.expect_list_pods("helper", vec![running_pod(&[])]).await;
        v
    });
    // A status write would never be answered here: bound the wait.
    tokio::time::timeout(
        Duration::from_secs(20),
        run_reconcile(with_status(minimal(), &ready), &ctx),
    )
    .await
    .expect("the restarted operator wrote a status although nothing changed")
    .expect("reconcile");
    let v = api.await.unwrap();
    // The new run checks at once all the same.
    wait_model_check(&ctx, "bots/helper").await;
    assert_eq!(
        ollama.state.log.lock().unwrap().len(),
        2,
        "one check per run"
    );
    drop(ctx);
    v.expect_done().await;
}

#[tokio::test]
async fn a_change_is_written_even_when_the_cached_object_is_stale() {
    let ollama = FakeOllama::start(ollama_with_llama()).await;
    let ready = ready_status(&ollama).await;
    let (ctx, mut v) = fixtures::context(fixtures::options(Some(&ollama)));
    // The pod restarts: Ready=False is written.
    let api = tokio::spawn(async move {
        minimal_children(&mut v, None, true).await;
        v.expect_list_pods("helper", vec![]).await;
        let status = v.expect_status("helper").await;
        (v, status)
    });
    run_reconcile(with_status(minimal(), &ready), &ctx)
        .await
        .expect("reconcile");
    let (mut v, not_ready) = api.await.unwrap();
    assert_condition(&not_ready, "Ready", "False", "DeploymentNotReady");
    wait_model_check(&ctx, "bots/helper").await;
    // It is ready again, but the watch cache has not seen the Ready=False write yet: the
    // object still holds the old Ready status. The API server has Ready=False, so the operator
    // must write Ready=True now rather than wait for the next requeue.
    let api = tokio::spawn(async move {
        minimal_children(&mut v, Some(ready_deployment()), false).await;
        v.expect_list_pods("helper", vec![running_pod(&[])]).await;
        let status = v.expect_status("helper").await;
        (v, status)
    });
    run_reconcile(with_status(minimal(), &ready), &ctx)
        .await
        .expect("reconcile");
    let (v, again) = api.await.unwrap();
    assert_condition(&again, "Ready", "True", "Ready");
    drop(ctx);
    v.expect_done().await;
}

#[test]
fn mcp_server_status_comes_from_the_bots_report() {
    use ollama_mcp_bot::status::{McpServerReport, ServerStateName};

    use super::validate::{EndpointKind, McpEndpoint};
    use crate::crd::McpServerStatus;

    let endpoint = McpEndpoint {
        name: "memory".into(),
        kind: EndpointKind::Bridged {
            port: 8100,
            health_port: 9100,
        },
        url: "http://127.0.0.1:8100/mcp".into(),
    };
    let pod: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(running_pod(&["mcp-memory"])).unwrap();
    let pods = [pod];
    let report = |state, error: Option<&str>, tools: &[&str]| McpServerReport {
        name: "memory".into(),
        transport: "stdio".into(),
        state,
        last_error: error.map(str::to_string),
        tools: tools.iter().map(|t| t.to_string()).collect(),
    };
    let previous = McpServerStatus {
        name: "memory".into(),
        tools: vec!["read_graph".into()],
        ..Default::default()
    };

    let up = report(
        ServerStateName::Ready,
        None,
        &["read_graph", "search_nodes"],
    );
    let s = status::server_status(&endpoint, &pods, Some(&up), Some(&previous));
    assert!(s.ready && s.message.is_none(), "{s:?}");
    assert_eq!(s.tools, ["read_graph", "search_nodes"]);

    let failed = report(ServerStateName::Failed, Some("npx: not found"), &[]);
    let s = status::server_status(&endpoint, &pods, Some(&failed), Some(&previous));
    assert!(!s.ready && s.tools.is_empty(), "{s:?}");
    assert_eq!(
        s.message.as_deref(),
        Some("the bot could not start it: npx: not found")
    );

    // No report (the pod is not Ready, or the read failed): the last known tools stay.
    let s = status::server_status(&endpoint, &pods, None, Some(&previous));
    assert!(s.ready, "{s:?}");
    assert_eq!(s.tools, ["read_graph"]);

    // The sidecar itself is down: said first.
    let s = status::server_status(&endpoint, &[], Some(&up), Some(&previous));
    assert!(!s.ready);
    assert_eq!(
        s.message.as_deref(),
        Some("the sidecar container `mcp-memory` is not ready")
    );
}

#[tokio::test]
async fn a_managed_ollama_that_cannot_start_says_why() {
    let (ctx, mut v) = fixtures::context(fixtures::options(None));
    let mut bd = minimal();
    bd.spec.ollama = crate::crd::OllamaSpec {
        url: None,
        managed: Some(crate::crd::ManagedOllamaSpec {
            runtime_class_name: Some("nvidia".into()),
            ..Default::default()
        }),
    };
    // The API server refuses the pod (no pod exists; the Deployment says why), and a second
    // pod from an earlier attempt waits for its volume.
    let refused = json!({"status": {"observedGeneration": 1, "replicas": 0, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": "pods \"helper-ollama-7d9f-\" is forbidden: pod rejected: RuntimeClass \"nvidia\" not found"}]}});
    let pending = json!({
        "metadata": {"name": "helper-ollama-7d9f-xyz", "namespace": NS,
                     "labels": {"app.kubernetes.io/name": "ollama", "app.kubernetes.io/instance": "helper"}},
        "spec": {"containers": [{"name": "ollama", "image": "x"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."}]}
    });
    let api = tokio::spawn(async move {
        v.expect_secret_metadata("helper-discord", true).await;
        apply_ok(&mut v, &format!("{CORE}/configmaps/helper-config")).await;
        apply_ok(&mut v, &format!("{CORE}/serviceaccounts/helper")).await;
        absent(
            &mut v,
            &format!("{CORE}/persistentvolumeclaims/helper-data"),
        )
        .await;
        apply_ok(&mut v, &format!("{CORE}/services/helper-metrics")).await;
        absent(
            &mut v,
            &format!("{CORE}/persistentvolumeclaims/helper-ollama"),
        )
        .await;
        apply_ok(&mut v, &format!("{CORE}/services/helper-ollama")).await;
        let r = v
            .expect_apply(&format!("{APPS}/deployments/helper-ollama"))
            .await;
        r.respond_applied(Some(refused));
        apply_ok(&mut v, &format!("{APPS}/deployments/helper")).await;
        apply_ok(
            &mut v,
            "/apis/networking.k8s.io/v1/namespaces/bots/networkpolicies/helper",
        )
        .await;
        v.expect_discovery(false).await;
        v.expect_list_pods("helper", vec![pending]).await;
        let status = v.expect_status("helper").await;
        let event = v.expect_event().await;
        (v, status, event)
    });
    run_reconcile(bd, &ctx).await.expect("reconcile");
    let (v, status, event) = api.await.unwrap();
    assert_condition(&status, "Degraded", "True", "OllamaFailing");
    assert_condition(&status, "Ready", "False", "OllamaFailing");
    let message = condition(&status, "Degraded")["message"].as_str().unwrap();
    assert!(
        message.contains("the managed Ollama: its pod cannot be created: ")
            && message.contains("RuntimeClass \"nvidia\" not found")
            && message.contains("its pod cannot be scheduled")
            && message.contains("unbound immediate PersistentVolumeClaims"),
        "{message}"
    );
    assert_eq!(event["reason"], json!("OllamaFailing"));
    drop(ctx);
    v.expect_done().await;
}
