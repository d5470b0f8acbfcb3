//! The generated CRD: drift against `crds/`, its CEL rules evaluated as the API server would
//! (kube-cel), their cost estimate, and the example manifests.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::PathBuf;

use kube::Resource;
use kube_cel::{Validator, compile_schema, estimate_rule_cost};
use ollama_mcp_operator::controller::render::{Owner, render};
use ollama_mcp_operator::controller::validate::{SecretVersions, validate};
use ollama_mcp_operator::crd::BotDeployment;
use ollama_mcp_operator::crd_yaml;
use serde_json::{Value, json};

const BOT_IMAGE: &str = "ghcr.io/ollama-mcp/bot:0.1.0";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn schema() -> Value {
    let crd: Value = serde_yaml::from_str(&crd_yaml()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn crds_directory_holds_the_generated_crd() {
    let path = repo("crds/botdeployments.ollama-mcp.io.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == crd_yaml(),
        "{} differs from the CRD generated from operator/src/crd.rs; regenerate it (and its copies in \
         the chart and manifests/install) with\n  scripts/sync-crds.sh --generate",
        path.display()
    );
}

#[test]
fn crd_shape() {
    let crd: Value = serde_yaml::from_str(&crd_yaml()).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        json!("botdeployments.ollama-mcp.io")
    );
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["bd"]));
    assert_eq!(crd["spec"]["scope"], json!("Namespaced"));
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], json!("v1alpha1"));
    assert_eq!(v["subresources"], json!({"status": {}}));
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Ready", "Reason", "Model", "Age"]);
    let reason = &v["additionalPrinterColumns"][1];
    assert_eq!(
        reason["jsonPath"],
        json!(".status.conditions[?(@.type==\"Ready\")].reason")
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], json!(["discord", "model", "ollama"]));
    let server = &spec["properties"]["mcpServers"]["items"];
    assert_eq!(server["required"], json!(["name"]));
    assert_eq!(
        server["properties"]["preset"]["enum"],
        json!([
            "memory",
            "fetch",
            "puppeteer",
            "sequential-thinking",
            "aws-documentation",
        ])
    );
    assert_eq!(
        server["properties"]["transport"]["enum"],
        json!(["stdio", "http"])
    );
    assert_eq!(server["properties"]["port"]["minimum"], json!(1.0));
    assert_eq!(server["properties"]["port"]["maximum"], json!(65535.0));
    // Every field is documented (descriptions become `kubectl explain`).
    fn undocumented(path: &str, s: &Value, out: &mut Vec<String>) {
        if let Some(props) = s["properties"].as_object() {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                // k8s-openapi types (Affinity, EnvVar...) document themselves.
                if v["description"].as_str().is_none_or(str::is_empty) {
                    out.push(p.clone());
                }
                if !p.contains("affinity")
                    && !p.contains("tolerations")
                    && !p.contains("resources")
                    && !p.contains(".env")
                {
                    undocumented(&p, v, out);
                    undocumented(&p, &v["items"], out);
                }
            }
        }
    }
    let mut missing = Vec::new();
    undocumented("spec", spec, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

/// Paths of the enums that list `null` (kubectl's client-side validation of a `v1 List` refuses
/// them: `unknown object type "nil"`).
fn enums_with_null(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(values)) = map.get("enum")
                && values.iter().any(Value::is_null)
            {
                out.push(path.to_string());
            }
            for (k, child) in map {
                enums_with_null(&format!("{path}.{k}"), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                enums_with_null(&format!("{path}[{i}]"), child, out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_enum_in_the_crd_holds_null() {
    let generated: Value = serde_yaml::from_str(&crd_yaml()).unwrap();
    let mut found = Vec::new();
    enums_with_null("crd", &generated, &mut found);
    for file in [
        "crds/botdeployments.ollama-mcp.io.yaml",
        "charts/ollama-mcp-operator/files/crds/botdeployments.ollama-mcp.io.yaml",
        "manifests/install/botdeployments.ollama-mcp.io.yaml",
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let on_disk: Value = serde_yaml::from_str(&text).unwrap();
        enums_with_null(file, &on_disk, &mut found);
    }
    assert_eq!(found, Vec::<String>::new(), "enums that list null");
}

fn doc(spec: Value) -> Value {
    json!({"apiVersion": "ollama-mcp.io/v1alpha1", "kind": "BotDeployment",
           "metadata": {"name": "helper", "namespace": "bots"}, "spec": spec})
}

fn minimal_spec() -> Value {
    json!({
        "discord": {"tokenSecretRef": {"name": "t", "key": "token"}},
        "model": {"name": "llama3.2"},
        "ollama": {"url": "http://ollama:11434"},
    })
}

/// The CEL messages the API server would answer with.
fn cel_errors(obj: &Value) -> Vec<String> {
    match Validator::new().validate(&schema(), obj, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| e.to_string())
            .collect(),
    }
}

#[track_caller]
fn assert_rejected(obj: &Value, message: &str) {
    let errors = cel_errors(obj);
    assert!(
        errors.iter().any(|e| e.contains(message)),
        "expected `{message}`, got {errors:#?}"
    );
}

#[test]
fn cel_rules() {
    assert_eq!(cel_errors(&doc(minimal_spec())), Vec::<String>::new());

    let mut both = minimal_spec();
    both["ollama"]["managed"] = json!({});
    assert_rejected(&doc(both), "set exactly one of ollama.url");
    let mut neither = minimal_spec();
    neither["ollama"] = json!({});
    assert_rejected(&doc(neither), "set exactly one of ollama.url");

    let mut dup = minimal_spec();
    dup["mcpServers"] =
        json!([{"name": "a", "preset": "memory"}, {"name": "a", "preset": "fetch"}]);
    assert_rejected(&doc(dup), "mcpServers names must be unique");

    let mut two_kinds = minimal_spec();
    two_kinds["mcpServers"] = json!([{"name": "a", "preset": "memory", "url": "https://x/mcp"}]);
    assert_rejected(&doc(two_kinds), "give exactly one of preset or image");
    let mut no_kind = minimal_spec();
    no_kind["mcpServers"] = json!([{"name": "a"}]);
    assert_rejected(&doc(no_kind), "give exactly one of preset or image");

    let mut headers = minimal_spec();
    headers["mcpServers"] =
        json!([{"name": "a", "image": "i:1", "headers": [{"name": "A", "value": "v"}]}]);
    assert_rejected(&doc(headers), "headers apply only to remote servers");
    let mut header_both = minimal_spec();
    header_both["mcpServers"] = json!([{"name": "a", "url": "https://x/mcp",
        "headers": [{"name": "A", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]);
    assert_rejected(&doc(header_both), "give exactly one of value or valueFrom");

    let mut long = doc(minimal_spec());
    long["metadata"]["name"] = json!("a".repeat(41));
    assert_rejected(&long, "metadata.name must be at most 40 characters");
}

#[test]
fn cel_rules_fit_the_api_servers_cost_budget() {
    // Each rule is estimated against the schema node it is attached to (its `self`).
    let mut rules: Vec<(String, Value)> = Vec::new();
    fn collect(s: &Value, out: &mut Vec<(String, Value)>) {
        match s {
            Value::Object(m) => {
                if let Some(Value::Array(vs)) = m.get("x-kubernetes-validations") {
                    out.extend(
                        vs.iter()
                            .filter_map(|v| v["rule"].as_str().map(|r| (r.to_string(), s.clone()))),
                    );
                }
                m.values().for_each(|v| collect(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&schema(), &mut rules);
    assert_eq!(
        rules.len(),
        6,
        "{:#?}",
        rules.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    for (rule, node) in rules {
        let warnings = estimate_rule_cost(&rule, &compile_schema(&node));
        assert!(warnings.is_empty(), "`{rule}`: {warnings:?}");
    }
}

/// Every document of every example manifest.
fn examples() -> Vec<(String, Vec<Value>)> {
    let dir = repo("manifests/examples");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = serde_yaml::Deserializer::from_str(&text)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .collect();
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            docs,
        ));
    }
    out
}

#[test]
fn examples_are_valid_with_the_secrets_they_ship() {
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "every-field.yaml",
            "full.yaml",
            "minimal.yaml",
            "remote-mcp.yaml"
        ]
    );
    for (file, docs) in examples {
        let secrets: SecretVersions = docs
            .iter()
            .filter(|d| d["kind"] == json!("Secret"))
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                    Some("1".to_string()),
                )
            })
            .collect();
        // The Secrets are templates: placeholders, never a real token.
        for d in docs.iter().filter(|d| d["kind"] == json!("Secret")) {
            for (k, v) in d["stringData"].as_object().expect("stringData") {
                assert!(
                    v.as_str().unwrap().contains("REPLACE-WITH"),
                    "{file}: {k} is not a placeholder"
                );
            }
        }
        let bds: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == json!("BotDeployment"))
            .collect();
        assert_eq!(bds.len(), 1, "{file}");
        for d in bds {
            let mut bd: BotDeployment =
                serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(cel_errors(d), Vec::<String>::new(), "{file}");
            // As it comes from the API server: with a uid, which owner references need.
            bd.metadata.uid = Some("uid".into());
            let bot =
                validate(&bd, &secrets, Some(BOT_IMAGE)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let owner = Owner {
                name: bd.metadata.name.clone().unwrap(),
                namespace: bd.metadata.namespace.clone().unwrap(),
                reference: bd.controller_owner_ref(&()).unwrap(),
            };
            let children = render(&owner, &bot).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(children.deployment.metadata.name, bd.metadata.name);
        }
    }
}
