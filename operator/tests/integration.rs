//! The operator against a real API server (`KUBECONFIG`). Ignored by default; run with
//!
//!   cargo test -p ollama-mcp-operator --test integration -- --ignored --test-threads=1
//!
//! They need only a kube-apiserver (kind, or envtest's etcd + kube-apiserver 1.32): no pod ever
//! runs, so nothing waits for readiness, and without a controller-manager nothing is
//! garbage-collected (deletion is checked through owner references). See docs/OPERATOR.md.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use ollama_mcp_operator::controller::{self, Context, ControllerOptions};
use ollama_mcp_operator::crd::BotDeployment;
use ollama_mcp_operator::metrics::Metrics;
use serde_json::{Value, json};

const BOT_IMAGE: &str = "ghcr.io/ollama-mcp/bot:0.1.0";

async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .expect("a cluster from $KUBECONFIG")
}

/// Installs (or updates) the CRD and waits until it is served.
async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "botdeployments.ollama-mcp.io",
        &PatchParams::apply("ollama-mcp-operator-tests").force(),
        &Patch::Apply(BotDeployment::crd()),
    )
    .await
    .expect("the API server accepts the CRD");
    eventually("the CRD is established", || async {
        crds.get("botdeployments.ollama-mcp.io")
            .await
            .ok()
            .and_then(|c| c.status)
            .is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    })
    .await;
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh namespace with the Discord token Secret, and the controller running in it.
struct Env {
    client: Client,
    ns: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    async fn start(prefix: &str) -> Self {
        let client = client().await;
        install_crd(&client).await;
        let ns = format!("{prefix}-{}", std::process::id());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let _ = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for name in ["helper-discord", "assistant-discord"] {
            let s: Secret = serde_json::from_value(
                json!({"metadata": {"name": name}, "stringData": {"token": "not-a-real-token"}}),
            )
            .unwrap();
            let _ = secrets.create(&PostParams::default(), &s).await;
        }
        // The test machine cannot resolve in-cluster Service names: check models against a
        // closed local port instead (ModelReady reports it unreachable, which is expected here).
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nowhere = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let settings = ControllerOptions {
            bot_image: Some(BOT_IMAGE.into()),
            ollama_url_override: Some(nowhere),
            ..Default::default()
        };
        let ctx = Arc::new(Context::new(
            client.clone(),
            settings,
            Arc::new(Metrics::default()),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(controller::run(ctx, Some(ns.clone()), async move {
            let _ = stopped.await;
        }));
        Self {
            client,
            ns,
            stop: Some(stop),
            controller: Some(controller),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        let bd = self.api::<BotDeployment>().get(name).await.ok()?;
        bd.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason, c.message))
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(c) = self.controller.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), c).await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
    }
}

fn example(file: &str, ns: &str) -> BotDeployment {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/examples")
        .join(file);
    let text = std::fs::read_to_string(path).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == json!("BotDeployment") {
            let mut bd: BotDeployment = serde_json::from_value(v).unwrap();
            bd.metadata.namespace = Some(ns.into());
            return bd;
        }
    }
    panic!("{file} has no BotDeployment");
}

fn sidecars(d: &Deployment) -> Vec<String> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server"]
async fn crd_installs_and_the_examples_are_accepted() {
    let env = Env::start("omcp-it-examples").await;
    let bds = env.api::<BotDeployment>();
    for file in ["minimal.yaml", "full.yaml", "remote-mcp.yaml"] {
        let bd = example(file, &env.ns);
        bds.create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &bd,
        )
        .await
        .unwrap_or_else(|e| panic!("the API server rejects {file}: {e}"));
    }
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server"]
async fn create_update_remove_a_sidecar_and_delete() {
    let env = Env::start("omcp-it-life").await;
    let bds = env.api::<BotDeployment>();
    // The full example: every child kind, every preset; the API server validates each object.
    let bd = example("full.yaml", &env.ns);
    let created = bds.create(&PostParams::default(), &bd).await.unwrap();
    let deployments = env.api::<Deployment>();
    eventually("the bot Deployment has every sidecar", || async {
        deployments.get("assistant").await.ok().is_some_and(|d| {
            sidecars(&d)
                == [
                    "bridge-copy",
                    "mcp-memory",
                    "mcp-fetch",
                    "mcp-browser",
                    "mcp-thinking",
                ]
        })
    })
    .await;
    assert!(env.api::<ConfigMap>().get("assistant-config").await.is_ok());
    assert!(env.api::<ServiceAccount>().get("assistant").await.is_ok());
    assert!(env.api::<Service>().get("assistant-metrics").await.is_ok());
    assert!(env.api::<NetworkPolicy>().get("assistant").await.is_ok());
    assert!(
        env.api::<PersistentVolumeClaim>()
            .get("assistant-data")
            .await
            .is_ok()
    );
    assert!(deployments.get("assistant-ollama").await.is_ok());
    assert!(env.api::<Service>().get("assistant-ollama").await.is_ok());
    assert!(
        env.api::<PersistentVolumeClaim>()
            .get("assistant-ollama")
            .await
            .is_ok()
    );
    let d = deployments.get("assistant").await.unwrap();
    let hash = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()["ollama-mcp.io/config-hash"]
        .clone();
    eventually("status is written", || async {
        env.condition("assistant", "Ready").await.is_some()
    })
    .await;

    // Update: a new system prompt rolls the pod (new config hash); removing a server removes
    // its sidecar.
    let patch = json!({"spec": {"model": {"systemPrompt": "Be brief."},
                                "mcpServers": [{"name": "memory", "preset": "memory"}, {"name": "fetch", "preset": "fetch"}]}});
    bds.patch("assistant", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(
        "the removed sidecars are gone and the hash changed",
        || async {
            deployments.get("assistant").await.ok().is_some_and(|d| {
                let new_hash = d
                    .spec
                    .as_ref()
                    .unwrap()
                    .template
                    .metadata
                    .as_ref()
                    .unwrap()
                    .annotations
                    .as_ref()
                    .unwrap()["ollama-mcp.io/config-hash"]
                    .clone();
                sidecars(&d) == ["bridge-copy", "mcp-memory", "mcp-fetch"] && new_hash != hash
            })
        },
    )
    .await;

    // Switch the managed Ollama off: its children go (the operator deletes them itself).
    let patch = json!({"spec": {"ollama": {"managed": null, "url": "http://ollama.ai.svc:11434"}}});
    bds.patch("assistant", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("the managed Ollama is gone", || async {
        deployments
            .get_opt("assistant-ollama")
            .await
            .unwrap()
            .is_none()
            && env
                .api::<Service>()
                .get_opt("assistant-ollama")
                .await
                .unwrap()
                .is_none()
    })
    .await;

    // Delete: every child is controlled by the BotDeployment, so garbage collection removes it.
    let uid = created.uid().unwrap();
    bds.delete("assistant", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the BotDeployment is gone", || async {
        bds.get_opt("assistant").await.unwrap().is_none()
    })
    .await;
    let d = deployments.get_opt("assistant").await.unwrap();
    if let Some(d) = d {
        // A bare API server has no garbage collector; the owner reference is what makes a real
        // cluster delete the child.
        let owner = d
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .cloned()
            .unwrap();
        assert_eq!(owner.uid, uid);
    }
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server"]
async fn invalid_specs_are_refused_or_reported() {
    let env = Env::start("omcp-it-invalid").await;
    let bds = env.api::<BotDeployment>();
    // The schema's CEL rule refuses both url and managed.
    let mut bd = example("minimal.yaml", &env.ns);
    bd.spec.ollama.managed = Some(Default::default());
    let err = bds
        .create(&PostParams::default(), &bd)
        .await
        .expect_err("url and managed together");
    assert!(
        err.to_string().contains("set exactly one of ollama.url"),
        "{err}"
    );
    // Duplicate server names.
    let mut bd = example("minimal.yaml", &env.ns);
    bd.spec.mcp_servers.push(bd.spec.mcp_servers[0].clone());
    let err = bds
        .create(&PostParams::default(), &bd)
        .await
        .expect_err("duplicate names");
    assert!(
        err.to_string().contains("mcpServers names must be unique"),
        "{err}"
    );

    // What only the operator can tell: a Secret that does not exist.
    let mut bd = example("minimal.yaml", &env.ns);
    bd.spec.discord.token_secret_ref.name = "missing".into();
    bds.create(&PostParams::default(), &bd).await.unwrap();
    eventually("Degraded says which Secret to create", || async {
        env.condition("helper", "Degraded")
            .await
            .is_some_and(|(s, r, m)| {
                s == "True"
                    && r == "InvalidSpec"
                    && m.contains("kubectl create secret generic missing")
            })
    })
    .await;
    assert!(
        env.api::<Deployment>()
            .get_opt("helper")
            .await
            .unwrap()
            .is_none(),
        "nothing is applied for an invalid spec"
    );
    // Fixing it (creating the Secret) brings the bot up without touching the spec.
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "missing"}, "stringData": {"token": "x"}}),
    )
    .unwrap();
    env.api::<Secret>()
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    eventually("the Deployment appears", || async {
        env.api::<Deployment>()
            .get_opt("helper")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    env.stop().await;
}
