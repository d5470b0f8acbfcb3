//! Test fixtures: BotDeployment builders, a mocked API server that asserts each request
//! (kube-rs controller-rs' `ApiServerVerifier` pattern), and an Ollama double.
//! Over ~450 lines: the fixtures, the mocked API server and the Ollama double every unit test
//! shares.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use kube::client::Body;
use kube::{Client, Resource};
use serde_json::{Value, json};

use crate::controller::model_check::CheckTiming;
use crate::controller::validate::SecretVersions;
use crate::controller::{Context, ControllerOptions};
use crate::crd::*;
use crate::metrics::Metrics;

pub const NS: &str = "bots";
pub const UID: &str = "6f1e0f4c-9a57-4b3c-8d3e-1d2c3b4a5f60";
pub const BOT_IMAGE: &str = "ghcr.io/ollama-mcp/bot:0.1.0";
pub const MANAGER: &str = "ollama-mcp-operator.ollama-mcp.io";

/// The BotDeployment of an example manifest, as the API server would give it (a uid, a
/// generation, a resourceVersion).
fn example(text: &str) -> BotDeployment {
    let doc = serde_yaml::Deserializer::from_str(text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == json!("BotDeployment"))
        .expect("the example holds a BotDeployment");
    let mut bd: BotDeployment = serde_json::from_value(doc).unwrap();
    bd.meta_mut().uid = Some(UID.into());
    bd.meta_mut().generation = Some(1);
    bd.meta_mut().resource_version = Some("100".into());
    bd
}

/// A minimal valid BotDeployment `helper` in namespace `bots` (external Ollama): the minimal
/// example without its one MCP server, so that each test adds the servers it is about.
pub fn minimal() -> BotDeployment {
    let mut bd = example(include_str!("../../manifests/examples/minimal.yaml"));
    bd.spec.mcp_servers.clear();
    bd
}

pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

/// Every field of the spec set: `manifests/examples/every-field.yaml` (a server of every kind:
/// each preset, a custom stdio image, a custom HTTP image, a remote).
pub fn full() -> BotDeployment {
    example(include_str!("../../manifests/examples/every-field.yaml"))
}

/// Every Secret the spec references exists, at resourceVersion "7".
pub fn all_secrets(bd: &BotDeployment) -> SecretVersions {
    crate::controller::validate::referenced_secrets(&bd.spec)
        .into_iter()
        .map(|n| (n, Some("7".to_string())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The mocked API server.

pub type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Receives the operator's requests one by one and asserts each (method, path, query, body).
pub struct ApiServerVerifier(pub ApiServerHandle);

/// One received request.
pub struct Received {
    pub method: http::Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Value,
    send: tower_test::mock::SendResponse<Response<Body>>,
}

impl Received {
    pub fn respond(self, status: StatusCode, body: &Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap(),
        );
    }

    /// An API `Status` error (what the real server sends for 404, 409, 422...).
    pub fn respond_status(self, code: u16, reason: &str, message: &str) {
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code});
        self.respond(StatusCode::from_u16(code).unwrap(), &body);
    }

    pub fn not_found(self) {
        let what = self.path.rsplit('/').next().unwrap_or_default().to_string();
        self.respond_status(404, "NotFound", &format!("\"{what}\" not found"));
    }

    /// Answers an SSA patch the way the API server does: the applied object, with server fields.
    pub fn respond_applied(self, extra: Option<Value>) {
        let mut obj = self.body.clone();
        obj["metadata"]["uid"] = json!("child-uid");
        obj["metadata"]["resourceVersion"] = json!("1");
        obj["metadata"]["generation"] = json!(1);
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        if let Some(extra) = extra {
            merge(&mut obj, &extra);
        }
        self.respond(StatusCode::OK, &obj);
    }
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

impl ApiServerVerifier {
    pub async fn next(&mut self) -> Received {
        let (req, send) = tokio::time::timeout(Duration::from_secs(30), self.0.next_request())
            .await
            .expect("the operator sent no request within 30 s")
            .expect("the operator's client is gone; expected another request");
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let query = parts.uri.query().map(url_pairs).unwrap_or_default();
        Received {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            content_type: parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string()),
            body,
            send,
        }
    }

    /// Expects a GET of `path`; returns the request to answer.
    pub async fn expect_get(&mut self, path: &str) -> Received {
        let r = self.next().await;
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", path),
            "unexpected request"
        );
        r
    }

    /// Expects a metadata-only GET of a Secret (the operator must never ask for the data).
    pub async fn expect_secret_metadata(&mut self, name: &str, exists: bool) {
        let path = format!("/api/v1/namespaces/{NS}/secrets/{name}");
        let r = self.next().await;
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", path.as_str()));
        if exists {
            r.respond(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": {"name": name, "namespace": NS, "resourceVersion": "7", "uid": "secret-uid"}}),
            );
        } else {
            r.not_found();
        }
    }

    /// Expects a server-side apply of `path` by the operator's field manager with force, and
    /// checks the body names the object; returns the request to answer.
    pub async fn expect_apply(&mut self, path: &str) -> Received {
        let r = self.next().await;
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("PATCH", path),
            "unexpected request"
        );
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{path} is not an apply patch"
        );
        assert_eq!(
            r.query.get("fieldManager").map(String::as_str),
            Some(MANAGER),
            "{path}: field manager"
        );
        assert_eq!(
            r.query.get("force").map(String::as_str),
            Some("true"),
            "{path}: force"
        );
        let name = path.rsplit('/').next().unwrap();
        let name = if path.ends_with("/status") {
            path.rsplit('/').nth(1).unwrap()
        } else {
            name
        };
        assert_eq!(
            r.body["metadata"]["name"].as_str().or(Some(name)),
            Some(name),
            "{path}: body names another object"
        );
        assert!(
            r.body["apiVersion"].is_string() && r.body["kind"].is_string(),
            "{path}: apply body needs apiVersion and kind"
        );
        if !path.ends_with("/status") {
            let owner = &r.body["metadata"]["ownerReferences"][0];
            assert_eq!(
                owner["uid"],
                json!(UID),
                "{path}: controller owner reference"
            );
            assert_eq!(
                owner["controller"],
                json!(true),
                "{path}: controller owner reference"
            );
            assert_eq!(owner["kind"], json!("BotDeployment"));
            let labels = r.body["metadata"]["labels"].as_object().expect("labels");
            for l in [
                "name",
                "instance",
                "component",
                "part-of",
                "managed-by",
                "version",
            ] {
                assert!(
                    labels.contains_key(&format!("app.kubernetes.io/{l}")),
                    "{path}: label {l} missing"
                );
            }
        }
        r
    }

    /// Expects the status patch; answers it and returns the status written.
    pub async fn expect_status(&mut self, name: &str) -> Value {
        let r = self
            .expect_apply(&format!(
                "/apis/ollama-mcp.io/v1alpha1/namespaces/{NS}/botdeployments/{name}/status"
            ))
            .await;
        assert_eq!(r.body["kind"], json!("BotDeployment"));
        let status = r.body["status"].clone();
        // The API server answers with the whole object.
        let mut obj = serde_json::to_value(minimal()).unwrap();
        obj["metadata"]["name"] = json!(name);
        obj["status"] = status.clone();
        r.respond(StatusCode::OK, &obj);
        status
    }

    /// Expects a Kubernetes Event about the BotDeployment; returns it.
    pub async fn expect_event(&mut self) -> Value {
        let r = self.next().await;
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            (
                "POST",
                format!("/apis/events.k8s.io/v1/namespaces/{NS}/events").as_str()
            )
        );
        let ev = r.body.clone();
        assert_eq!(ev["regarding"]["kind"], json!("BotDeployment"));
        r.respond(StatusCode::CREATED, &ev);
        ev
    }

    /// Expects the discovery call for ServiceMonitors.
    pub async fn expect_discovery(&mut self, served: bool) {
        let r = self.expect_get("/apis/monitoring.coreos.com/v1").await;
        if served {
            r.respond(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
                        "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true,
                                       "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]}),
            );
        } else {
            r.respond_status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    }

    /// Expects the list of the bot's pods; answers with `pods`.
    pub async fn expect_list_pods(&mut self, name: &str, pods: Vec<Value>) {
        let r = self
            .expect_get(&format!("/api/v1/namespaces/{NS}/pods"))
            .await;
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some(
                format!("app.kubernetes.io/instance={name},app.kubernetes.io/managed-by=ollama-mcp-operator")
                    .as_str()
            )
        );
        r.respond(StatusCode::OK, &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"}, "items": pods}));
    }

    /// After the reconcile returned and the client is dropped: no request may be left.
    pub async fn expect_done(mut self) {
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_secs(5), self.0.next_request()).await
        {
            panic!("unexpected extra request {} {}", req.method(), req.uri());
        }
    }
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Context over the mocked API server.
pub fn context(options: ControllerOptions) -> (Arc<Context>, ApiServerVerifier) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(client, options, Arc::new(Metrics::default()));
    (Arc::new(ctx), ApiServerVerifier(handle))
}

pub fn options(ollama: Option<&FakeOllama>) -> ControllerOptions {
    ControllerOptions {
        bot_image: Some(BOT_IMAGE.into()),
        ollama_url_override: ollama.map(|o| o.url()),
        model_check: CheckTiming {
            retry_not_ready: Duration::from_secs(3600),
            recheck_ready: Duration::from_secs(3600),
        },
        instance: None,
        concurrency: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// An Ollama double: `/api/show` and `/api/pull` as Ollama answers them.

#[derive(Clone, Default)]
pub struct OllamaState {
    /// Models present, with their capabilities.
    pub models: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Models a pull can fetch, with the capabilities they will have.
    pub library: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Requests seen (`/api/show llama3.2`).
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct FakeOllama {
    pub addr: SocketAddr,
    pub state: OllamaState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOllama {
    pub async fn start(state: OllamaState) -> Self {
        use axum::routing::post;
        let app = axum::Router::new()
            .route("/api/show", post(show))
            .route("/api/pull", post(pull))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn canonical(model: &str) -> String {
    if model.contains(':') {
        model.to_string()
    } else {
        format!("{model}:latest")
    }
}

fn model_field(body: &Value) -> Result<String, (StatusCode, axum::Json<Value>)> {
    body.get("model")
        .or_else(|| body.get("name"))
        .and_then(Value::as_str)
        .map(canonical)
        .ok_or((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "model is required"})),
        ))
}

async fn show(
    axum::extract::State(s): axum::extract::State<OllamaState>,
    axum::Json(body): axum::Json<Value>,
) -> Result<axum::Json<Value>, (StatusCode, axum::Json<Value>)> {
    let model = model_field(&body)?;
    s.log.lock().unwrap().push(format!("/api/show {model}"));
    let caps = s.models.lock().unwrap().get(&model).cloned();
    match caps {
        Some(caps) => Ok(axum::Json(json!({
            "modelfile": "# Modelfile", "parameters": "", "template": "{{ .Prompt }}",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
            "model_info": {}, "capabilities": caps,
        }))),
        None => Err((
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"error": format!("model '{}' not found", body["model"].as_str().unwrap_or_default())}),
            ),
        )),
    }
}

async fn pull(
    axum::extract::State(s): axum::extract::State<OllamaState>,
    axum::Json(body): axum::Json<Value>,
) -> Result<Response<axum::body::Body>, (StatusCode, axum::Json<Value>)> {
    let model = model_field(&body)?;
    s.log.lock().unwrap().push(format!("/api/pull {model}"));
    let found = s.library.lock().unwrap().get(&model).cloned();
    let mut lines = vec![json!({"status": "pulling manifest"})];
    match found {
        Some(caps) => {
            lines.push(json!({"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a0746a1ec1a", "total": 2000, "completed": 0}));
            lines.push(json!({"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a0746a1ec1a", "total": 2000, "completed": 1000}));
            lines.push(json!({"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a0746a1ec1a", "total": 2000, "completed": 2000}));
            lines.push(json!({"status": "verifying sha256 digest"}));
            lines.push(json!({"status": "writing manifest"}));
            lines.push(json!({"status": "success"}));
            s.models.lock().unwrap().insert(model, caps);
        }
        None => lines.push(json!({"error": "pull model manifest: file does not exist"})),
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Ok(Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::from(body))
        .unwrap())
}

/// Waits (with a deadline) until the model check of `key` has finished.
pub async fn wait_model_check(ctx: &Context, key: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ctx.models.is_running(key) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the model check did not finish in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
