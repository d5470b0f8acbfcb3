//! The `ModelReady` check: every model the bot may use exists on its Ollama server and can call
//! tools. For a managed Ollama the operator pulls the models first (`POST /api/pull`, streamed,
//! progress in status); then `POST /api/show` gives each model's capabilities.
//!
//! Checks run in the background (a pull can take an hour): reconcile starts one, reads how far it
//! got, and requeues; it never waits on Ollama.
//! Over ~450 lines: the check, the pull and their progress share one state machine per bot;
//! split, the locking rules would be spread over files.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::crd::ModelStatus;

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub base_url: String,
    pub models: Vec<String>,
    /// Pull missing models first (managed Ollama).
    pub pull: bool,
}

/// The result as status reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// `None` until the first check has finished.
    pub ready: Option<bool>,
    /// A check (or pull) is running now.
    pub checking: bool,
    pub reason: String,
    pub message: String,
    pub models: Vec<ModelStatus>,
}

/// How often checks repeat.
#[derive(Debug, Clone, Copy)]
pub struct CheckTiming {
    /// After a failed check (Ollama down, model missing).
    pub retry_not_ready: Duration,
    /// After a successful check (a model may be deleted from an external Ollama).
    pub recheck_ready: Duration,
}

impl Default for CheckTiming {
    fn default() -> Self {
        Self {
            retry_not_ready: Duration::from_secs(30),
            recheck_ready: Duration::from_secs(600),
        }
    }
}

#[derive(Debug)]
struct Entry {
    request: CheckRequest,
    running: bool,
    /// Pull progress by model while a check runs.
    progress: BTreeMap<String, String>,
    last: Option<(Instant, Outcome)>,
    /// `last` came from an earlier run of the operator: report it, but check again at once.
    inherited: bool,
    task: Option<tokio::task::AbortHandle>,
}

/// What an earlier run of the operator reported (read back from the object's status).
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub ready: bool,
    pub reason: String,
    pub message: String,
    pub models: Vec<ModelStatus>,
}

#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    ready: bool,
    reason: String,
    message: String,
    models: Vec<ModelStatus>,
}

type Entries = Arc<Mutex<HashMap<String, Entry>>>;

/// Runs and remembers model checks, one per BotDeployment (keyed `namespace/name`).
#[derive(Clone)]
pub struct ModelChecker {
    http: reqwest::Client,
    entries: Entries,
    timing: CheckTiming,
}

impl ModelChecker {
    pub fn new(timing: CheckTiming) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A pull streams progress every few seconds; silence this long means it is stuck.
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("ollama-mcp-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            entries: Arc::default(),
            timing,
        }
    }

    /// The current report for `key`; starts a check when none ran for this request, or when the
    /// last one is old enough to repeat.
    pub fn observe(&self, key: &str, request: &CheckRequest) -> ModelReport {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match entries.get_mut(key) {
            Some(e) if &e.request == request => e,
            _ => {
                if let Some(old) = entries.remove(key).and_then(|e| e.task) {
                    old.abort();
                }
                entries.entry(key.to_string()).or_insert(Entry {
                    request: request.clone(),
                    running: false,
                    progress: BTreeMap::new(),
                    last: None,
                    inherited: false,
                    task: None,
                })
            }
        };
        let due = match &entry.last {
            None => true,
            Some(_) if entry.inherited => true,
            Some((at, o)) => {
                let wait = if o.ready {
                    self.timing.recheck_ready
                } else {
                    self.timing.retry_not_ready
                };
                at.elapsed() >= wait
            }
        };
        if !entry.running && due {
            entry.running = true;
            entry.inherited = false;
            entry.progress.clear();
            let task = tokio::spawn(run_check(
                self.http.clone(),
                Arc::clone(&self.entries),
                key.to_string(),
                request.clone(),
            ));
            entry.task = Some(task.abort_handle());
        }
        report(entry)
    }

    /// Seeds `key` with what an earlier run of the operator reported, when this run knows
    /// nothing of it yet: a restart then keeps the last known state (no `Unknown` flap, no reset
    /// transition time) until the first check of this run, which starts at once, says otherwise.
    pub fn remember(&self, key: &str, request: &CheckRequest, known: Known) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.entry(key.to_string()).or_insert_with(|| Entry {
            request: request.clone(),
            running: false,
            progress: BTreeMap::new(),
            last: Some((
                Instant::now(),
                Outcome {
                    ready: known.ready,
                    reason: known.reason,
                    message: known.message,
                    models: known.models,
                },
            )),
            inherited: true,
            task: None,
        });
    }

    /// Whether anything is known about `key` (it is forgotten when its BotDeployment goes).
    pub fn tracks(&self, key: &str) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }

    /// Whether a check for `key` is running (tests poll this instead of sleeping).
    pub fn is_running(&self, key: &str) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .is_some_and(|e| e.running)
    }

    /// Drops what is known about `key` (its BotDeployment is gone).
    pub fn forget(&self, key: &str) {
        if let Some(task) = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
            .and_then(|e| e.task)
        {
            task.abort();
        }
    }
}

fn report(entry: &Entry) -> ModelReport {
    match &entry.last {
        Some((_, o)) => ModelReport {
            ready: Some(o.ready),
            checking: entry.running,
            reason: o.reason.clone(),
            message: o.message.clone(),
            models: with_progress(&o.models, &entry.progress),
        },
        None => {
            let models: Vec<ModelStatus> = entry
                .request
                .models
                .iter()
                .map(|m| ModelStatus {
                    name: m.clone(),
                    ..Default::default()
                })
                .collect();
            let pulling: Vec<String> = entry
                .progress
                .iter()
                .map(|(m, p)| format!("{m}: {p}"))
                .collect();
            let message = if pulling.is_empty() {
                format!("checking the models on {}", entry.request.base_url)
            } else {
                format!(
                    "pulling models on {}: {}",
                    entry.request.base_url,
                    pulling.join(", ")
                )
            };
            ModelReport {
                ready: None,
                checking: true,
                reason: if pulling.is_empty() {
                    "Checking".into()
                } else {
                    "Pulling".into()
                },
                message,
                models: with_progress(&models, &entry.progress),
            }
        }
    }
}

fn with_progress(models: &[ModelStatus], progress: &BTreeMap<String, String>) -> Vec<ModelStatus> {
    models
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if let Some(p) = progress.get(&m.name) {
                m.pull = Some(p.clone());
            }
            m
        })
        .collect()
}

async fn run_check(http: reqwest::Client, entries: Entries, key: String, request: CheckRequest) {
    let progress = {
        let entries = Arc::clone(&entries);
        let key = key.clone();
        move |model: &str, text: String| {
            if let Some(e) = entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&key)
            {
                e.progress.insert(model.to_string(), text);
            }
        }
    };
    let outcome = check(&http, &request, &progress).await;
    tracing::info!(bot = %key, ready = outcome.ready, reason = %outcome.reason, "model check finished");
    if let Some(e) = entries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&key)
        && e.request == request
    {
        e.running = false;
        e.task = None;
        e.progress.clear();
        e.last = Some((Instant::now(), outcome));
    }
}

#[derive(Deserialize)]
struct ShowResponse {
    #[serde(default)]
    capabilities: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct PullLine {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    completed: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

enum ShowResult {
    Found(Option<Vec<String>>),
    Missing,
}

async fn check(
    http: &reqwest::Client,
    request: &CheckRequest,
    progress: &(dyn Fn(&str, String) + Sync),
) -> Outcome {
    let base = request.base_url.trim_end_matches('/');
    let mut models = Vec::new();
    let mut problems: Vec<(String, String)> = Vec::new();
    for model in &request.models {
        let mut status = ModelStatus {
            name: model.clone(),
            ..Default::default()
        };
        let mut shown = show(http, base, model).await;
        if request.pull && matches!(shown, Ok(ShowResult::Missing)) {
            match pull(http, base, model, progress).await {
                Ok(()) => shown = show(http, base, model).await,
                Err(e) => {
                    status.pull = Some("failed".into());
                    problems.push((
                        "PullFailed".into(),
                        format!("pulling `{model}` failed: {e}; check the name at https://ollama.com/library"),
                    ));
                    models.push(status);
                    continue;
                }
            }
        }
        match shown {
            Err(e) => {
                let what = if request.pull {
                    format!("the managed Ollama at {base} does not answer yet ({e}); it may still be starting")
                } else {
                    format!("cannot reach Ollama at {base} ({e}); check spec.ollama.url and that Ollama runs")
                };
                problems.push(("OllamaUnreachable".into(), what));
                models.push(status);
                // Every other model would fail the same way.
                models.extend(request.models.iter().skip(models.len()).map(|m| ModelStatus {
                    name: m.clone(),
                    ..Default::default()
                }));
                break;
            }
            Ok(ShowResult::Missing) => problems.push((
                "ModelMissing".into(),
                format!("model `{model}` is not on the Ollama server at {base}: run `ollama pull {model}` there, or use ollama.managed (which pulls)"),
            )),
            Ok(ShowResult::Found(None)) => {
                status.present = true;
                problems.push((
                    "CapabilitiesUnknown".into(),
                    format!("Ollama did not report the capabilities of `{model}`; upgrade Ollama to 0.6.4 or later"),
                ));
            }
            Ok(ShowResult::Found(Some(caps))) => {
                status.present = true;
                if !caps.iter().any(|c| c == "tools") {
                    problems.push((
                        "ModelLacksTools".into(),
                        format!(
                            "model `{model}` cannot call tools (capabilities: {}); choose a model with the `tools` capability, e.g. llama3.2 or qwen3",
                            if caps.is_empty() { "none".to_string() } else { caps.join(", ") }
                        ),
                    ));
                }
                status.capabilities = caps;
            }
        }
        models.push(status);
    }
    if problems.is_empty() {
        let message = models
            .iter()
            .map(|m| format!("{} ({})", m.name, m.capabilities.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        Outcome {
            ready: true,
            reason: "ModelsReady".into(),
            message,
            models,
        }
    } else {
        Outcome {
            ready: false,
            reason: problems[0].0.clone(),
            message: problems
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("; "),
            models,
        }
    }
}

async fn show(http: &reqwest::Client, base: &str, model: &str) -> Result<ShowResult, String> {
    let resp = http
        .post(format!("{base}/api/show"))
        .timeout(Duration::from_secs(15))
        .json(&serde_json::json!({ "model": model }))
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(ShowResult::Missing);
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!(
            "/api/show answered {status}: {}",
            error_text(&body)
        ));
    }
    let body: ShowResponse = resp
        .json()
        .await
        .map_err(|e| format!("/api/show answered unreadable JSON: {e}"))?;
    Ok(ShowResult::Found(body.capabilities))
}

async fn pull(
    http: &reqwest::Client,
    base: &str,
    model: &str,
    progress: &(dyn Fn(&str, String) + Sync),
) -> Result<(), String> {
    progress(model, "starting".into());
    let mut resp = http
        .post(format!("{base}/api/pull"))
        .json(&serde_json::json!({ "model": model, "stream": true }))
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(format!(
            "/api/pull answered {status}: {}",
            error_text(&body)
        ));
    }
    let mut buf = Vec::new();
    let mut last_status = String::new();
    loop {
        let chunk = resp.chunk().await.map_err(|e| describe(&e))?;
        let done = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            handle_pull_line(&line, model, progress, &mut last_status)?;
        }
        if done {
            if !buf.is_empty() {
                let rest = std::mem::take(&mut buf);
                handle_pull_line(&rest, model, progress, &mut last_status)?;
            }
            break;
        }
    }
    if last_status == "success" {
        Ok(())
    } else {
        Err(format!(
            "the pull stream ended without success (last status: `{last_status}`)"
        ))
    }
}

fn handle_pull_line(
    line: &[u8],
    model: &str,
    progress: &(dyn Fn(&str, String) + Sync),
    last_status: &mut String,
) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    let l: PullLine =
        serde_json::from_str(text).map_err(|e| format!("unreadable pull progress: {e}"))?;
    if let Some(e) = l.error {
        return Err(e);
    }
    let status = l.status.unwrap_or_default();
    let shown = match (l.total, l.completed) {
        (Some(total), Some(done)) if total > 0 => {
            let verb = if status.starts_with("pulling") {
                "downloading"
            } else {
                status.as_str()
            };
            format!("{verb} {}%", done.saturating_mul(100) / total)
        }
        _ => status.clone(),
    };
    progress(model, shown);
    *last_status = status;
    Ok(())
}

/// An Ollama error body (`{"error": "..."}`) or the start of whatever came.
fn error_text(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| body.chars().take(200).collect())
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or host unknown".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        // Without the URL: it is in the message already, and error chains repeat it.
        e.without_url_ref().to_string()
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(&format!(" for url ({url})"), "");
        }
        s
    }
}
