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

use ollama_mcp_tests::bot_process::{bot_binary, test_config, write_config};
use ollama_mcp_tests::discord_double::{DiscordDouble, DoubleConfig};
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
    _bot: BotRun,
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
const TOKEN: &str = "dashboard-test-token";

/// `ollama-mcp-bot run`, the real binary, connected to the Discord double, talking to the Ollama
/// double, with the real memory MCP server and its SQLite store in a temporary directory.
struct BotRun {
    process: tokio::process::Child,
    metrics: SocketAddr,
    discord: DiscordDouble,
    ollama: OllamaDouble,
    http: reqwest::Client,
    bot_id: u64,
    user: u64,
    channel: u64,
    _dir: tempfile::TempDir,
}

impl BotRun {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ollama = OllamaDouble::builder()
            .model(MODEL, &["completion", "tools"])
            .instant()
            .start()
            .await
            .unwrap();
        let mut discord_config = DoubleConfig::new(TOKEN);
        // Heartbeats every second, so that the gateway latency is measured within the test.
        discord_config.heartbeat_interval = Duration::from_secs(1);
        let discord = DiscordDouble::start_with(discord_config).await;
        let guild = discord.add_guild("otters");
        let channel = discord.add_text_channel(guild, "general");
        let user = discord.add_user("alice");
        discord.add_member(guild, user, &[]);

        let metrics: SocketAddr = format!("127.0.0.1:{}", servers::free_port())
            .parse()
            .unwrap();
        let mut config = test_config(dir.path(), &ollama.url(), vec![servers::memory(dir.path())]);
        config.ollama.model = MODEL.to_string();
        config.ollama.max_retries = 0;
        config.discord.api_base = discord.api_base();
        config.metrics.listen = metrics.to_string();
        let path = write_config(dir.path(), &config);
        let process = tokio::process::Command::new(bot_binary())
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("DISCORD_TOKEN", TOKEN)
            .env_remove("DISCORD_TOKEN_FILE")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ollama-mcp-bot run starts");
        discord.wait_ready(WAIT).await;
        let bot_id = discord.bot_id();
        let http = reqwest::Client::new();
        let run = Self {
            process,
            metrics,
            discord,
            ollama,
            http,
            bot_id,
            user,
            channel,
            _dir: dir,
        };
        run.wait_metric(
            "the memory server up",
            r#"ollama_mcp_bot_mcp_server_up{server="memory"}"#,
            |v| v == 1.0,
        )
        .await;
        run
    }

    /// The value of one series in the bot's own `/metrics`, if it is there.
    async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
    }

    /// Polls `/metrics` until `series` satisfies `ok`.
    async fn wait_metric(&self, what: &str, series: &str, ok: impl Fn(f64) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self.metric(series).await;
            if value.is_some_and(&ok) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} ({series} = {value:?})\n{}",
                self.discord.summary()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn say(&self, text: &str) {
        self.discord.user_says(
            self.user,
            self.channel,
            &format!("<@{}> {text}", self.bot_id),
        );
    }
}

/// The scenario the dashboard is checked against: Prometheus scrapes the real `ollama-mcp-bot
/// run` process (Discord double, Ollama double, real memory MCP server) and the operator's real
/// `/metrics` router, labelled as the ServiceMonitors label them in a cluster.
///
/// Two rounds of work with a scrape after each: `rate()` needs a counter to change between two
/// scrapes of the same series, and a labelled series only appears at its first event.
async fn drive_bot_and_scrape() -> Scraped {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bot = BotRun::start().await;
    let operator_metrics = Arc::new(ollama_mcp_operator::metrics::Metrics::default());
    let state = ollama_mcp_operator::http::HttpState {
        metrics: operator_metrics.clone(),
        ready: Arc::new(AtomicBool::new(true)),
    };
    let (op_addr, op_server) = serve(ollama_mcp_operator::http::router(state)).await;

    let prometheus = Prometheus::start(&[
        ScrapeTarget::new(BOT_JOB, bot.metrics)
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
        bot_round(&bot, round).await;
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
    let bot_metrics = bot.metrics;
    Scraped {
        prometheus,
        bot_metrics,
        servers: vec![op_server],
        _bot: bot,
    }
}

/// One round in Discord: a question the model answers after a memory tool call; a question whose
/// model stream breaks (the user gets an error), answered through a forced 429; and, in the first
/// round, a gateway RECONNECT and a crash of the memory server that the bot restarts.
async fn bot_round(bot: &BotRun, round: u32) {
    let n = f64::from(round + 1);
    let entity = json!({"entities": [{"name": format!("otter-{round}"), "entityType": "animal", "observations": ["holds hands while sleeping"]}]});
    bot.ollama
        .push_reply(Reply::tool_call("memory__create_entities", entity));
    bot.ollama
        .push_reply(Reply::text("I will remember that otters hold hands."));
    bot.say("remember that otters hold hands");
    bot.wait_metric(
        "an answered message",
        r#"ollama_mcp_bot_messages_total{outcome="answered"}"#,
        |v| v >= n,
    )
    .await;
    bot.wait_metric(
        "the memory tool call",
        r#"ollama_mcp_bot_tool_calls_total{server="memory",tool="create_entities",outcome="ok"}"#,
        |v| v >= n,
    )
    .await;

    bot.discord
        .force_429("create_message", 1, Duration::from_millis(200));
    bot.ollama.push_reply(Reply::ErrorMidStream {
        after_chunks: 2,
        message: "llama runner process has terminated".into(),
    });
    bot.say("and what else do you know?");
    bot.wait_metric(
        "a failed message",
        r#"ollama_mcp_bot_messages_total{outcome="error"}"#,
        |v| v >= n,
    )
    .await;
    bot.wait_metric(
        "a Discord 429",
        r#"ollama_mcp_bot_discord_rate_limited_total{route="create_message"}"#,
        |v| v >= n,
    )
    .await;

    if round == 0 {
        bot.discord.force_reconnect();
        bot.wait_metric(
            "a gateway reconnect",
            "ollama_mcp_bot_gateway_reconnects_total",
            |v| v >= 1.0,
        )
        .await;
        let bot_pid = bot.process.id().expect("the bot runs");
        for pid in servers::descendants(bot_pid) {
            servers::kill_hard(pid);
        }
        bot.wait_metric(
            "the memory server's restart",
            r#"ollama_mcp_bot_mcp_server_restarts_total{server="memory"}"#,
            |v| v >= 1.0,
        )
        .await;
        bot.wait_metric(
            "the memory server up again",
            r#"ollama_mcp_bot_mcp_server_up{server="memory"}"#,
            |v| v == 1.0,
        )
        .await;
        bot.wait_metric(
            "a gateway latency",
            "ollama_mcp_bot_gateway_latency_seconds",
            |v| v > 0.0,
        )
        .await;
    }
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
