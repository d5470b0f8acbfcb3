//! An in-memory Kubernetes API server for the operator's tests and benchmark: an axum service
//! that `kube::Client::new` talks to directly (no socket), with get / list / watch / create /
//! replace / server-side apply / merge patch / delete, resourceVersions, metadata-only requests,
//! the status subresource, label selectors, and the BotDeployment CRD's CEL rules.
//!
//! It rejects what the real API server rejects and the operator could get wrong: an apply
//! without a field manager, a body whose kind or name does not match the URL, a stale
//! resourceVersion on replace, a duplicate create, an unknown resource, a BotDeployment that
//! breaks the CRD's CEL rules. There are no controllers: Deployments never get a status and
//! nothing is garbage-collected.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err,
    reason = "test support"
)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// (api group/version, plural, kind, namespaced)
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("v1", "configmaps", "ConfigMap", true),
    ("v1", "secrets", "Secret", true),
    ("v1", "services", "Service", true),
    ("v1", "serviceaccounts", "ServiceAccount", true),
    (
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    ),
    ("v1", "pods", "Pod", true),
    ("v1", "namespaces", "Namespace", false),
    ("apps/v1", "deployments", "Deployment", true),
    (
        "networking.k8s.io/v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    ("coordination.k8s.io/v1", "leases", "Lease", true),
    ("events.k8s.io/v1", "events", "Event", true),
    (
        "ollama-mcp.io/v1alpha1",
        "botdeployments",
        "BotDeployment",
        true,
    ),
    (
        "monitoring.coreos.com/v1",
        "servicemonitors",
        "ServiceMonitor",
        true,
    ),
];

type Key = (String, String, String, String); // gv, plural, namespace, name

/// Marks the requests of [`FakeApi::setup_client`].
const SETUP_HEADER: &str = "x-fake-api-setup";

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub metadata_only: bool,
}

#[derive(Clone, Debug)]
struct WatchEvent {
    rv: u64,
    gv: String,
    plural: String,
    namespace: String,
    type_: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uid: u64,
    history: Vec<WatchEvent>,
    /// Every request: method, path, whether it asked for metadata only.
    requests: Vec<Req>,
    /// What the API server's authorizer would check for each resource request: (API group,
    /// resource[/subresource], verb). An apply that creates is checked for `create` as well.
    authorizations: Vec<(String, String, String)>,
}

/// The fake API server; cheap to clone.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<WatchEvent>,
    /// Whether `monitoring.coreos.com/v1` is served.
    pub service_monitors: bool,
    /// Whether the BotDeployment CRD is installed (`ollama-mcp.io/v1alpha1` is served).
    crd_installed: Arc<std::sync::atomic::AtomicBool>,
    /// The CRD's CEL rules, compiled once, for BotDeployment writes (`None`: not checked).
    cel: Option<Arc<kube_cel::CompiledSchema>>,
}

/// Events kept for watches that resume from an older resourceVersion; older ones get 410 Gone,
/// as from the real server, and the client lists again.
const HISTORY: usize = 4_000;

impl FakeApi {
    pub fn new(service_monitors: bool) -> Self {
        let crd: Value = serde_yaml::from_str(&ollama_mcp_operator::crd_yaml()).unwrap();
        let (events, _) = broadcast::channel(4096);
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        Self {
            inner: Arc::default(),
            events,
            service_monitors,
            crd_installed: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            cel: Some(Arc::new(kube_cel::compile_schema(schema))),
        }
    }

    /// Installs or removes the BotDeployment CRD (objects are kept, as if it were re-installed).
    pub fn set_crd_installed(&self, installed: bool) {
        self.crd_installed
            .store(installed, std::sync::atomic::Ordering::SeqCst);
    }

    fn crd_missing(&self, gv: &str) -> bool {
        gv == "ollama-mcp.io/v1alpha1"
            && !self.crd_installed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every (API group, resource, verb) the requests so far needed, as RBAC rules name them.
    pub fn authorizations(&self) -> std::collections::BTreeSet<(String, String, String)> {
        self.inner
            .lock()
            .unwrap()
            .authorizations
            .iter()
            .cloned()
            .collect()
    }

    /// Stops checking the CRD's CEL rules (the benchmark measures the operator, not them).
    pub fn without_cel(mut self) -> Self {
        self.cel = None;
        self
    }

    fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .with_state(self.clone())
    }

    /// A kube client that talks to this server in-process.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    /// A client for a test's own set-up requests: served like any other, but left out of
    /// [`Self::authorizations`] (which describe what the operator needs).
    pub fn setup_client(&self) -> kube::Client {
        async fn mark(mut req: Request) -> Request {
            req.headers_mut()
                .insert(SETUP_HEADER, axum::http::HeaderValue::from_static("1"));
            req
        }
        let router = self.router().layer(axum::middleware::map_request(mark));
        kube::Client::new(router, "default")
    }

    /// Serves over HTTP on 127.0.0.1 (for a separate operator process); returns the address.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// An object by its path parts, as stored.
    pub fn get(&self, gv: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(&(gv.into(), plural.into(), ns.into(), name.into()))
            .cloned()
    }

    /// Every object of a kind in a namespace.
    pub fn list(&self, gv: &str, plural: &str, ns: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| g == gv && p == plural && n == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// How many objects the server holds.
    pub fn object_count(&self) -> usize {
        self.inner.lock().unwrap().objects.len()
    }

    /// Every change from now on: (plural, namespace, name, event type).
    pub fn subscribe(
        &self,
    ) -> impl futures::Stream<Item = (String, String, String, &'static str)> + Send + 'static {
        let rx = self.events.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let name = e.object["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        return Some(((e.plural, e.namespace, name, e.type_), rx));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    pub fn requests(&self) -> Vec<Req> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Stores an object as a client's create would (for test set-up).
    pub fn insert(&self, gv: &str, plural: &str, obj: Value) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        self.store(&mut inner, (gv.into(), plural.into(), ns, name), obj, true)
    }

    /// Writes `obj` under `key` with server fields, records and broadcasts the event.
    fn store(&self, inner: &mut Inner, key: Key, mut obj: Value, created: bool) -> Value {
        inner.rv += 1;
        let rv = inner.rv;
        if created {
            inner.uid += 1;
            obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", inner.uid));
            obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            if obj.get("spec").is_some() {
                obj["metadata"]["generation"] = json!(1);
            }
        }
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ev = WatchEvent {
            rv,
            gv: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            type_: if created { "ADDED" } else { "MODIFIED" },
            object: obj.clone(),
        };
        inner.objects.insert(key, obj.clone());
        push_history(inner, ev.clone());
        let _ = self.events.send(ev);
        obj
    }

    fn remove(&self, inner: &mut Inner, key: &Key) -> Option<Value> {
        let mut obj = inner.objects.remove(key)?;
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let ev = WatchEvent {
            rv: inner.rv,
            gv: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            type_: "DELETED",
            object: obj.clone(),
        };
        push_history(inner, ev.clone());
        let _ = self.events.send(ev);
        Some(obj)
    }
}

fn push_history(inner: &mut Inner, ev: WatchEvent) {
    if inner.history.len() >= HISTORY {
        inner.history.drain(..HISTORY / 2);
    }
    inner.history.push(ev);
}

struct Target {
    gv: String,
    plural: String,
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Result<Option<Target>, ()> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest.to_vec()),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest.to_vec()),
        _ => return Err(()),
    };
    if rest.is_empty() {
        return Ok(None); // discovery of a group version
    }
    let (namespace, rest) = match rest.as_slice() {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail.to_vec()),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(()),
    };
    let (_, _, kind, _) = RESOURCES
        .iter()
        .find(|(g, p, _, _)| *g == gv && *p == plural)
        .ok_or(())?;
    Ok(Some(Target {
        gv,
        plural: plural.to_string(),
        kind: kind.to_string(),
        namespace,
        name,
        subresource,
    }))
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}

fn json_response(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn query(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("%2C", ",")
                    .replace("%3D", "=")
                    .replace("%2F", "/")
                    .replace("%21", "!"),
            )
        })
        .collect()
}

fn matches_labels(obj: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => obj["metadata"]["labels"][k].as_str() == Some(v),
        None => obj["metadata"]["labels"].get(term).is_some(),
    })
}

fn metadata_only(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
}

fn partial(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

async fn handle(State(api): State<FakeApi>, req: Request) -> Result<Response, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let meta_only = metadata_only(&parts.headers);
    api.inner.lock().unwrap().requests.push(Req {
        method: parts.method.to_string(),
        path: path.clone(),
        metadata_only: meta_only,
    });
    let q = query(&parts.uri);
    let target = match parse_path(&path) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(discovery(&api, &path)),
        Err(()) => {
            return Ok(status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({path})"),
            ));
        }
    };
    if (target.gv == "monitoring.coreos.com/v1" && !api.service_monitors)
        || api.crd_missing(&target.gv)
    {
        return Ok(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return Ok(status(
                    400,
                    "BadRequest",
                    &format!("the body is not JSON: {e}"),
                ));
            }
        }
    };
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !parts.headers.contains_key(SETUP_HEADER) {
        let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
        let verb = match (&parts.method, &target.name) {
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) if watching => "watch",
            (&Method::GET, None) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "unknown",
        };
        let group = target
            .gv
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.plural),
            None => target.plural.clone(),
        };
        let mut inner = api.inner.lock().unwrap();
        // Apply to an absent object creates it: the API server checks `create` too.
        let creates = verb == "patch"
            && content_type.starts_with("application/apply-patch")
            && target.subresource.is_none()
            && target
                .name
                .as_ref()
                .is_some_and(|n| !inner.objects.contains_key(&key(&target, n)));
        inner
            .authorizations
            .push((group.clone(), resource.clone(), verb.to_string()));
        if creates {
            inner
                .authorizations
                .push((group, resource, "create".to_string()));
        }
    }
    Ok(match (parts.method, target.name.clone()) {
        (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(&api, &target, &q, meta_only)
        }
        (Method::GET, None) => list(&api, &target, &q, meta_only),
        (Method::GET, Some(name)) => {
            let key = key(&target, &name);
            match api.inner.lock().unwrap().objects.get(&key) {
                Some(o) if meta_only => json_response(200, &partial(o)),
                Some(o) => json_response(200, o),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", target.plural),
                ),
            }
        }
        (Method::POST, None) => create(&api, &target, body),
        (Method::PUT, Some(name)) => replace(&api, &target, &name, body),
        (Method::PATCH, Some(name)) if content_type.starts_with("application/apply-patch") => {
            apply(&api, &target, &name, body, &q)
        }
        (Method::PATCH, Some(name))
            if content_type.starts_with("application/merge-patch+json")
                || content_type.starts_with("application/strategic-merge-patch+json") =>
        {
            merge(&api, &target, &name, body)
        }
        (Method::PATCH, _) => status(
            415,
            "UnsupportedMediaType",
            &format!("the body of the request was in an unknown format ({content_type})"),
        ),
        (Method::DELETE, Some(name)) => delete(&api, &target, &name, &body),
        (m, _) => status(
            405,
            "MethodNotAllowed",
            &format!("{m} is not supported on {path}"),
        ),
    })
}

fn key(t: &Target, name: &str) -> Key {
    (
        t.gv.clone(),
        t.plural.clone(),
        t.namespace.clone().unwrap_or_default(),
        name.to_string(),
    )
}

fn discovery(api: &FakeApi, path: &str) -> Response {
    let gv = path
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/")
        .trim_matches('/');
    let gv = if path.starts_with("/api/") {
        "v1".to_string()
    } else {
        gv.to_string()
    };
    if (gv == "monitoring.coreos.com/v1" && !api.service_monitors) || api.crd_missing(&gv) {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|(g, ..)| *g == gv)
        .map(|(_, plural, kind, namespaced)| json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                                                     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}))
        .collect();
    if resources.is_empty() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    json_response(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Checks that a body names the resource of its URL.
fn check_body(t: &Target, name: Option<&str>, body: &Value) -> Result<(), Response> {
    if body["kind"].as_str() != Some(t.kind.as_str())
        || body["apiVersion"].as_str() != Some(t.gv.as_str())
    {
        return Err(status(
            400,
            "BadRequest",
            &format!(
                "the body's apiVersion/kind {}/{} does not match the URL ({} {})",
                body["apiVersion"], body["kind"], t.gv, t.kind
            ),
        ));
    }
    if let Some(name) = name
        && body["metadata"]["name"].as_str().is_some_and(|n| n != name)
    {
        return Err(status(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        ));
    }
    if let (Some(ns), Some(body_ns)) = (&t.namespace, body["metadata"]["namespace"].as_str())
        && ns != body_ns
    {
        return Err(status(
            400,
            "BadRequest",
            "the namespace of the object does not match the namespace on the URL",
        ));
    }
    Ok(())
}

fn check_cel(api: &FakeApi, t: &Target, obj: &Value) -> Result<(), Response> {
    if t.plural != "botdeployments" {
        return Ok(());
    }
    let Some(cel) = &api.cel else { return Ok(()) };
    match kube_cel::Validator::new().validate_compiled(cel, obj, None) {
        Ok(()) => Ok(()),
        Err(errors) => {
            let msg = errors
                .into_vec()
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Err(status(
                422,
                "Invalid",
                &format!(
                    "BotDeployment.ollama-mcp.io \"{}\" is invalid: {msg}",
                    obj["metadata"]["name"].as_str().unwrap_or_default()
                ),
            ))
        }
    }
}

fn list(api: &FakeApi, t: &Target, q: &BTreeMap<String, String>, meta_only: bool) -> Response {
    let inner = api.inner.lock().unwrap();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((g, p, ns, _), _)| {
            *g == t.gv && *p == t.plural && t.namespace.as_ref().is_none_or(|n| n == ns)
        })
        .filter(|(_, o)| matches_labels(o, q.get("labelSelector")))
        .map(|(_, o)| if meta_only { partial(o) } else { o.clone() })
        .collect();
    let (api_version, kind) = if meta_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (t.gv.clone(), format!("{}List", t.kind))
    };
    json_response(
        200,
        &json!({"apiVersion": api_version, "kind": kind,
                               "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items}),
    )
}

fn watch(api: &FakeApi, t: &Target, q: &BTreeMap<String, String>, meta_only: bool) -> Response {
    use futures::StreamExt;
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    // Subscribe and read the history under the lock (events are sent under it too), so that no
    // event falls between the two and none comes twice.
    let (rx, backlog, last) = {
        let inner = api.inner.lock().unwrap();
        if from > 0 && inner.history.first().is_some_and(|e| e.rv > from + 1) {
            return status(
                410,
                "Expired",
                &format!(
                    "too old resource version: {from} ({})",
                    inner.history[0].rv - 1
                ),
            );
        }
        let rx = api.events.subscribe();
        let backlog: Vec<WatchEvent> = inner
            .history
            .iter()
            .filter(|e| e.rv > from)
            .cloned()
            .collect();
        (rx, backlog, inner.rv.max(from))
    };
    let (gv, plural, ns, selector) = (
        t.gv.clone(),
        t.plural.clone(),
        t.namespace.clone(),
        q.get("labelSelector").cloned(),
    );
    let wanted = move |e: &WatchEvent| {
        e.gv == gv
            && e.plural == plural
            && ns.as_ref().is_none_or(|n| *n == e.namespace)
            && matches_labels(&e.object, selector.as_ref())
    };
    let line = move |e: &WatchEvent| {
        let object = if meta_only {
            partial(&e.object)
        } else {
            e.object.clone()
        };
        let mut bytes = serde_json::to_vec(&json!({"type": e.type_, "object": object})).unwrap();
        bytes.push(b'\n');
        Ok::<_, Infallible>(bytes::Bytes::from(bytes))
    };
    let past = {
        let wanted = wanted.clone();
        futures::stream::iter(
            backlog
                .into_iter()
                .filter(move |e| wanted(e))
                .map(move |e| line(&e)),
        )
    };
    let live = futures::stream::unfold((rx, last), move |(mut rx, mut last)| {
        let wanted = wanted.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) if e.rv <= last => {}
                    Ok(e) => {
                        last = e.rv;
                        if wanted(&e) {
                            return Some((line(&e), (rx, last)));
                        }
                    }
                    // Fell behind: end the watch; the client resumes from its last event.
                    Err(_) => return None,
                }
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(past.chain(live)))
        .unwrap()
}

fn create(api: &FakeApi, t: &Target, body: Value) -> Response {
    if let Err(r) = check_body(t, None, &body) {
        return r;
    }
    let Some(name) = body["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            422,
            "Invalid",
            "metadata.name: Required value: name is required",
        );
    };
    let mut body = body;
    if let Some(ns) = &t.namespace {
        body["metadata"]["namespace"] = json!(ns);
    }
    if let Err(r) = check_cel(api, t, &body) {
        return r;
    }
    let mut inner = api.inner.lock().unwrap();
    let key = key(t, &name);
    if inner.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", t.plural),
        );
    }
    let obj = api.store(&mut inner, key, body, true);
    json_response(201, &obj)
}

fn replace(api: &FakeApi, t: &Target, name: &str, body: Value) -> Response {
    if let Err(r) = check_body(t, Some(name), &body) {
        return r;
    }
    let mut inner = api.inner.lock().unwrap();
    let key = key(t, name);
    let Some(current) = inner.objects.get(&key).cloned() else {
        return status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", t.plural),
        );
    };
    if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                t.plural
            ),
        );
    }
    let mut next = body;
    for f in ["uid", "creationTimestamp", "generation"] {
        next["metadata"][f] = current["metadata"][f].clone();
    }
    if t.subresource.is_none() && current.get("status").is_some() && t.plural == "botdeployments" {
        next["status"] = current["status"].clone();
    }
    if let Err(r) = check_cel(api, t, &next) {
        return r;
    }
    bump_generation(&current, &mut next);
    let obj = api.store(&mut inner, key, next, false);
    json_response(200, &obj)
}

fn bump_generation(current: &Value, next: &mut Value) {
    if next.get("spec").is_some() && current.get("spec") != next.get("spec") {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(0);
        next["metadata"]["generation"] = json!(g + 1);
    }
}

fn apply(
    api: &FakeApi,
    t: &Target,
    name: &str,
    body: Value,
    q: &BTreeMap<String, String>,
) -> Response {
    if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return status(
            400,
            "BadRequest",
            "PATCH: fieldManager is required for apply requests",
        );
    }
    if let Err(r) = check_body(t, Some(name), &body) {
        return r;
    }
    let mut inner = api.inner.lock().unwrap();
    let key = key(t, name);
    let current = inner.objects.get(&key).cloned();
    let mut next = match (&current, t.subresource.as_deref()) {
        (None, Some(_)) => {
            return status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", t.plural),
            );
        }
        (None, None) => {
            let mut b = body;
            if let Some(ns) = &t.namespace {
                b["metadata"]["namespace"] = json!(ns);
            }
            b
        }
        (Some(cur), Some("status")) => {
            let mut n = cur.clone();
            n["status"] = body["status"].clone();
            n
        }
        (Some(cur), _) => {
            // The applied fields win; server-set metadata and the status stay.
            let mut n = body;
            for f in ["uid", "creationTimestamp", "generation", "namespace"] {
                n["metadata"][f] = cur["metadata"][f].clone();
            }
            if let Some(s) = cur.get("status") {
                n["status"] = s.clone();
            }
            n
        }
    };
    if let Err(r) = check_cel(api, t, &next) {
        return r;
    }
    if let Some(cur) = &current {
        bump_generation(cur, &mut next);
        // An apply that changes nothing writes nothing (no new resourceVersion, no event).
        let mut same = next.clone();
        same["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        if &same == cur {
            return json_response(200, cur);
        }
    }
    let created = current.is_none();
    let obj = api.store(&mut inner, key, next, created);
    json_response(if created { 201 } else { 200 }, &obj)
}

fn merge(api: &FakeApi, t: &Target, name: &str, body: Value) -> Response {
    let mut inner = api.inner.lock().unwrap();
    let key = key(t, name);
    let Some(current) = inner.objects.get(&key).cloned() else {
        return status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", t.plural),
        );
    };
    let mut next = current.clone();
    merge_patch(&mut next, &body);
    bump_generation(&current, &mut next);
    let obj = api.store(&mut inner, key, next, false);
    json_response(200, &obj)
}

fn delete(api: &FakeApi, t: &Target, name: &str, body: &Value) -> Response {
    let mut inner = api.inner.lock().unwrap();
    let key = key(t, name);
    let Some(current) = inner.objects.get(&key) else {
        return status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", t.plural),
        );
    };
    if let Some(uid) = body["preconditions"]["uid"].as_str()
        && Some(uid) != current["metadata"]["uid"].as_str()
    {
        return status(
            409,
            "Conflict",
            "Precondition failed: UID in precondition does not match the UID in the record",
        );
    }
    let obj = api.remove(&mut inner, &key).unwrap();
    json_response(200, &obj)
}
