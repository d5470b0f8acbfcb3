//! The two Ollama calls of the check: `POST /api/show` for a model's capabilities and the
//! streamed `POST /api/pull` for a managed Ollama, with errors worded for a status message.

use std::time::Duration;

use ollama_mcp_bot::model_info::ShowResponse;
use serde::Deserialize;

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

pub(super) enum ShowResult {
    Found(Option<Vec<String>>),
    Missing,
}

pub(super) async fn show(
    http: &reqwest::Client,
    base: &str,
    model: &str,
) -> Result<ShowResult, String> {
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
    // Every model of Ollama 0.6.4 and later has at least `completion` (or `embedding`): an empty
    // list is a server that does not say.
    let capabilities = body.into_details(model).capabilities;
    Ok(ShowResult::Found(
        (!capabilities.is_empty()).then_some(capabilities),
    ))
}

pub(super) async fn pull(
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
