//! The Helm chart and the kubectl install manifests, checked with the real tools: `helm lint
//! --strict`, `helm template` with several value sets (the rendered YAML is parsed and checked),
//! the values schema, `promtool check rules` and `promtool test rules` on the PrometheusRule, and
//! the CRD copies against the generated `crds/`.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml::Value;

const RELEASE: &str = "ops";
const NAMESPACE: &str = "ollama-mcp-system";
const CRD_FILE: &str = "botdeployments.ollama-mcp.io.yaml";
/// The labels every chart object must carry (Helm's and Kubernetes' recommended labels).
const REQUIRED_LABELS: [&str; 5] = [
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    root().join("charts/ollama-mcp-operator")
}

fn helm() -> PathBuf {
    let path = root().join(".test-deps/node/node_modules/.bin/helm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-test-deps.sh",
        path.display()
    );
    path
}

fn chart_yaml() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap()).unwrap()
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn template_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(helm());
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE, "--kube-version", "1.33.0"])
        .args(args);
    cmd
}

/// `helm template` with `args` (e.g. `--set x=y`), parsed into its documents.
fn render(args: &[&str]) -> Vec<Value> {
    let (ok, stdout, stderr) = run(&mut template_cmd(args));
    assert!(ok, "helm template {args:?} failed:\n{stderr}");
    docs(&stdout)
}

/// `helm template` that must fail; returns its error output.
fn render_error(args: &[&str]) -> String {
    let (ok, _, stderr) = run(&mut template_cmd(args));
    assert!(!ok, "helm template {args:?} should have failed");
    stderr
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{yaml}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

fn name(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// `v` with every number as a float, so that `1` and `1.0` compare equal.
fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Sequence(s) => Value::Sequence(s.iter().map(numbers_as_f64).collect()),
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    serde_yaml::from_value(v.clone()).unwrap_or_default()
}

/// Value sets the label and structure checks run against.
fn value_sets() -> Vec<Vec<&'static str>> {
    vec![
        vec![],
        vec!["-f", "VALUES_ALL"],
        vec!["--set", "watchNamespace=bots", "--set", "replicaCount=2"],
        vec![
            "--set",
            "crds.create=false",
            "--set",
            "grafanaDashboard.enabled=false",
        ],
        vec![
            "--set",
            "nameOverride=mcp",
            "--set",
            "rbac.create=false",
            "--set",
            "serviceAccount.create=false",
        ],
    ]
}

/// A values file that turns every optional object on.
fn all_enabled_values() -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        file.path(),
        r#"
metrics:
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
  botPodMonitor: {enabled: true}
  prometheusRule: {enabled: true, alertLabels: {team: chat}}
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
tracing: {otlpEndpoint: "http://otel-collector.observability:4317"}
grafanaDashboard: {namespace: monitoring, folder: Chat bots}
"#,
    )
    .unwrap();
    file
}

fn render_set(set: &[&str], all: &Path) -> Vec<Value> {
    let args: Vec<&str> = set
        .iter()
        .map(|a| {
            if *a == "VALUES_ALL" {
                all.to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    render(&args)
}

#[test]
fn helm_lint_strict_passes() {
    let all = all_enabled_values();
    for args in [vec![], vec!["-f", all.path().to_str().unwrap()]] {
        let (ok, stdout, stderr) = run(Command::new(helm())
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(&args));
        assert!(
            ok,
            "helm lint --strict {args:?} failed:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
    }
}

#[test]
fn every_object_has_the_recommended_labels() {
    let all = all_enabled_values();
    let chart = chart_yaml();
    let want_chart = format!("ollama-mcp-operator-{}", chart["version"].as_str().unwrap());
    let want_version = chart["appVersion"].as_str().unwrap().to_string();
    for set in value_sets() {
        let docs = render_set(&set, all.path());
        assert!(!docs.is_empty());
        for doc in &docs {
            let l = labels(&doc["metadata"]["labels"]);
            for key in REQUIRED_LABELS {
                assert!(
                    l.contains_key(key),
                    "{} lacks label {key} with {set:?}: {l:?}",
                    name(doc)
                );
            }
            assert_eq!(l["helm.sh/chart"], want_chart, "{}", name(doc));
            assert_eq!(l["app.kubernetes.io/instance"], RELEASE, "{}", name(doc));
            assert_eq!(
                l["app.kubernetes.io/version"],
                want_version,
                "{}",
                name(doc)
            );
            assert_eq!(l["app.kubernetes.io/managed-by"], "Helm", "{}", name(doc));
            let expected_name = if set.contains(&"nameOverride=mcp") {
                "mcp"
            } else {
                "ollama-mcp-operator"
            };
            assert_eq!(l["app.kubernetes.io/name"], expected_name, "{}", name(doc));
        }
        // The pods carry them too, and the selector uses only name and instance.
        let deploy = one(&docs, "Deployment");
        let pod_labels = labels(&deploy["spec"]["template"]["metadata"]["labels"]);
        for key in REQUIRED_LABELS {
            assert!(pod_labels.contains_key(key), "pod template lacks {key}");
        }
        let selector: BTreeSet<String> = labels(&deploy["spec"]["selector"]["matchLabels"])
            .into_keys()
            .collect();
        assert_eq!(
            selector,
            BTreeSet::from([
                "app.kubernetes.io/name".to_string(),
                "app.kubernetes.io/instance".to_string()
            ])
        );
    }
}

#[test]
fn monitoring_objects_exist_only_when_enabled() {
    let docs = render(&[]);
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "NetworkPolicy",
    ] {
        assert!(
            of_kind(&docs, kind).is_empty(),
            "{kind} rendered with default values"
        );
    }
    let docs = render(&["--set", "metrics.serviceMonitor.enabled=true"]);
    let sm = one(&docs, "ServiceMonitor");
    assert!(of_kind(&docs, "PrometheusRule").is_empty() && of_kind(&docs, "PodMonitor").is_empty());
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(
        labels(&sm["spec"]["selector"]["matchLabels"]),
        labels(&service["spec"]["selector"])
    );

    let docs = render(&["--set", "metrics.prometheusRule.enabled=true"]);
    one(&docs, "PrometheusRule");
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());

    let docs = render(&["--set", "metrics.botPodMonitor.enabled=true"]);
    let pm = one(&docs, "PodMonitor");
    // Bot series get the `bot` label the dashboard and the alerts use.
    let relabel = &pm["spec"]["podMetricsEndpoints"][0]["relabelings"][0];
    assert_eq!(relabel["targetLabel"], "bot");
    assert_eq!(
        relabel["sourceLabels"][0],
        "__meta_kubernetes_pod_label_app_kubernetes_io_instance"
    );
    assert_eq!(pm["spec"]["namespaceSelector"]["any"], true);
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "ollama-mcp-bot"
    );
}

/// The install commands of docs/INSTALL.md and the README, run as written but as `helm template`
/// (no cluster, no `--kube-version`): they render, and the release name collapses with the
/// chart's name instead of doubling it (`ollama-mcp-ollama-mcp-operator`).
#[test]
fn documented_install_commands_render_as_written() {
    for file in ["docs/INSTALL.md", "README.md"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let joined = text.replace("\\\n", " ");
        let commands: Vec<&str> = joined
            .lines()
            .map(|l| l.split(" #").next().unwrap_or_default().trim())
            .filter(|l| l.starts_with("helm install ") || l.starts_with("helm upgrade --install "))
            .collect();
        assert!(!commands.is_empty(), "{file} documents no helm install");
        for command in commands {
            let words: Vec<&str> = command.split_whitespace().collect();
            let rest = if words[1] == "install" {
                &words[2..]
            } else {
                &words[3..]
            };
            let (ok, stdout, stderr) = run(Command::new(helm())
                .current_dir(root())
                .arg("template")
                .args(rest));
            assert!(ok, "{file}: `{command}` as helm template failed:\n{stderr}");
            let docs = docs(&stdout);
            let deployment = one(&docs, "Deployment");
            assert_eq!(
                deployment["metadata"]["name"], "ollama-mcp-operator",
                "{file}: `{command}`"
            );
        }
    }
}

/// The CRD the chart and the kubectl manifests carry is the generated one in `crds/`.
#[test]
fn crd_copies_match_the_generated_crd() {
    let generated = root().join("crds").join(CRD_FILE);
    let chart_copy = chart_dir().join("files/crds").join(CRD_FILE);
    let install_copy = root().join("manifests/install").join(CRD_FILE);
    let chart_text = std::fs::read_to_string(&chart_copy).unwrap();
    let generated_text = std::fs::read_to_string(&generated).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the operator generates it (`ollama-mcp-operator crd`)",
            generated.display()
        )
    });
    assert!(
        chart_text == generated_text,
        "{} differs from crds/: run scripts/sync-crds.sh",
        chart_copy.display()
    );
    let install_text = std::fs::read_to_string(&install_copy).unwrap();
    assert!(
        install_text == generated_text,
        "{} differs from crds/: run scripts/sync-crds.sh",
        install_copy.display()
    );
}

#[test]
fn crd_follows_crds_create_and_keep() {
    let source: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("files/crds").join(CRD_FILE)).unwrap(),
    )
    .unwrap();
    let docs = render(&[]);
    let crd = one(&docs, "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "botdeployments.ollama-mcp.io");
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    // Templating adds labels and annotations only: the schema is the generated one, unchanged
    // (Helm's YAML round trip writes `1.0` as `1`, the same number to the API server).
    assert_eq!(
        numbers_as_f64(&crd["spec"]),
        numbers_as_f64(&source["spec"])
    );
    assert_eq!(crd["apiVersion"], source["apiVersion"]);

    let docs = render(&["--set", "crds.keep=false"]);
    let crd = one(&docs, "CustomResourceDefinition");
    assert!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null(),
        "keep annotation with crds.keep=false"
    );

    let docs = render(&["--set", "crds.create=false"]);
    assert!(of_kind(&docs, "CustomResourceDefinition").is_empty());
}

#[test]
fn dashboard_configmap_is_labelled_for_the_grafana_sidecar() {
    let dashboard =
        std::fs::read_to_string(chart_dir().join("dashboards/ollama-mcp.json")).unwrap();
    let docs = render(&[]);
    let cm = one(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        "Ollama MCP"
    );
    assert_eq!(cm["metadata"]["namespace"], NAMESPACE);
    let shipped = cm["data"]["ollama-mcp.json"].as_str().unwrap();
    let shipped: serde_json::Value =
        serde_json::from_str(shipped).expect("the ConfigMap holds valid JSON");
    assert_eq!(
        shipped,
        serde_json::from_str::<serde_json::Value>(&dashboard).unwrap()
    );

    let docs = render(&[
        "--set",
        "grafanaDashboard.sidecarLabel=dashboards",
        "--set",
        "grafanaDashboard.sidecarLabelValue=ollama",
        "--set",
        "grafanaDashboard.folder=Bots",
        "--set",
        "grafanaDashboard.folderAnnotation=k8s-sidecar-target-directory",
        "--set",
        "grafanaDashboard.namespace=monitoring",
    ]);
    let cm = one(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["dashboards"], "ollama");
    assert!(cm["metadata"]["labels"]["grafana_dashboard"].is_null());
    assert_eq!(
        cm["metadata"]["annotations"]["k8s-sidecar-target-directory"],
        "Bots"
    );
    assert_eq!(cm["metadata"]["namespace"], "monitoring");

    let docs = render(&["--set", "grafanaDashboard.enabled=false"]);
    assert!(of_kind(&docs, "ConfigMap").is_empty());
}

#[test]
fn network_policy_switch() {
    assert!(of_kind(&render(&[]), "NetworkPolicy").is_empty());
    let docs = render(&["--set", "networkPolicy.enabled=true"]);
    let np = one(&docs, "NetworkPolicy");
    assert_eq!(
        np["spec"]["policyTypes"],
        serde_yaml::from_str::<Value>("[Ingress, Egress]").unwrap()
    );
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        RELEASE
    );
    let ingress = np["spec"]["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], "metrics");
    assert!(
        ingress[0]["from"].is_null(),
        "no metricsFrom: any source may scrape"
    );
    let egress_ports: BTreeSet<i64> = np["spec"]["egress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(egress_ports, BTreeSet::from([53, 443, 6443, 9090, 11434]));
    // 9090 only to bot pods (their GET /status), in any namespace.
    let to_bots = np["spec"]["egress"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["ports"][0]["port"] == 9090)
        .unwrap();
    assert_eq!(
        to_bots["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "ollama-mcp-bot"
    );

    let all = all_enabled_values();
    let docs = render(&["-f", all.path().to_str().unwrap()]);
    let np = one(&docs, "NetworkPolicy");
    let from = np["spec"]["ingress"][0]["from"].as_sequence().unwrap();
    assert_eq!(
        from.len(),
        2,
        "the configured peer and the helm test pod: {from:?}"
    );
    assert_eq!(
        from[1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "test"
    );
    let egress = serde_yaml::to_string(&np["spec"]["egress"]).unwrap();
    assert!(
        egress.contains("4317"),
        "OTLP egress when tracing is on: {egress}"
    );
}

#[test]
fn values_schema_rejects_wrong_values() {
    for (set, field) in [
        ("replicaCount=many", "replicaCount"),
        ("logging.format=yaml", "logging.format"),
        ("metrics.port=99999", "metrics.port"),
        (
            "metrics.serviceMonitor.interval=soon",
            "metrics.serviceMonitor.interval",
        ),
        ("tracing.protocol=http/json", "tracing.protocol"),
        ("crds.create=maybe", "crds.create"),
        ("replicas=2", "replicas"),
        ("image.digest=latest", "image.digest"),
    ] {
        let err = render_error(&["--set", set]);
        assert!(
            err.contains("schema") && err.contains(field),
            "--set {set}: {err}"
        );
    }
    // Right types pass.
    render(&[
        "--set",
        "replicaCount=3",
        "--set",
        "metrics.serviceMonitor.interval=1m30s",
    ]);
}

#[test]
fn deployment_is_restricted_and_wires_the_values() {
    let docs = render(&[]);
    let deploy = one(&docs, "Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    let app_version = chart_yaml()["appVersion"].as_str().unwrap().to_string();
    assert_eq!(
        c["image"],
        format!("ghcr.io/ollama-mcp/ollama-mcp-operator:{app_version}").as_str()
    );
    let args: Vec<String> = serde_yaml::from_value(c["args"].clone()).unwrap();
    assert_eq!(
        args,
        ["run", "--metrics-addr=0.0.0.0:8080", "--log-format=json"]
    );
    let env = |c: &Value, n: &str| {
        c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        env(c, "BOT_IMAGE")["value"],
        format!("ghcr.io/ollama-mcp/ollama-mcp-bot:{app_version}").as_str()
    );
    assert_eq!(
        env(c, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert!(env(c, "OTEL_EXPORTER_OTLP_ENDPOINT").is_null());
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "Recreate",
        "one replica without election must not overlap"
    );

    let docs = render(&[
        "--set",
        "replicaCount=2",
        "--set",
        "watchNamespace=bots",
        "--set",
        "botImage.tag=9.9.9",
        "--set",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "--set",
        "tracing.otlpEndpoint=http://collector:4317",
        "--set",
        "logging.format=text",
    ]);
    let deploy = one(&docs, "Deployment");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = serde_yaml::from_value(c["args"].clone()).unwrap();
    assert_eq!(
        args,
        [
            "run",
            "--metrics-addr=0.0.0.0:8080",
            "--log-format=text",
            "--namespace=bots",
            "--leader-elect"
        ]
    );
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(
        c["image"]
            .as_str()
            .unwrap()
            .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        env(c, "BOT_IMAGE")["value"],
        "ghcr.io/ollama-mcp/ollama-mcp-bot:9.9.9"
    );
    assert_eq!(
        env(c, "OTEL_EXPORTER_OTLP_ENDPOINT")["value"],
        "http://collector:4317"
    );
}

fn rules_of(doc: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in doc["rules"].as_sequence().unwrap() {
        let strings = |k: &str| -> Vec<String> { serde_yaml::from_value(rule[k].clone()).unwrap() };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// The operator's rules as `manifests/install/rbac.yaml` grants them; operator/tests/rbac.rs
/// derives them from the API calls the controller makes, so this is not a hand-copied list.
fn expected_namespaced_rules() -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("manifests/install/rbac.yaml")).unwrap();
    let docs = docs(&text);
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "ollama-mcp-operator")
        .expect("the operator's ClusterRole in manifests/install/rbac.yaml");
    rules_of(role)
}

#[test]
fn rbac_is_the_least_the_operator_needs() {
    let docs = render(&[]);
    // One ClusterRole: the namespaced rules. Nothing cluster-scoped (the CRD check uses
    // discovery).
    let roles = of_kind(&docs, "ClusterRole");
    assert_eq!(roles.len(), 1);
    assert_eq!(rules_of(roles[0]), expected_namespaced_rules());
    assert!(
        !serde_yaml::to_string(&docs)
            .unwrap()
            .contains("customresourcedefinitions"),
        "no permission on CRDs"
    );
    let all_yaml = serde_yaml::to_string(&docs).unwrap();
    assert!(
        !all_yaml.contains("'*'") && !all_yaml.contains("\"*\""),
        "no wildcard in RBAC"
    );
    assert!(
        of_kind(&docs, "Role").is_empty(),
        "no Lease permission without leader election"
    );
    let binding = of_kind(&docs, "ClusterRoleBinding");
    assert!(
        binding
            .iter()
            .all(|b| b["subjects"][0]["namespace"] == NAMESPACE)
    );

    // One namespace: a Role there, a Lease Role at home when electing, nothing cluster-wide.
    let docs = render(&["--set", "watchNamespace=bots", "--set", "replicaCount=2"]);
    assert!(of_kind(&docs, "ClusterRole").is_empty());
    let roles = of_kind(&docs, "Role");
    let watched = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "bots")
        .unwrap();
    assert_eq!(rules_of(watched), expected_namespaced_rules());
    let lease = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == NAMESPACE)
        .unwrap();
    let lease_rules: BTreeSet<String> = rules_of(lease)
        .into_iter()
        .map(|(g, r, v)| format!("{g}/{r}:{v}"))
        .collect();
    assert_eq!(
        lease_rules,
        BTreeSet::from([
            "coordination.k8s.io/leases:create".to_string(),
            "coordination.k8s.io/leases:get".to_string(),
            "coordination.k8s.io/leases:update".to_string(),
        ])
    );
    let rb = of_kind(&docs, "RoleBinding");
    assert_eq!(rb.len(), 2);

    let docs = render(&["--set", "rbac.create=false"]);
    assert!(of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "Role").is_empty());
}

#[test]
fn helm_test_pod_checks_readyz() {
    let docs = render(&[]);
    let pods = of_kind(&docs, "Pod");
    assert_eq!(pods.len(), 1);
    let pod = pods[0];
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    let script = pod["spec"]["containers"][0]["args"][0].as_str().unwrap();
    let service = one(&docs, "Service")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        script.contains(&format!("http://{service}.{NAMESPACE}.svc:8080/readyz")),
        "{script}"
    );
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
}

fn rules_from_chart() -> Value {
    let docs = render(&["--set", "metrics.prometheusRule.enabled=true"]);
    one(&docs, "PrometheusRule")["spec"].clone()
}

#[test]
fn prometheus_rules_pass_promtool_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, serde_yaml::to_string(&rules_from_chart()).unwrap()).unwrap();
    let (ok, stdout, stderr) = run(Command::new("promtool").args(["check", "rules"]).arg(&path));
    assert!(ok, "promtool check rules:\n{stdout}\n{stderr}");
    assert!(stdout.contains("SUCCESS: 6 rules found"), "{stdout}");
}

/// The alerts fire on the series they are about, and stay quiet on healthy ones.
#[test]
fn prometheus_alerts_fire_as_intended() {
    let dir = tempfile::tempdir().unwrap();
    let job = format!("{RELEASE}-ollama-mcp-operator-metrics");
    let tests = format!(
        r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="bots",namespace="chat",bot="helper",pod="helper-0"}}'
        values: '1 1 0x20'
      - series: 'up{{job="bots",namespace="chat",bot="healthy",pod="healthy-0"}}'
        values: '1x22'
      - series: 'ollama_mcp_bot_messages_total{{namespace="chat",bot="helper",outcome="answered"}}'
        values: '0+10x30'
      - series: 'ollama_mcp_bot_messages_total{{namespace="chat",bot="helper",outcome="error"}}'
        values: '0+5x30'
      - series: 'ollama_mcp_bot_messages_total{{namespace="chat",bot="healthy",outcome="answered"}}'
        values: '0+10x30'
      - series: 'ollama_mcp_bot_messages_total{{namespace="chat",bot="healthy",outcome="error"}}'
        values: '0x30'
      - series: 'ollama_mcp_bot_model_requests_total{{namespace="chat",bot="helper",model="nomodel",outcome="error"}}'
        values: '0+2x30'
      - series: 'ollama_mcp_bot_model_requests_total{{namespace="chat",bot="helper",model="llama3.2",outcome="error"}}'
        values: '0+1x30'
      - series: 'ollama_mcp_bot_model_requests_total{{namespace="chat",bot="helper",model="llama3.2",outcome="ok"}}'
        values: '0+5x30'
      - series: 'ollama_mcp_bot_mcp_server_up{{namespace="chat",bot="helper",server="fetch"}}'
        values: '1 0x20'
      - series: 'ollama_mcp_bot_mcp_server_up{{namespace="chat",bot="helper",server="memory"}}'
        values: '1x20'
      - series: 'ollama_mcp_operator_reconcile_errors_total{{job="{job}",namespace="{NAMESPACE}",reason="apply"}}'
        values: '0+1x30'
    alert_rule_test:
      - eval_time: 4m
        alertname: OllamaMcpBotDown
        exp_alerts: []
      - eval_time: 10m
        alertname: OllamaMcpBotDown
        exp_alerts:
          - exp_labels: {{severity: critical, team: chat, job: bots, namespace: chat, bot: helper, pod: helper-0}}
      - eval_time: 20m
        alertname: OllamaMcpBotErrorRate
        exp_alerts:
          - exp_labels: {{severity: warning, team: chat, namespace: chat, bot: helper}}
      - eval_time: 20m
        alertname: OllamaMcpModelNotReady
        exp_alerts:
          - exp_labels: {{severity: critical, team: chat, namespace: chat, bot: helper, model: nomodel}}
      - eval_time: 3m
        alertname: OllamaMcpServerDown
        exp_alerts: []
      - eval_time: 10m
        alertname: OllamaMcpServerDown
        exp_alerts:
          - exp_labels: {{severity: warning, team: chat, namespace: chat, bot: helper, server: fetch}}
      - eval_time: 10m
        alertname: OllamaMcpOperatorDown
        exp_alerts:
          - exp_labels: {{severity: critical, team: chat, job: {job}, namespace: {NAMESPACE}}}
      - eval_time: 25m
        alertname: OllamaMcpReconcileErrors
        exp_alerts:
          - exp_labels: {{severity: warning, team: chat, namespace: {NAMESPACE}, reason: apply}}
  - interval: 1m
    input_series:
      - series: 'up{{job="{job}",namespace="{NAMESPACE}",pod="op-0"}}'
        values: '1x20'
      - series: 'up{{job="{job}",namespace="{NAMESPACE}",pod="op-1"}}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: OllamaMcpOperatorDown
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'up{{job="{job}",namespace="{NAMESPACE}",pod="op-0"}}'
        values: '1 0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: OllamaMcpOperatorDown
        exp_alerts:
          - exp_labels: {{severity: critical, team: chat, job: {job}, namespace: {NAMESPACE}}}
"#
    );
    // alertLabels from the values reach every alert (`team` in every expectation above).
    let docs = render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.alertLabels.team=chat",
    ]);
    let mut spec = one(&docs, "PrometheusRule")["spec"].clone();
    // Unit tests compare annotations too; their wording is checked by `promtool check rules`.
    for group in spec["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rule.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&spec).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("tests.yaml"), tests).unwrap();
    let (ok, stdout, stderr) = run(Command::new("promtool")
        .args(["test", "rules", "tests.yaml"])
        .current_dir(dir.path()));
    assert!(ok, "promtool test rules:\n{stdout}\n{stderr}");
}

/// `kubectl apply -k manifests/install` without kustomize: every file parses, the kustomization
/// lists them all, every object carries the recommended labels, and RBAC matches the chart's.
#[test]
fn install_manifests_are_complete_and_consistent() {
    let dir = root().join("manifests/install");
    let kustomization: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    assert_eq!(kustomization["kind"], "Kustomization");
    let listed: BTreeSet<String> =
        serde_yaml::from_value(kustomization["resources"].clone()).unwrap();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml must list every manifest"
    );
    let namespace = kustomization["namespace"].as_str().unwrap();
    let common: BTreeMap<String, String> = kustomization["labels"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|l| labels(&l["pairs"]))
        .collect();

    let mut objects = Vec::new();
    for file in &present {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for doc in docs(&text) {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{file}: an object without apiVersion/kind"
            );
            objects.push(doc);
        }
    }
    let required = [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
    ];
    for obj in &objects {
        let mut l = labels(&obj["metadata"]["labels"]);
        // kustomize adds the common labels; an object's own label must not contradict them.
        for (k, v) in &common {
            if let Some(own) = l.get(k) {
                assert_eq!(
                    own,
                    v,
                    "{}: label {k} differs from the kustomization's",
                    name(obj)
                );
            }
            l.insert(k.clone(), v.clone());
        }
        for key in required {
            assert!(l.contains_key(key), "{} lacks {key}", name(obj));
        }
        if let Some(ns) = obj["metadata"]["namespace"].as_str() {
            assert_eq!(ns, namespace, "{}", name(obj));
        }
    }
    assert_eq!(
        common["app.kubernetes.io/version"],
        chart_yaml()["appVersion"].as_str().unwrap()
    );

    let chart = render(&[]);
    let chart_roles = of_kind(&chart, "ClusterRole");
    assert_eq!(
        of_kind(&objects, "ClusterRole").len(),
        chart_roles.len(),
        "the same ClusterRoles as the chart's"
    );
    for role in of_kind(&objects, "ClusterRole") {
        let twin = chart_roles[0];
        assert_eq!(
            rules_of(role),
            rules_of(twin),
            "{} differs from the chart's",
            name(role)
        );
    }
    let deploy = one(&objects, "Deployment");
    let chart_deploy = one(&chart, "Deployment");
    let (c, cc) = (
        &deploy["spec"]["template"]["spec"]["containers"][0],
        &chart_deploy["spec"]["template"]["spec"]["containers"][0],
    );
    for key in [
        "securityContext",
        "livenessProbe",
        "readinessProbe",
        "ports",
        "args",
        "resources",
    ] {
        assert_eq!(
            c[key], cc[key],
            "manifests/install Deployment {key} differs from the chart's"
        );
    }
    assert_eq!(
        deploy["spec"]["template"]["spec"]["securityContext"],
        chart_deploy["spec"]["template"]["spec"]["securityContext"]
    );
    let sa = one(&objects, "ServiceAccount")["metadata"]["name"].clone();
    assert_eq!(deploy["spec"]["template"]["spec"]["serviceAccountName"], sa);
    let crd = one(&objects, "CustomResourceDefinition");
    assert_eq!(
        numbers_as_f64(&crd["spec"]),
        numbers_as_f64(&one(&chart, "CustomResourceDefinition")["spec"])
    );
}
