//! The Grafana dashboard against a real Prometheus: every PromQL expression of every panel, with
//! its template variables filled in, must return at least one series with a finite value from a
//! Prometheus that scraped a real bot and a real operator. A panel that shows nothing fails.
//!
//! Also: the dashboard is well-formed (ids, layout, data source variable), and `promtool check
//! metrics` accepts a scrape of the bot.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ollama_mcp_bot::config::BotConfig;
use ollama_mcp_bot::conversation::{Engine, Silent, TurnRequest};
use ollama_mcp_bot::llm::ollama::OllamaClient;
use ollama_mcp_bot::mcp::{HubOptions, McpHub, ServerState};
use ollama_mcp_bot::store::Store;
use ollama_mcp_tests::ollama_double::{OllamaDouble, Reply};
use ollama_mcp_tests::prometheus::{Prometheus, ScrapeTarget};
use ollama_mcp_tests::servers;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

/// The labels a bot's series carry in a cluster (the ServiceMonitor / PodMonitor relabeling adds
/// `namespace` and `bot`); the test's static scrape config sets the same.
const BOT_NAMESPACE: &str = "bots";
const BOT_NAME: &str = "helper";
const BOT_JOB: &str = "ollama-mcp-bot";
const OPERATOR_JOB: &str = "ollama-mcp-operator-metrics";
/// Generous: Prometheus scrapes every second, but the machine is shared and slow.
const WAIT: Duration = Duration::from_secs(60);

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/ollama-mcp-operator/dashboards/ollama-mcp.json")
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dashboard_path()).unwrap())
        .expect("the dashboard is valid JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// (panel title, expression) for every query of every panel.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        title.clone(),
                        t["expr"]
                            .as_str()
                            .unwrap_or_else(|| panic!("`{title}` has a target without expr"))
                            .to_string(),
                    )
                })
        })
        .collect()
}

/// A Grafana `label_values(selector, label)` template-variable query, split.
fn label_values_query(query: &str) -> (String, String) {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query `{query}` is not label_values(...)"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    (selector.trim().to_string(), label.trim().to_string())
}

/// Replaces Grafana's variables the way Grafana does before sending a query to Prometheus.
fn fill(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m");
    // Longest names first, so that `$bot` does not eat the start of a longer name.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &vars[name])
            .replace(&format!("${name}"), &vars[name]);
    }
    assert!(!out.contains('$'), "unfilled variable in `{out}`");
    out
}

#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "ollama-mcp");
    assert!(
        d["id"].is_null(),
        "provisioned dashboards carry no numeric id"
    );
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "namespace", "bot"]);
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "duplicate panel id in `{title}`"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "`{title}` is wider than the grid"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "`{title}` has no description"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "`{title}` must use the data source variable"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "`{title}` has no query");
        let ref_ids: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(ref_ids.len(), targets.len(), "`{title}` repeats a refId");
    }
    // What the issue asks the dashboard to show.
    let titles: BTreeSet<String> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "Bots up",
        "Messages / s",
        "Error ratio",
        "Model request duration",
        "Time to first token",
        "Tokens per second",
        "Token spend",
        "Tool success rate",
        "Tool call latency",
        "Discord 429s",
        "Gateway latency and reconnects",
        "Reconciliations",
        "Reconcile duration",
    ] {
        assert!(titles.contains(want), "no panel `{want}`");
    }
}

/// The `ollama_mcp_*` metric names an expression queries.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("ollama_mcp_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        out.insert(expr[start..end].to_string());
        i = end;
    }
    out
}

/// What Prometheus scraped, and the parts it scraped; dropping it stops everything.
pub struct Scraped {
    pub prometheus: Prometheus,
    pub bot_metrics: SocketAddr,
    servers: Vec<tokio::task::JoinHandle<()>>,
    _bot: BotParts,
}

impl Drop for Scraped {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

async fn serve(router: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

const MODEL: &str = "llama3.2";

/// The bot's real engine: the conversation engine with the real Ollama client talking to the
/// Ollama double, the real MCP hub running the real memory server, the real SQLite store.
struct BotParts {
    engine: Engine,
    hub: Arc<McpHub>,
    ollama: OllamaDouble,
    _dir: tempfile::TempDir,
}

impl BotParts {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ollama = OllamaDouble::builder()
            .model(MODEL, &["completion", "tools"])
            .instant()
            .start()
            .await
            .unwrap();
        let mut config = BotConfig::default();
        config.ollama.url = ollama.url();
        config.ollama.model = MODEL.to_string();
        config.ollama.max_retries = 0;
        let hub = McpHub::start(
            &[servers::memory(dir.path())],
            HubOptions::from_chat(&config.chat),
        )
        .await;
        assert!(
            servers::wait_until(WAIT, || hub
                .status()
                .iter()
                .all(|s| s.state == ServerState::Ready))
            .await,
            "the memory server did not start: {:?}",
            hub.status()
        );
        let store = Store::open(&dir.path().join("bot.db").display().to_string()).unwrap();
        let model = Arc::new(OllamaClient::new(&config.ollama).unwrap());
        let engine = Engine::new(model, hub.clone(), store, &config);
        Self {
            engine,
            hub,
            ollama,
            _dir: dir,
        }
    }
}

/// The scenario the dashboard is checked against. Prometheus scrapes the bot's real `/metrics`
/// (the process-wide registry the bot's parts record into) and the operator's real `/metrics`
/// router, labelled as the ServiceMonitors label them in a cluster.
///
/// Two rounds of work with a scrape after each: `rate()` needs a counter to change between two
/// scrapes of the same series, and a labelled series only appears at its first event.
///
/// The lead's end-to-end scenario plugs in here: drive the rounds through `ollama-mcp-bot run`
/// (Discord double → engine → Ollama double → real MCP servers) and scrape that process instead
/// of the in-process registry; [`discord_round`] then goes away.
async fn drive_bot_and_scrape() -> Scraped {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bot = BotParts::start().await;
    let ready = ollama_mcp_bot::metrics::Readiness::default();
    ready.set(true);
    let (bot_addr, bot_server) = serve(ollama_mcp_bot::metrics::router(ready)).await;
    let operator_metrics = Arc::new(ollama_mcp_operator::metrics::Metrics::default());
    let state = ollama_mcp_operator::http::HttpState {
        metrics: operator_metrics.clone(),
        ready: Arc::new(AtomicBool::new(true)),
    };
    let (op_addr, op_server) = serve(ollama_mcp_operator::http::router(state)).await;

    let prometheus = Prometheus::start(&[
        ScrapeTarget::new(BOT_JOB, bot_addr)
            .label("namespace", BOT_NAMESPACE)
            .label("bot", BOT_NAME),
        ScrapeTarget::new(OPERATOR_JOB, op_addr).label("namespace", "ollama-mcp-system"),
    ])
    .await
    .expect("prometheus starts");
    prometheus
        .wait_for_target_up(BOT_JOB, WAIT)
        .await
        .expect("the bot is scraped");
    prometheus
        .wait_for_target_up(OPERATOR_JOB, WAIT)
        .await
        .expect("the operator is scraped");

    for round in 0..2 {
        conversation_round(&bot, round).await;
        discord_round(round);
        operator_round(&operator_metrics);
        prometheus
            .wait_for_fresh_scrape(BOT_JOB, WAIT)
            .await
            .expect("a scrape after the bot's round");
        prometheus
            .wait_for_fresh_scrape(OPERATOR_JOB, WAIT)
            .await
            .expect("a scrape after the operator's round");
    }
    Scraped {
        prometheus,
        bot_metrics: bot_addr,
        servers: vec![bot_server, op_server],
        _bot: bot,
    }
}

/// Real work: a turn in which the model calls a memory tool and then answers, a turn whose model
/// stream breaks, and (in the first round) a crash of the memory server that the hub restarts.
async fn conversation_round(bot: &BotParts, round: u32) {
    let entity = json!({"entities": [{"name": format!("otter-{round}"), "entityType": "animal", "observations": ["holds hands while sleeping"]}]});
    bot.ollama
        .push_reply(Reply::tool_call("memory__create_entities", entity));
    bot.ollama
        .push_reply(Reply::text("I will remember that otters hold hands."));
    let session = format!("guild:1:user:{round}");
    let done = bot
        .engine
        .turn(
            TurnRequest::new(&session, "Remember: otters hold hands."),
            &Silent,
        )
        .await;
    let done = done.expect("the tool-calling turn completes");
    assert_eq!(done.tool_calls, 1, "the model's tool call ran");

    bot.ollama.push_reply(Reply::ErrorMidStream {
        after_chunks: 2,
        message: "llama runner process has terminated".into(),
    });
    let failed = bot
        .engine
        .turn(TurnRequest::new(&session, "And what else?"), &Silent)
        .await;
    assert!(failed.is_err(), "a broken model stream fails the turn");

    if round == 0 {
        let pid = bot
            .hub
            .server_pid("memory")
            .expect("the memory server's pid");
        servers::kill_hard(pid);
        let back = servers::wait_until(WAIT, || {
            bot.hub.server_pid("memory").is_some_and(|p| p != pid)
                && bot
                    .hub
                    .status()
                    .iter()
                    .all(|s| s.state == ServerState::Ready)
        })
        .await;
        assert!(
            back,
            "the hub restarted the memory server: {:?}",
            bot.hub.status()
        );
    }
}

/// The Discord adapter's share of the metrics, recorded through the bot's metrics API as the
/// adapter records it: messages received and their outcomes, the queue, REST requests with a
/// 429, gateway latency and a reconnect.
///
/// A stand-in until the `run` scenario drives the real adapter against the Discord double; the
/// events listed are what that scenario must produce for every Discord panel to show data.
fn discord_round(round: u32) {
    let m = ollama_mcp_bot::metrics::metrics();
    m.messages_received.inc_by(2);
    m.queue_depth.set(i64::from(round));
    m.record_message("answered");
    m.record_message("error");
    m.record_discord_request("create_message", 200);
    m.record_discord_request("edit_message", 200);
    m.record_discord_request("edit_message", 429);
    m.gateway_latency_seconds.set(0.042);
    m.gateway_reconnects.inc();
}

/// The operator's metrics as its controller records them: two reconciliations, one failing at
/// `apply`, and the children of one BotDeployment. The operator binary needs an API server to
/// start; its reconcile loop is tested against one in `operator/`.
fn operator_round(m: &ollama_mcp_operator::metrics::Metrics) {
    drop(m.reconcile_started());
    drop(m.reconcile_started());
    m.reconcile_failed("apply");
    m.set_children(
        "bots/helper",
        vec![("Deployment", 1), ("ConfigMap", 1), ("Service", 1)],
    );
    m.leader.set(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_shows_data_from_a_real_prometheus_and_promtool_accepts_the_scrape() {
    let scraped = drive_bot_and_scrape().await;
    let prom = &scraped.prometheus;
    let d = dashboard();

    // The template variables, resolved as Grafana resolves them: from Prometheus, in order.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for v in d["templating"]["list"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap().to_string();
        if v["type"] == "datasource" {
            continue;
        }
        let (selector, label) = label_values_query(v["query"]["query"].as_str().unwrap());
        let selector = fill(&selector, &vars);
        let values = prom.label_values(&selector, &label).await.unwrap();
        let expected = if name == "namespace" {
            BOT_NAMESPACE
        } else {
            BOT_NAME
        };
        assert!(
            values.iter().any(|v| v == expected),
            "variable `{name}` offers {values:?}, not `{expected}`"
        );
        vars.insert(name, expected.to_string());
    }

    // Names first: a misspelt metric is the commonest reason for an empty panel.
    let scraped_names: BTreeSet<String> = prom
        .label_values("{__name__=~\"ollama_mcp_.+\"}", "__name__")
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut failures = Vec::new();
    for (title, expr) in expressions(&d) {
        for name in metric_names(&expr) {
            if !scraped_names.contains(&name) {
                failures.push(format!(
                    "panel `{title}` queries `{name}`, which Prometheus never scraped"
                ));
            }
        }
    }
    for (title, expr) in expressions(&d) {
        let query = fill(&expr, &vars);
        match prom
            .query_until_finite(&query, Duration::from_secs(10))
            .await
        {
            Ok(samples) => eprintln!("ok `{title}`: {query} -> {} series", samples.len()),
            Err(e) => failures.push(format!("panel `{title}` shows nothing: {query}\n  {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the dashboard's queries return no data:\n{}",
        failures.len(),
        failures.join("\n")
    );

    promtool_check_bot_scrape(scraped.bot_metrics).await;
}

/// The OpenMetrics exposition rewritten as the Prometheus text format `promtool` lints: the
/// counter families named with their `_total` samples (as Prometheus itself reads OpenMetrics),
/// without `# EOF` / `# UNIT`.
fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut counters = BTreeSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::new();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// `promtool check metrics` on a scrape of the bot (after the scenario, so every family has series).
async fn promtool_check_bot_scrape(addr: SocketAddr) {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert!(response.status().is_success());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.trim_end().ends_with("# EOF"),
        "an OpenMetrics exposition ends with # EOF"
    );

    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (scripts/setup-test-deps.sh)");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(openmetrics_to_text(&body).as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics found problems:\n{report}\n--- scrape ---\n{body}"
    );
}
