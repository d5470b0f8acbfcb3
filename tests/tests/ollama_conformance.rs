//! The Ollama double answers as a real Ollama 0.24 did: every exchange recorded in
//! `<repo>/../shared/ollama-0.24/exchanges` is replayed against the double, in file order, and
//! the answer compared with the recording: status, `Content-Type` (and `Allow`), error texts,
//! `done` and `done_reason`, the shape of every JSON object (field names and JSON types), tool
//! calls (`call_…` ids, `function.index`, name, object arguments), thinking, a prompt cut to
//! `num_ctx`. Timestamps, durations, counts and generated text are not compared. File 30 (the
//! prompt cache) is replayed as its five requests and checked against the double's
//! per-request [`PromptEval`]. Every file must be replayed: the test counts them.
//!
//! The model's output cannot be recorded apart from the server's parsing of it, so each chat
//! gets a scripted output reconstructed from its recording (the content and thinking it
//! streamed, or the tool calls it made, or for a reply with nothing in it a tool call that the
//! cut left unfinished), padded so that `num_predict` cuts it as it cut the real one. What the
//! server does with that output (parse tool calls, hold back a partial one, split thinking,
//! stop at `num_predict`) is the double's.

use std::path::{Path, PathBuf};

use ollama_mcp_tests::ollama_double::{ModelSpec, OllamaDouble, PromptEval, Reply, json_kind};
use serde_json::{Value, json};

/// `<repo>/../shared/ollama-0.24/exchanges` as CI lays it out, or the nearest `shared/` above
/// the repository (a worktree nested one level deeper).
fn exchanges_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    repo.ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/ollama-0.24/exchanges"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "the recordings are missing: expected shared/ollama-0.24/exchanges beside {} (CI puts shared/ next to the clone)",
                repo.display()
            )
        })
}

/// One recorded exchange.
#[derive(Debug)]
struct Exchange {
    method: String,
    path: String,
    body: Option<String>,
    status: u16,
    headers: Vec<(String, String)>,
    response: String,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn request_json(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }

    /// The answer's JSON lines (one for a JSON body).
    fn lines(&self) -> Vec<Value> {
        parse_lines(&self.response)
    }
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.to_string())))
        .collect()
}

fn parse_exchange(text: &str) -> Result<Exchange, String> {
    let mut lines = text.split('\n');
    let request = lines
        .next()
        .and_then(|l| l.strip_prefix(">>> "))
        .ok_or("no `>>> METHOD path` line")?;
    let (method, path) = request.split_once(' ').ok_or("no path")?;
    let mut body = None;
    let mut rest: Vec<&str> = lines.collect();
    if let Some(b) = rest.first().and_then(|l| l.strip_prefix(">>> ")) {
        body = Some(b.to_string());
        rest.remove(0);
    }
    let rest = rest.join("\n");
    let rest = rest.trim_start_matches('\n');
    // curl -i keeps the server's CRLF line ends in the head.
    let (head, response) = rest
        .split_once("\r\n\r\n")
        .or_else(|| rest.split_once("\n\n"))
        .ok_or("no blank line after headers")?;
    let mut head = head.lines();
    let status = head
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let headers = head
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let response = response
        .split_once("<<< curl")
        .map_or(response, |(r, _)| r)
        .to_string();
    Ok(Exchange {
        method: method.to_string(),
        path: path.to_string(),
        body,
        status,
        headers,
        response,
    })
}

/// Fields whose values are compared, not only their types.
const EXACT: &[&str] = &[
    "error",
    "done",
    "done_reason",
    "role",
    "version",
    "status",
    "capabilities",
    "parameters",
    "context_length",
    "gemma3.context_length",
    "name",
    "model",
];

/// Differences in shape between a recorded JSON value and the double's.
fn compare(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    if json_kind(want) != json_kind(got) {
        out.push(format!(
            "{path}: {} recorded, {} from the double",
            json_kind(want),
            json_kind(got)
        ));
        return;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let mut wk: Vec<&String> = w.keys().collect();
            let mut gk: Vec<&String> = g.keys().collect();
            wk.sort();
            gk.sort();
            if wk != gk {
                out.push(format!(
                    "{path}: fields {wk:?} recorded, {gk:?} from the double"
                ));
            }
            for (k, wv) in w {
                let Some(gv) = g.get(k) else { continue };
                let p = format!("{path}.{k}");
                if EXACT.contains(&k.as_str()) && wv != gv {
                    out.push(format!("{p}: {wv} recorded, {gv} from the double"));
                }
                if k == "tool_calls" {
                    tool_calls(&p, wv, gv, out);
                } else {
                    compare(&p, wv, gv, out);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if let (Some(wf), Some(gf)) = (w.first(), g.first()) {
                compare(&format!("{path}[0]"), wf, gf, out);
            } else if w.is_empty() != g.is_empty() {
                out.push(format!(
                    "{path}: {} items recorded, {} from the double",
                    w.len(),
                    g.len()
                ));
            }
        }
        _ => {}
    }
}

fn tool_calls(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    let (Some(w), Some(g)) = (want.as_array(), got.as_array()) else {
        out.push(format!("{path}: not arrays"));
        return;
    };
    if w.is_empty() != g.is_empty() {
        out.push(format!(
            "{path}: {} calls recorded, {} from the double",
            w.len(),
            g.len()
        ));
    }
    for (i, (wc, gc)) in w.iter().zip(g).enumerate() {
        compare(&format!("{path}[{i}]"), wc, gc, out);
        let id = gc["id"].as_str().unwrap_or_default();
        let well_formed = id.len() == 13
            && id.starts_with("call_")
            && id[5..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !well_formed {
            out.push(format!(
                "{path}[{i}].id: {id:?} is not call_ and 8 lowercase letters or digits"
            ));
        }
        if gc["function"]["index"] != json!(i) {
            out.push(format!(
                "{path}[{i}].function.index: {}",
                gc["function"]["index"]
            ));
        }
        if wc["function"]["name"] != gc["function"]["name"] {
            out.push(format!("{path}[{i}].function.name differs"));
        }
    }
}

/// The model output to script for a recorded chat (see the module documentation).
fn scripted_output(exchange: &Exchange) -> String {
    let lines = exchange.lines();
    let mut thinking = String::new();
    let mut content = String::new();
    let mut calls = String::new();
    for line in &lines {
        let m = &line["message"];
        thinking.push_str(m["thinking"].as_str().unwrap_or_default());
        content.push_str(m["content"].as_str().unwrap_or_default());
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            calls.push_str(&format!(
                "<tool_call>{{\"name\": {}, \"arguments\": {}}}</tool_call>\n",
                call["function"]["name"], call["function"]["arguments"]
            ));
        }
    }
    let cut = lines.last().is_some_and(|l| l["done_reason"] == "length");
    let mut output = String::new();
    if !thinking.is_empty() {
        output.push_str(&format!("<think>{thinking}</think>"));
    }
    if !calls.is_empty() {
        // The model went on calling until it was cut.
        output.push_str(&calls.repeat(3));
    } else if content.is_empty() && thinking.is_empty() {
        // Nothing came out although tokens were generated: the model started a tool call and
        // the cut left it unfinished.
        output.push_str(
            &"<tool_call>{\"name\": \"memory__read_graph\", \"arguments\": {}}</tool_call>"
                .repeat(4),
        );
    } else {
        output.push_str(&content);
    }
    if cut && calls.is_empty() && !(content.is_empty() && thinking.is_empty()) {
        output.push_str(&" and then the tiny model repeated itself".repeat(40));
    }
    output
}

async fn replay(
    http: &reqwest::Client,
    double: &OllamaDouble,
    exchange: &Exchange,
) -> (u16, Vec<(String, String)>, String) {
    let url = format!("{}{}", double.url(), exchange.path);
    let method = reqwest::Method::from_bytes(exchange.method.as_bytes()).expect("method");
    let mut request = http.request(method, url);
    if let Some(body) = &exchange.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.expect("the double answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let text = response.text().await.expect("body");
    (status, headers, text)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Compares one answer with its recording; the differences.
fn check(
    exchange: &Exchange,
    status: u16,
    headers: &[(String, String)],
    text: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if status != exchange.status {
        out.push(format!(
            "status {} recorded, {status} from the double: {text}",
            exchange.status
        ));
        return out;
    }
    for name in ["content-type", "allow"] {
        if exchange.header(name) != header(headers, name) {
            out.push(format!(
                "{name}: {:?} recorded, {:?} from the double",
                exchange.header(name),
                header(headers, name)
            ));
        }
    }
    let json = exchange
        .header("content-type")
        .is_some_and(|c| c.contains("json"));
    if !json {
        if exchange.response != text {
            out.push(format!(
                "body {:?} recorded, {text:?} from the double",
                exchange.response
            ));
        }
        return out;
    }
    let want = exchange.lines();
    let got = parse_lines(text);
    let (Some(want_last), Some(got_last)) = (want.last(), got.last()) else {
        out.push(format!(
            "no JSON: recorded {want:?}, from the double {got:?}"
        ));
        return out;
    };
    compare("last", want_last, got_last, &mut out);
    let chunks = |lines: &[Value]| lines[..lines.len() - 1].to_vec();
    let (want_chunks, got_chunks) = (chunks(&want), chunks(&got));
    if want_chunks.is_empty() && !got_chunks.is_empty() {
        out.push(format!(
            "no chunk before the last line recorded, {} from the double: {got_chunks:?}",
            got_chunks.len()
        ));
    }
    for (i, g) in got_chunks.iter().enumerate() {
        // Each chunk must look like one the server sent (content, thinking or tool calls).
        let fits = want_chunks.iter().any(|w| {
            let mut diff = Vec::new();
            compare("", w, g, &mut diff);
            diff.is_empty()
        });
        if !fits && !want_chunks.is_empty() {
            let mut diff = Vec::new();
            compare(&format!("chunk {i}"), &want_chunks[0], g, &mut diff);
            out.push(format!(
                "chunk {i} matches no recorded chunk: {g} ({diff:?})"
            ));
        }
    }
    for kind in ["thinking", "tool_calls"] {
        let has = |lines: &[Value]| lines.iter().any(|l| l["message"].get(kind).is_some());
        if has(&want) && !has(&got) {
            out.push(format!("{kind} recorded, none from the double"));
        }
    }
    // A prompt cut to the window reports the window (file 25).
    let request = exchange.request_json();
    let num_ctx = &request["options"]["num_ctx"];
    if num_ctx.is_number()
        && want_last["prompt_eval_count"] == *num_ctx
        && got_last["prompt_eval_count"] != *num_ctx
    {
        out.push(format!(
            "prompt_eval_count {} recorded (= num_ctx), {} from the double",
            want_last["prompt_eval_count"], got_last["prompt_eval_count"]
        ));
    }
    out
}

/// File 30: the five requests, and the prompt cache's verdict on each.
async fn prompt_cache(http: &reqwest::Client, double: &OllamaDouble, text: &str) -> Vec<String> {
    let body_line = text
        .lines()
        .skip_while(|l| !l.starts_with("request body of case 1"))
        .nth(1)
        .expect("file 30 holds the request body of case 1");
    let first: Value = serde_json::from_str(body_line).expect("case 1 is JSON");
    let recorded: Vec<(u64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let field = |name: &str| -> f64 {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .and_then(|v| v.parse().ok())
                    .expect("a figure")
            };
            (
                field("prompt_eval_count=") as u64,
                field("prompt_eval_duration_ms="),
            )
        })
        .collect();
    assert_eq!(recorded.len(), 5, "file 30 has five cases");

    let mut last_changed = first.clone();
    last_changed["messages"][1]["content"] = json!("hello there my good friend, how are you");
    let mut first_changed = first.clone();
    let system = first["messages"][0]["content"].as_str().unwrap_or_default();
    first_changed["messages"][0]["content"] =
        json!(format!("You are a kind assistant. {}", &system[29..]));
    let cases = [&first, &first, &last_changed, &first_changed, &first];

    let mut out = Vec::new();
    let mut evals: Vec<(PromptEval, u64)> = Vec::new();
    for body in cases {
        let response: Value = http
            .post(format!("{}/api/chat", double.url()))
            .json(body)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON");
        let eval = double
            .chat_requests()
            .last()
            .and_then(|r| r.eval)
            .expect("a prompt evaluation");
        if response["prompt_eval_count"] != json!(eval.prompt_tokens) {
            out.push(format!(
                "30: prompt_eval_count {} is not the whole prompt {}",
                response["prompt_eval_count"], eval.prompt_tokens
            ));
        }
        evals.push((eval, response["prompt_eval_duration"].as_u64().unwrap_or(0)));
    }
    // Recorded: case 2 and 3 cost 2 % and 9 % of case 1, cases 4 and 5 88 % and 82 %.
    let base = evals[0].1.max(1) as f64;
    for (i, ((eval, duration), (_, recorded_ms))) in evals.iter().zip(&recorded).enumerate() {
        let share = *duration as f64 / base;
        let recorded_share = recorded_ms / recorded[0].1;
        let cheap = recorded_share < 0.5;
        if cheap != (share < 0.5) {
            out.push(format!(
                "30 case {}: prompt_eval_duration {:.0} % of case 1 (recorded {:.0} %); {eval:?}",
                i + 1,
                share * 100.0,
                recorded_share * 100.0
            ));
        }
        if i == 0 && eval.fresh_tokens != eval.prompt_tokens {
            out.push(format!(
                "30 case 1: a cold cache evaluates everything: {eval:?}"
            ));
        }
    }
    out
}

#[tokio::test]
async fn the_double_answers_every_recorded_exchange_as_ollama_did() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = exchanges_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the recordings")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "{} recordings in {}",
        files.len(),
        dir.display()
    );

    let double = OllamaDouble::builder()
        .model_spec(ModelSpec::gemma_notools())
        .model_spec(ModelSpec::gemma_tools())
        .model_spec(ModelSpec::gemma_think())
        .instant()
        .start()
        .await
        .expect("double");
    let http = reqwest::Client::new();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(file).expect("readable");
        let problems = if text.starts_with('#') {
            prompt_cache(&http, &double, &text).await
        } else {
            let exchange = parse_exchange(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let output = scripted_output(&exchange);
            double.set_responder(move |_| Reply::text(output.clone()));
            let (status, headers, body) = replay(&http, &double, &exchange).await;
            let mut problems = check(&exchange, status, &headers, &body);
            if name.starts_with("29_") {
                // Silently capped at the model's context length.
                let eval = double.chat_requests().last().and_then(|r| r.eval);
                if eval.map(|e| e.num_ctx) != Some(32_768) {
                    problems.push(format!("num_ctx not capped at 32768: {eval:?}"));
                }
            }
            problems
        };
        replayed += 1;
        failures.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
    }
    assert_eq!(replayed, files.len(), "every recording replayed");
    assert!(
        failures.is_empty(),
        "the double disagrees with real Ollama:\n{}",
        failures.join("\n")
    );
}
