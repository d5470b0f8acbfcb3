//! ollama-mcp-operator: reconciles `BotDeployment` resources into running bots.
//!
//! validate (pure) → build (pure) → apply (server-side apply) → status; see [`controller`].

pub mod controller;
pub mod crd;
#[cfg(test)]
mod fixtures;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod presets;
pub mod startup;

use kube::CustomResourceExt;

/// The BotDeployment CRD as YAML: what `ollama-mcp-operator crd` prints and `crds/` holds.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&crd::BotDeployment::crd())
        .unwrap_or_else(|e| format!("# could not render the CRD: {e}\n"))
}

/// The BotDeployment API as Markdown tables, one per object, generated from the CRD's schema
/// (so the reference in `docs/OPERATOR.md` is the schema's own descriptions; a test checks it).
pub fn api_reference() -> String {
    let crd = serde_json::to_value(crd::BotDeployment::crd()).unwrap_or_default();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut out = String::new();
    for top in ["spec", "status"] {
        reference_section(top, &root[top], &mut out);
    }
    out
}

/// Fields whose type is a Kubernetes core type, shown by name rather than expanded.
const KUBERNETES_TYPES: &[(&str, &str)] = &[
    (
        "affinity",
        "[Affinity](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling)",
    ),
    (
        "tolerations",
        "[][Toleration](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling)",
    ),
    (
        "resources",
        "[ResourceRequirements](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#resources)",
    ),
    (
        "env",
        "[][EnvVar](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#environment-variables)",
    ),
    (
        "conditions",
        "[][Condition](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/)",
    ),
];

fn reference_section(path: &str, schema: &serde_json::Value, out: &mut String) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    out.push_str(&format!(
        "#### `{path}`\n\n| field | type | description |\n|---|---|---|\n"
    ));
    let mut nested = Vec::new();
    for (name, field) in props {
        let child = format!("{path}.{name}");
        let kube_type = KUBERNETES_TYPES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.to_string());
        let ty = match kube_type {
            Some(t) => t,
            None => {
                let (ty, sub) = type_name(&child, field);
                if let Some(sub) = sub {
                    nested.push((child.clone(), sub.clone()));
                }
                ty
            }
        };
        let mut desc = field["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        if required.contains(&name.as_str()) {
            desc = format!("**Required.** {desc}");
        }
        out.push_str(&format!("| `{name}` | {ty} | {desc} |\n"));
    }
    out.push('\n');
    for (p, s) in nested {
        reference_section(&p, &s, out);
    }
}

/// A field's type for the table, and the object schema to expand below it (if any).
fn type_name(path: &str, f: &serde_json::Value) -> (String, Option<serde_json::Value>) {
    let anchor = |p: &str| format!("[object](#{})", p.replace('.', "").to_ascii_lowercase());
    if f["x-kubernetes-preserve-unknown-fields"] == serde_json::json!(true) {
        return ("object (free-form)".into(), None);
    }
    if let Some(values) = f["enum"].as_array() {
        let names: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str())
            .map(|v| format!("`{v}`"))
            .collect();
        return (format!("one of {}", names.join(", ")), None);
    }
    match f["type"].as_str() {
        Some("object") if f["properties"].is_object() => (anchor(path), Some(f.clone())),
        Some("object") => ("map[string]string".into(), None),
        Some("array") => {
            let items = &f["items"];
            if items["properties"].is_object() {
                (format!("[]{}", anchor(path)), Some(items.clone()))
            } else {
                (
                    format!("[]{}", items["type"].as_str().unwrap_or("object")),
                    None,
                )
            }
        }
        Some(t) => (t.to_string(), None),
        None => ("object".into(), None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn documentation_holds_the_current_api_reference() {
        let doc = include_str!("../../docs/OPERATOR.md");
        assert!(
            doc.contains(&super::api_reference()),
            "docs/OPERATOR.md's API reference differs from the CRD; paste the output of \
             `cargo run -p ollama-mcp-operator -- api-reference` between the API markers"
        );
    }
}
