//! A real Prometheus server for tests: the Debian `prometheus` binary on a free 127.0.0.1 port,
//! with a temporary config and data directory, scraping the given targets every second. It is
//! killed when the handle drops.
//!
//! ```ignore
//! let prom = Prometheus::start(&[ScrapeTarget::new("bot", addr).label("bot", "helper")]).await?;
//! prom.wait_for_target_up("bot", Duration::from_secs(30)).await?;
//! let samples = prom.query("sum(ollama_mcp_bot_messages_total)").await?;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How often the harness polls Prometheus while it waits for something.
const POLL: Duration = Duration::from_millis(100);
/// How long Prometheus may take to start answering on its port.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error(
        "no `prometheus` binary on PATH ({0}): run scripts/setup-test-deps.sh (Debian package prometheus)"
    )]
    Missing(std::io::Error),
    #[error("preparing the Prometheus directory failed: {0}")]
    Prepare(std::io::Error),
    #[error("prometheus exited before it was ready ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error("timed out after {after:?} waiting for {what}; prometheus log tail:\n{log}")]
    Timeout {
        what: String,
        after: Duration,
        log: String,
    },
    #[error("HTTP request to Prometheus failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("Prometheus rejected the query `{query}`: {error_type}: {error}")]
    Query {
        query: String,
        error_type: String,
        error: String,
    },
    #[error("Prometheus answered something unexpected: {0}")]
    Unexpected(String),
}

/// A target Prometheus scrapes, with the labels it attaches to every series (e.g. `namespace` and
/// `bot`, which in a cluster come from the ServiceMonitor / PodMonitor relabeling).
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub job: String,
    pub address: SocketAddr,
    pub metrics_path: String,
    pub labels: BTreeMap<String, String>,
}

impl ScrapeTarget {
    pub fn new(job: &str, address: SocketAddr) -> Self {
        Self {
            job: job.to_string(),
            address,
            metrics_path: "/metrics".into(),
            labels: BTreeMap::new(),
        }
    }

    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.insert(name.to_string(), value.to_string());
        self
    }
}

/// One series of an instant query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A running Prometheus; dropping it kills the process and removes its directory.
pub struct Prometheus {
    child: Child,
    base: String,
    http: reqwest::Client,
    log_path: PathBuf,
    // Kept for its Drop: the config and TSDB live here.
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second and waits until it answers `/-/ready`.
    pub async fn start(targets: &[ScrapeTarget]) -> Result<Self, PrometheusError> {
        // reqwest is built without a default TLS provider (see the workspace notes).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("prometheus-")
            .tempdir()
            .map_err(PrometheusError::Prepare)?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(targets)).map_err(PrometheusError::Prepare)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        // Another process may take the probed port before Prometheus binds it: try a few.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port().map_err(PrometheusError::Prepare)?;
            let log_path = dir.path().join(format!("prometheus-{port}.log"));
            let mut child = spawn(dir.path(), &config, port, &log_path)?;
            let base = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut child, &http, &base, &log_path).await {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        base,
                        http,
                        log_path,
                        _dir: dir,
                    });
                }
                Err(PrometheusError::Exited { log, .. })
                    if attempt < 3 && log.contains("address already in use") => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The last lines of Prometheus' own log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    fn timeout(&self, what: &str, after: Duration) -> PrometheusError {
        PrometheusError::Timeout {
            what: what.to_string(),
            after,
            log: self.log_tail(),
        }
    }

    fn api_url(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<reqwest::Url, PrometheusError> {
        reqwest::Url::parse_with_params(&format!("{}{path}", self.base), params)
            .map_err(|e| PrometheusError::Unexpected(format!("building the URL of {path}: {e}")))
    }

    /// The active targets of `job` as Prometheus reports them (`health`, `lastScrape`, `lastError`).
    async fn targets(&self, job: &str) -> Result<Vec<TargetState>, PrometheusError> {
        let body: ApiResponse<TargetsData> = self
            .http
            .get(format!("{}/api/v1/targets?state=active", self.base))
            .send()
            .await?
            .json()
            .await?;
        let data = body.into_data("targets")?;
        Ok(data
            .active_targets
            .into_iter()
            .filter(|t| t.labels.get("job").map(String::as_str) == Some(job))
            .collect())
    }

    /// Waits until every target of `job` has been scraped successfully.
    pub async fn wait_for_target_up(
        &self,
        job: &str,
        timeout: Duration,
    ) -> Result<(), PrometheusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let targets = self.targets(job).await?;
            if !targets.is_empty() && targets.iter().all(|t| t.health == "up") {
                return Ok(());
            }
            if Instant::now() > deadline {
                let state: Vec<String> = targets
                    .iter()
                    .map(|t| format!("{} {} {}", t.scrape_url, t.health, t.last_error))
                    .collect();
                return Err(self.timeout(
                    &format!("job `{job}` to be up (last state: {state:?})"),
                    timeout,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every target of `job` has completed a scrape that started after this call, so
    /// that what the test did before is in the TSDB.
    pub async fn wait_for_fresh_scrape(
        &self,
        job: &str,
        timeout: Duration,
    ) -> Result<(), PrometheusError> {
        let deadline = Instant::now() + timeout;
        let initial: Vec<String> = self
            .targets(job)
            .await?
            .into_iter()
            .map(|t| t.last_scrape)
            .collect();
        // The first change may be a scrape that was already running; the second one started later.
        let mut changes = 0;
        let mut seen = initial;
        loop {
            tokio::time::sleep(POLL).await;
            let now: Vec<String> = self
                .targets(job)
                .await?
                .into_iter()
                .map(|t| t.last_scrape)
                .collect();
            if !now.is_empty()
                && now.len() == seen.len()
                && now.iter().zip(&seen).all(|(a, b)| a != b)
            {
                changes += 1;
                seen = now;
                if changes == 2 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.timeout(&format!("a fresh scrape of job `{job}`"), timeout));
            }
        }
    }

    /// Runs an instant query at the current time.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, PrometheusError> {
        let response = self
            .http
            .get(self.api_url("/api/v1/query", &[("query", promql)])?)
            .send()
            .await?;
        let body: ApiResponse<QueryData> = response.json().await?;
        if body.status != "success" {
            return Err(PrometheusError::Query {
                query: promql.to_string(),
                error_type: body.error_type.unwrap_or_default(),
                error: body.error.unwrap_or_default(),
            });
        }
        let data = body.into_data("query")?;
        match data.result_type.as_str() {
            "vector" => {
                let series: Vec<VectorSample> = serde_json::from_value(data.result)
                    .map_err(|e| PrometheusError::Unexpected(format!("vector result: {e}")))?;
                series
                    .into_iter()
                    .map(|s| {
                        Ok(Sample {
                            labels: s.metric,
                            value: parse_value(&s.value.1)?,
                        })
                    })
                    .collect()
            }
            "scalar" => {
                let (_, v): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| PrometheusError::Unexpected(format!("scalar result: {e}")))?;
                Ok(vec![Sample {
                    labels: BTreeMap::new(),
                    value: parse_value(&v)?,
                }])
            }
            other => Err(PrometheusError::Unexpected(format!(
                "result type `{other}` for an instant query"
            ))),
        }
    }

    /// Polls `promql` until it returns at least one series with a finite value, or `timeout`.
    pub async fn query_until_finite(
        &self,
        promql: &str,
        timeout: Duration,
    ) -> Result<Vec<Sample>, PrometheusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let samples = self.query(promql).await?;
            if samples.iter().any(|s| s.value.is_finite()) {
                return Ok(samples);
            }
            if Instant::now() > deadline {
                return Err(self.timeout(
                    &format!("`{promql}` to return a finite value (last answer: {samples:?})"),
                    timeout,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The values of `label` over the series that match `selector` (Grafana's `label_values`).
    pub async fn label_values(
        &self,
        selector: &str,
        label: &str,
    ) -> Result<Vec<String>, PrometheusError> {
        let url = self.api_url(
            &format!("/api/v1/label/{label}/values"),
            &[("match[]", selector)],
        )?;
        let response = self.http.get(url).send().await?;
        let body: ApiResponse<Vec<String>> = response.json().await?;
        if body.status != "success" {
            return Err(PrometheusError::Query {
                query: format!("label_values({selector}, {label})"),
                error_type: body.error_type.unwrap_or_default(),
                error: body.error.unwrap_or_default(),
            });
        }
        body.into_data("label values")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // kill_on_drop would too; being explicit keeps a failed test from leaving a server behind.
        let _ = self.child.start_kill();
    }
}

fn spawn(dir: &Path, config: &Path, port: u16, log_path: &Path) -> Result<Child, PrometheusError> {
    let log = std::fs::File::create(log_path).map_err(PrometheusError::Prepare)?;
    Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=1h")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(PrometheusError::Missing)
}

async fn wait_ready(
    child: &mut Child,
    http: &reqwest::Client,
    base: &str,
    log_path: &Path,
) -> Result<(), PrometheusError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(PrometheusError::Exited {
                status: status.to_string(),
                log: log_tail(log_path),
            });
        }
        if let Ok(r) = http.get(format!("{base}/-/ready")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PrometheusError::Timeout {
                what: "Prometheus to answer /-/ready".into(),
                after: START_TIMEOUT,
                log: log_tail(log_path),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn parse_value(v: &str) -> Result<f64, PrometheusError> {
    // Prometheus writes NaN, +Inf and -Inf as strings that Rust parses as well.
    v.parse::<f64>()
        .map_err(|_| PrometheusError::Unexpected(format!("sample value `{v}`")))
}

/// The configuration: a 1 s scrape interval so that tests wait seconds, not minutes.
fn config_yaml(targets: &[ScrapeTarget]) -> String {
    let mut jobs: BTreeMap<&str, Vec<&ScrapeTarget>> = BTreeMap::new();
    for t in targets {
        jobs.entry(&t.job).or_default().push(t);
    }
    let scrape_configs: Vec<serde_json::Value> = jobs
        .into_iter()
        .map(|(job, targets)| {
            serde_json::json!({
                "job_name": job,
                "metrics_path": targets[0].metrics_path,
                "static_configs": targets.iter().map(|t| serde_json::json!({
                    "targets": [t.address.to_string()],
                    "labels": t.labels,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    // JSON is YAML: no YAML serializer needed here.
    serde_json::json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": scrape_configs,
    })
    .to_string()
}

fn free_port() -> std::io::Result<u16> {
    Ok(crate::servers::free_port())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse<T> {
    status: String,
    data: Option<T>,
    error_type: Option<String>,
    error: Option<String>,
}

impl<T> ApiResponse<T> {
    fn into_data(self, what: &str) -> Result<T, PrometheusError> {
        match (self.status.as_str(), self.data) {
            ("success", Some(d)) => Ok(d),
            _ => Err(PrometheusError::Unexpected(format!(
                "{what}: status {}, error {}",
                self.status,
                self.error.unwrap_or_default()
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    active_targets: Vec<TargetState>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetState {
    labels: BTreeMap<String, String>,
    scrape_url: String,
    health: String,
    last_error: String,
    last_scrape: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}
