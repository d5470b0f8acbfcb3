//! What the bot itself reports about its MCP servers: `GET /status` on its metrics port, read
//! from the Ready pod's IP (no API server involved, so no RBAC). At most once every
//! [`REFRESH`] per bot, each read bounded by [`TIMEOUT`]; when a read fails the last report is
//! kept for a while (tools seen a minute ago beat none) and the failure is logged at debug.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use ollama_mcp_bot::status::BotStatus;

use super::render::BOT_METRICS_PORT;

/// The shortest interval between two reads of one bot's `/status`.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How long one read may take (connect and answer).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A report older than this is dropped rather than shown as current.
const STALE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("asking the bot at {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("the bot at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the bot at {url} answered something that is not its status: {source}")]
    Body { url: String, source: reqwest::Error },
}

/// Reads `GET /status` from `base` (e.g. `http://10.0.0.7:9090`).
pub async fn read(http: &reqwest::Client, base: &str) -> Result<BotStatus, ReadError> {
    let url = format!("{}/status", base.trim_end_matches('/'));
    let response = http
        .get(&url)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|source| ReadError::Request {
            url: url.clone(),
            source: source.without_url(),
        })?;
    if !response.status().is_success() {
        return Err(ReadError::Status {
            url,
            status: response.status().as_u16(),
        });
    }
    response
        .json::<BotStatus>()
        .await
        .map_err(|source| ReadError::Body {
            url,
            source: source.without_url(),
        })
}

/// The metrics base URL of the bot's Ready pod, if one is Ready and has an IP.
pub fn ready_pod_url(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref())
        .filter(|s| {
            s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .find_map(|s| s.pod_ip.as_deref())
        .map(|ip| {
            // An IPv6 pod IP needs brackets in a URL.
            if ip.contains(':') {
                format!("http://[{ip}]:{BOT_METRICS_PORT}")
            } else {
                format!("http://{ip}:{BOT_METRICS_PORT}")
            }
        })
}

struct Entry {
    read_at: Instant,
    /// The last good report and when it came.
    report: Option<(Instant, BotStatus)>,
}

/// The last report of every bot, refreshed at most every [`REFRESH`].
pub struct BotReports {
    http: reqwest::Client,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for BotReports {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("ollama-mcp-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            entries: Mutex::default(),
        }
    }
}

impl BotReports {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The report of bot `key`, read again from `url` (its Ready pod) when the last read is
    /// older than [`REFRESH`]. `None` while no pod is Ready or nothing was ever read.
    pub async fn observe(&self, key: &str, url: Option<&str>) -> Option<BotStatus> {
        let Some(url) = url else {
            // No Ready pod: what an earlier pod said is no longer true.
            self.forget(key);
            return None;
        };
        let due = self
            .entries()
            .get(key)
            .is_none_or(|e| e.read_at.elapsed() >= REFRESH);
        if due {
            // The lock is not held across the read.
            let fresh = match read(&self.http, url).await {
                Ok(report) => Some(report),
                Err(e) => {
                    tracing::debug!(error = %e, "reading the bot's MCP status failed");
                    None
                }
            };
            let mut entries = self.entries();
            let entry = entries.entry(key.to_string()).or_insert(Entry {
                read_at: Instant::now(),
                report: None,
            });
            entry.read_at = Instant::now();
            if let Some(report) = fresh {
                entry.report = Some((Instant::now(), report));
            }
        }
        self.entries()
            .get(key)
            .and_then(|e| e.report.as_ref())
            .filter(|(at, _)| at.elapsed() < STALE)
            .map(|(_, r)| r.clone())
    }

    /// Drops what is known of `key` (its BotDeployment is gone, or its pod is not Ready).
    pub fn forget(&self, key: &str) {
        self.entries().remove(key);
    }
}
