//! Validation of a BotDeployment beyond what the CRD schema enforces (pure: no client).
//!
//! The schema catches shapes and ranges when the API server has the CRD; this catches the rest
//! (port clashes, Secrets that do not exist, ids that are not numbers, ...) and repeats the
//! schema's cross-field rules so that an object created before a schema change is still caught.
//! Every problem names the field and says what to change.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;

use crate::crd::{BotDeployment, BotDeploymentSpec, DiscordId, McpServerSpec, Transport};

use super::build::BOT_METRICS_PORT;

/// Longest BotDeployment name: it prefixes child names (`<name>-metrics`, `<name>-ollama`) and
/// is a label value.
pub const MAX_NAME_LEN: usize = 40;

/// What reconcile learnt about the Secrets the spec references: name → resourceVersion, or
/// `None` when the Secret does not exist. Only metadata is ever read.
pub type SecretVersions = BTreeMap<String, Option<String>>;

/// One thing wrong with the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field path, e.g. `spec.mcpServers[1].port`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem of a spec, shown as one message (`; ` between problems).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec(pub Vec<Problem>);

/// The Secrets the spec references (Discord token, remote-server headers, sidecar env), except
/// those marked optional.
pub fn referenced_secrets(spec: &BotDeploymentSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert(spec.discord.token_secret_ref.name.clone());
    for s in &spec.mcp_servers {
        for h in &s.headers {
            if let Some(from) = &h.value_from {
                names.insert(from.secret_key_ref.name.clone());
            }
        }
        for e in &s.env {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                && r.optional != Some(true)
            {
                names.insert(r.name.clone());
            }
        }
    }
    if let Some(m) = &spec.ollama.managed {
        for e in &m.env {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                && r.optional != Some(true)
            {
                names.insert(r.name.clone());
            }
        }
    }
    names
}

/// Checks the BotDeployment; `default_image` is the operator's `--bot-image`.
pub fn validate(
    bd: &BotDeployment,
    secrets: &SecretVersions,
    default_image: Option<&str>,
) -> Result<(), InvalidSpec> {
    let mut p = Problems::default();
    let name = bd.name_any();
    if name.len() > MAX_NAME_LEN
        || !is_dns_label(&name)
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        p.add(
            "metadata.name",
            format!(
                "`{name}` must be at most {MAX_NAME_LEN} lower-case letters, digits and '-', starting with a letter; \
                 recreate the BotDeployment under a shorter name"
            ),
        );
    }
    if bd.namespace().is_none() {
        p.add(
            "metadata.namespace",
            "a BotDeployment is namespaced; give it a namespace".into(),
        );
    }
    let spec = &bd.spec;
    validate_discord(spec, secrets, &mut p);
    validate_model(spec, &mut p);
    validate_ollama(spec, &mut p);
    validate_mcp_servers(spec, secrets, &mut p);
    if let Some(image) = &spec.image {
        check_image("spec.image", image, &mut p);
    } else if default_image.is_none_or(|i| i.trim().is_empty()) {
        p.add(
            "spec.image",
            "no bot image: set spec.image, or start the operator with --bot-image (BOT_IMAGE)"
                .into(),
        );
    }
    if let Some(size) = spec.persistence.as_ref().and_then(|s| s.size.as_deref()) {
        check_quantity("spec.persistence.size", size, &mut p);
    }
    if let Some(interval) = &spec.metrics.interval
        && !is_prometheus_duration(interval)
    {
        p.add(
            "spec.metrics.interval",
            format!("`{interval}` is not a duration like `30s` or `1m`"),
        );
    }
    for k in spec.pod_annotations.keys() {
        if k.starts_with("ollama-mcp.io/") {
            p.add(
                "spec.podAnnotations",
                format!("`{k}` is reserved for the operator; choose another annotation key"),
            );
        }
    }
    p.finish()
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: String) {
        self.0.push(Problem {
            field: field.into(),
            message,
        });
    }
    fn finish(self) -> Result<(), InvalidSpec> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidSpec(self.0))
        }
    }
}

fn validate_discord(spec: &BotDeploymentSpec, secrets: &SecretVersions, p: &mut Problems) {
    let d = &spec.discord;
    let r = &d.token_secret_ref;
    if r.name.trim().is_empty() || r.key.trim().is_empty() {
        p.add(
            "spec.discord.tokenSecretRef",
            "give the Secret's name and the key that holds the token".into(),
        );
    } else {
        check_secret("spec.discord.tokenSecretRef", &r.name, &r.key, secrets, p);
    }
    if let Some(base) = &d.api_base {
        check_url("spec.discord.apiBase", base, p);
    }
    if d.command_prefix
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        p.add(
            "spec.discord.commandPrefix",
            "must not be blank (the default is `!`)".into(),
        );
    }
    for (i, t) in d.triggers.iter().enumerate() {
        if t.trim().is_empty() {
            p.add(
                format!("spec.discord.triggers[{i}]"),
                "a trigger must not be blank; remove it".into(),
            );
        }
    }
    let a = &d.access;
    for (field, ids) in [
        ("allowedGuilds", &a.allowed_guilds),
        ("allowedChannels", &a.allowed_channels),
        ("allowedRoles", &a.allowed_roles),
        ("allowedUsers", &a.allowed_users),
        ("deniedUsers", &a.denied_users),
        ("adminUsers", &a.admin_users),
        ("adminRoles", &a.admin_roles),
    ] {
        for (i, id) in ids.iter().enumerate() {
            if parse_id(id).is_none() {
                p.add(
                    format!("spec.discord.access.{field}[{i}]"),
                    format!("`{}` is not a Discord id; copy it with Developer Mode on (digits only, quoted)", id.0),
                );
            }
        }
    }
}

/// A Discord id as a number (the bot's configuration holds numbers).
pub fn parse_id(id: &DiscordId) -> Option<u64> {
    let s = id.0.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn validate_model(spec: &BotDeploymentSpec, p: &mut Problems) {
    let m = &spec.model;
    if !is_model_name(&m.name) {
        p.add(
            "spec.model.name",
            format!(
                "`{}` is not an Ollama model name like `llama3.2` or `qwen3:8b`",
                m.name
            ),
        );
    }
    for (i, a) in m.allowed.iter().enumerate() {
        if !is_model_name(a) {
            p.add(
                format!("spec.model.allowed[{i}]"),
                format!("`{a}` is not an Ollama model name"),
            );
        }
    }
    if m.max_tool_rounds == Some(0) {
        p.add("spec.model.maxToolRounds", "must be at least 1".into());
    }
    if m.history_token_budget.is_some_and(|b| b < 256) {
        p.add(
            "spec.model.historyTokenBudget",
            "must be at least 256 tokens".into(),
        );
    }
    if m.request_timeout_seconds == Some(0) {
        p.add(
            "spec.model.requestTimeoutSeconds",
            "must be at least 1".into(),
        );
    }
}

fn is_model_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'))
}

fn validate_ollama(spec: &BotDeploymentSpec, p: &mut Problems) {
    let o = &spec.ollama;
    match (&o.url, &o.managed) {
        (Some(_), Some(_)) | (None, None) => p.add(
            "spec.ollama",
            "set exactly one of ollama.url (an Ollama you run) or ollama.managed (the operator runs one)".into(),
        ),
        (Some(url), None) => check_url("spec.ollama.url", url, p),
        (None, Some(m)) => {
            if let Some(image) = &m.image {
                check_image("spec.ollama.managed.image", image, p);
            }
            for (i, model) in m.models.iter().enumerate() {
                if !is_model_name(model) {
                    p.add(format!("spec.ollama.managed.models[{i}]"), format!("`{model}` is not an Ollama model name"));
                }
            }
            if let Some(size) = m.storage.as_ref().and_then(|s| s.size.as_deref()) {
                check_quantity("spec.ollama.managed.storage.size", size, p);
            }
            check_env_names("spec.ollama.managed.env", &m.env, p);
        }
    }
}

fn validate_mcp_servers(spec: &BotDeploymentSpec, secrets: &SecretVersions, p: &mut Problems) {
    let mut names = BTreeSet::new();
    // Ports already taken in the pod's shared network namespace.
    let mut ports: BTreeMap<i32, String> = BTreeMap::new();
    ports.insert(i32::from(BOT_METRICS_PORT), "the bot's metrics".into());
    for (i, s) in spec.mcp_servers.iter().enumerate() {
        let f = |field: &str| format!("spec.mcpServers[{i}].{field}");
        if s.name.is_empty() || s.name.len() > 40 || !is_dns_label(&s.name) {
            p.add(
                f("name"),
                format!("`{}` must be 1-40 lower-case letters, digits and '-' (it names the container mcp-<name>)", s.name),
            );
        }
        if !names.insert(s.name.as_str()) {
            p.add(
                f("name"),
                format!(
                    "`{}` is used by two servers; give each a unique name",
                    s.name
                ),
            );
        }
        let sidecar = s.preset.is_some() || s.image.is_some();
        match (&s.url, sidecar) {
            (Some(_), true) | (None, false) => p.add(
                format!("spec.mcpServers[{i}]"),
                format!(
                    "server `{}`: give exactly one of preset or image (a sidecar) or url (a remote server)",
                    s.name
                ),
            ),
            (Some(url), false) => validate_remote(s, url, secrets, &f, p),
            (None, true) => validate_sidecar(s, &f, &mut ports, secrets, p),
        }
        for (list, field) in [
            (&s.tools.allow, "allow"),
            (&s.tools.deny, "deny"),
            (&s.tools.require_approval, "requireApproval"),
        ] {
            if list.iter().any(|t| t.trim().is_empty()) {
                p.add(
                    f(&format!("tools.{field}")),
                    "tool names must not be blank".into(),
                );
            }
        }
        for (j, e) in s.egress.iter().enumerate() {
            if !(1..=65535).contains(&e.port) {
                p.add(
                    f(&format!("egress[{j}].port")),
                    format!("{} is not a port (1-65535)", e.port),
                );
            }
            if let Some(cidr) = &e.cidr
                && !is_cidr(cidr)
            {
                p.add(
                    f(&format!("egress[{j}].cidr")),
                    format!("`{cidr}` is not a CIDR like `10.0.0.0/8`"),
                );
            }
        }
        if s.call_timeout_seconds == Some(0) {
            p.add(f("callTimeoutSeconds"), "must be at least 1".into());
        }
        if s.startup_timeout_seconds == Some(0) {
            p.add(f("startupTimeoutSeconds"), "must be at least 1".into());
        }
    }
}

fn validate_remote(
    s: &McpServerSpec,
    url: &str,
    secrets: &SecretVersions,
    f: &dyn Fn(&str) -> String,
    p: &mut Problems,
) {
    check_url(&f("url"), url, p);
    let sidecar_only: [(&str, bool); 7] = [
        ("command", !s.command.is_empty()),
        ("args", !s.args.is_empty()),
        ("env", !s.env.is_empty()),
        ("transport", s.transport.is_some()),
        ("port", s.port.is_some()),
        ("path", s.path.is_some()),
        ("resources", s.resources.is_some()),
    ];
    for (field, set) in sidecar_only {
        if set {
            p.add(
                f(field),
                format!(
                    "server `{}` is remote (url): {field} applies only to sidecars; remove it",
                    s.name
                ),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (j, h) in s.headers.iter().enumerate() {
        let hf = f(&format!("headers[{j}]"));
        if h.name.is_empty()
            || !h
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b))
        {
            p.add(
                format!("{hf}.name"),
                format!("`{}` is not an HTTP header name", h.name),
            );
        }
        if !seen.insert(h.name.to_ascii_lowercase()) {
            p.add(
                format!("{hf}.name"),
                format!("header `{}` is given twice", h.name),
            );
        }
        match (&h.value, &h.value_from) {
            (Some(_), None) => {}
            (None, Some(from)) => {
                let r = &from.secret_key_ref;
                check_secret(
                    &format!("{hf}.valueFrom.secretKeyRef"),
                    &r.name,
                    &r.key,
                    secrets,
                    p,
                );
            }
            _ => p.add(hf, "give exactly one of value or valueFrom".into()),
        }
    }
}

fn validate_sidecar(
    s: &McpServerSpec,
    f: &dyn Fn(&str) -> String,
    ports: &mut BTreeMap<i32, String>,
    secrets: &SecretVersions,
    p: &mut Problems,
) {
    if s.preset.is_some() && !s.command.is_empty() {
        p.add(
            f("command"),
            format!("server `{}` uses a preset, which fixes the command; remove command (args are appended)", s.name),
        );
    }
    if let Some(image) = &s.image {
        check_image(&f("image"), image, p);
    }
    if !s.headers.is_empty() {
        p.add(
            f("headers"),
            "headers apply only to remote servers (url)".into(),
        );
    }
    let transport = s.transport.unwrap_or_default();
    if s.preset.is_some() && transport == Transport::Http {
        p.add(
            f("transport"),
            "presets speak stdio and run behind the bridge; remove transport".into(),
        );
    }
    match transport {
        Transport::Http => {
            match s.port {
                None => p.add(
                    f("port"),
                    format!(
                        "server `{}` serves HTTP itself: give the port it listens on",
                        s.name
                    ),
                ),
                Some(port) if !(1..=65535).contains(&port) => {
                    p.add(f("port"), format!("{port} is not a port (1-65535)"));
                }
                Some(port) => {
                    if let Some(owner) = ports.insert(port, format!("server `{}`", s.name)) {
                        p.add(f("port"), format!("port {port} is already used by {owner} in the same pod; choose another"));
                    }
                }
            }
        }
        Transport::Stdio => {
            for (field, set) in [("port", s.port.is_some()), ("path", s.path.is_some())] {
                if set {
                    p.add(
                        f(field),
                        format!("server `{}` speaks stdio; the operator picks the bridge's {field}: remove it", s.name),
                    );
                }
            }
        }
    }
    if let Some(path) = &s.path
        && !path.starts_with('/')
    {
        p.add(f("path"), format!("`{path}` must start with '/'"));
    }
    check_env_names(&f("env"), &s.env, p);
    for (j, e) in s.env.iter().enumerate() {
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            && r.optional != Some(true)
        {
            check_secret(
                &f(&format!("env[{j}].valueFrom.secretKeyRef")),
                &r.name,
                &r.key,
                secrets,
                p,
            );
        }
    }
}

fn check_env_names(field: &str, env: &[k8s_openapi::api::core::v1::EnvVar], p: &mut Problems) {
    for (j, e) in env.iter().enumerate() {
        if e.name.is_empty() || e.name.contains('=') {
            p.add(
                format!("{field}[{j}].name"),
                format!("`{}` is not an environment variable name", e.name),
            );
        }
    }
}

fn check_secret(field: &str, name: &str, key: &str, secrets: &SecretVersions, p: &mut Problems) {
    if !secrets.get(name).is_some_and(Option::is_some) {
        p.add(
            field,
            format!(
                "Secret `{name}` does not exist in this namespace; create it, e.g. \
                 `kubectl create secret generic {name} --from-literal={key}=...`"
            ),
        );
    }
}

fn check_url(field: &str, url: &str, p: &mut Problems) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        None => p.add(field, format!("`{url}` is not an http:// or https:// URL")),
        Some(r) if r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace) => {
            p.add(field, format!("`{url}` has no host"));
        }
        Some(r) => {
            let authority = r.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.contains('@') {
                p.add(field, "credentials in a URL would land in the ConfigMap; use headers with valueFrom instead".into());
            }
            if let Some((_, port)) = authority.rsplit_once(':')
                && !authority.ends_with(']')
                && port.parse::<u16>().map_or(true, |p| p == 0)
            {
                p.add(field, format!("`{url}` has an invalid port `{port}`"));
            }
        }
    }
}

fn check_image(field: &str, image: &str, p: &mut Problems) {
    if image.trim().is_empty() || image.contains(char::is_whitespace) {
        p.add(
            field,
            format!("`{image}` is not a container image reference"),
        );
    }
}

fn check_quantity(field: &str, q: &str, p: &mut Problems) {
    if parse_quantity_bytes(q).is_none() {
        p.add(field, format!("`{q}` is not a size like `1Gi` or `500Mi`"));
    }
}

/// A storage size in bytes (binary and decimal suffixes, as Kubernetes writes them).
pub fn parse_quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    (n > 0.0).then_some(n * mult)
}

fn is_prometheus_duration(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "ms" | "s" | "m" | "h")
}

/// A DNS-1123 label: lower-case alphanumerics and '-', not starting or ending with '-'.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;
    use crate::crd::*;
    use crate::fixtures::{self, all_secrets, full, minimal};

    fn problems(bd: &BotDeployment) -> Vec<Problem> {
        match validate(bd, &all_secrets(bd), Some(fixtures::BOT_IMAGE)) {
            Ok(()) => Vec::new(),
            Err(InvalidSpec(p)) => p,
        }
    }

    /// Asserts that validation reports `field` with a message containing `text`.
    #[track_caller]
    fn assert_problem(bd: &BotDeployment, field: &str, text: &str) {
        let p = problems(bd);
        assert!(
            p.iter()
                .any(|p| p.field == field && p.message.contains(text)),
            "expected a problem at {field} saying `{text}`, got: {p:#?}"
        );
    }

    fn with(f: impl FnOnce(&mut BotDeploymentSpec)) -> BotDeployment {
        let mut bd = minimal();
        f(&mut bd.spec);
        bd
    }

    fn server(f: impl FnOnce(&mut McpServerSpec)) -> BotDeployment {
        let mut s = McpServerSpec {
            name: "s".into(),
            image: Some("img:1".into()),
            ..Default::default()
        };
        f(&mut s);
        with(|spec| spec.mcp_servers = vec![s])
    }

    #[test]
    fn minimal_and_full_are_valid() {
        assert_eq!(problems(&minimal()), vec![]);
        assert_eq!(problems(&full()), vec![]);
    }

    #[test]
    fn the_problems_are_joined_into_one_message() {
        let bd = with(|s| {
            s.model.name = String::new();
            s.discord.triggers = vec![" ".into()];
        });
        let e = validate(&bd, &all_secrets(&bd), Some("x:1")).expect_err("invalid");
        let text = e.to_string();
        assert!(
            text.starts_with("spec.discord.triggers[0]: ")
                && text.contains("; spec.model.name: ``"),
            "{text}"
        );
    }

    #[test]
    fn names() {
        let mut bd = minimal();
        bd.metadata.name = Some("a".repeat(41));
        assert_problem(&bd, "metadata.name", "at most 40");
        bd.metadata.name = Some("1bot".into());
        assert_problem(&bd, "metadata.name", "starting with a letter");
        let mut bd = minimal();
        bd.metadata.namespace = None;
        assert_problem(&bd, "metadata.namespace", "namespaced");
    }

    #[test]
    fn missing_secrets_say_how_to_create_them() {
        let bd = minimal();
        let e = validate(
            &bd,
            &SecretVersions::from([("helper-discord".into(), None)]),
            Some("x:1"),
        )
        .expect_err("missing");
        assert_eq!(e.0[0].field, "spec.discord.tokenSecretRef");
        assert!(
            e.0[0]
                .message
                .contains("kubectl create secret generic helper-discord --from-literal=token="),
            "{}",
            e.0[0].message
        );
        // Header and env Secrets too.
        let bd = full();
        let mut secrets = all_secrets(&bd);
        secrets.insert("remote".into(), None);
        secrets.insert("tools".into(), None);
        let e = validate(&bd, &secrets, None).expect_err("missing");
        let fields: Vec<&str> = e.0.iter().map(|p| p.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.mcpServers[5].env[0].valueFrom.secretKeyRef"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.mcpServers[7].headers[0].valueFrom.secretKeyRef"),
            "{fields:?}"
        );
        // An optional env Secret is not required.
        let mut bd = server(|s| s.env = vec![fixtures::secret_env("K", "maybe", "k")]);
        if let Some(r) = bd.spec.mcp_servers[0].env[0]
            .value_from
            .as_mut()
            .and_then(|v| v.secret_key_ref.as_mut())
        {
            r.optional = Some(true);
        }
        assert!(!referenced_secrets(&bd.spec).contains("maybe"));
        assert_eq!(problems(&bd), vec![]);
    }

    #[test]
    fn referenced_secrets_are_listed() {
        let names: Vec<String> = referenced_secrets(&full().spec).into_iter().collect();
        assert_eq!(names, ["helper-discord", "remote", "tools"]);
    }

    #[test]
    fn discord_fields() {
        assert_problem(
            &with(|s| s.discord.api_base = Some("discord.com".into())),
            "spec.discord.apiBase",
            "not an http",
        );
        assert_problem(
            &with(|s| s.discord.api_base = Some("https://u:p@x".into())),
            "spec.discord.apiBase",
            "credentials",
        );
        assert_problem(
            &with(|s| s.discord.api_base = Some("https://x:99999".into())),
            "spec.discord.apiBase",
            "invalid port",
        );
        assert_problem(
            &with(|s| s.discord.command_prefix = Some(" ".into())),
            "spec.discord.commandPrefix",
            "blank",
        );
        assert_problem(
            &with(|s| s.discord.triggers = vec!["".into()]),
            "spec.discord.triggers[0]",
            "blank",
        );
        assert_problem(
            &with(|s| s.discord.access.admin_roles = vec![DiscordId("12ab".into())]),
            "spec.discord.access.adminRoles[0]",
            "not a Discord id",
        );
        assert_problem(
            &with(|s| {
                s.discord.access.allowed_users = vec![DiscordId("99999999999999999999".into())]
            }),
            "spec.discord.access.allowedUsers[0]",
            "not a Discord id",
        );
        assert_problem(
            &with(|s| s.discord.token_secret_ref.key = String::new()),
            "spec.discord.tokenSecretRef",
            "the key",
        );
    }

    #[test]
    fn model_fields() {
        assert_problem(
            &with(|s| s.model.name = "llama 3".into()),
            "spec.model.name",
            "not an Ollama model name",
        );
        assert_problem(
            &with(|s| s.model.allowed = vec!["".into()]),
            "spec.model.allowed[0]",
            "not an Ollama model",
        );
        assert_problem(
            &with(|s| s.model.max_tool_rounds = Some(0)),
            "spec.model.maxToolRounds",
            "at least 1",
        );
        assert_problem(
            &with(|s| s.model.history_token_budget = Some(10)),
            "spec.model.historyTokenBudget",
            "256",
        );
        assert_problem(
            &with(|s| s.model.request_timeout_seconds = Some(0)),
            "spec.model.requestTimeoutSeconds",
            "at least 1",
        );
    }

    #[test]
    fn ollama_exactly_one() {
        assert_problem(&with(|s| s.ollama.url = None), "spec.ollama", "exactly one");
        assert_problem(
            &with(|s| s.ollama.managed = Some(ManagedOllamaSpec::default())),
            "spec.ollama",
            "exactly one",
        );
        assert_problem(
            &with(|s| s.ollama.url = Some("ftp://x".into())),
            "spec.ollama.url",
            "not an http",
        );
        let managed = |f: fn(&mut ManagedOllamaSpec)| {
            with(|s| {
                let mut m = ManagedOllamaSpec::default();
                f(&mut m);
                s.ollama = OllamaSpec {
                    url: None,
                    managed: Some(m),
                };
            })
        };
        assert_eq!(problems(&managed(|_| {})), vec![]);
        assert_problem(
            &managed(|m| {
                m.storage = Some(StorageSpec {
                    size: Some("lots".into()),
                    storage_class_name: None,
                })
            }),
            "spec.ollama.managed.storage.size",
            "not a size",
        );
        assert_problem(
            &managed(|m| m.models = vec!["a b".into()]),
            "spec.ollama.managed.models[0]",
            "model name",
        );
        assert_problem(
            &managed(|m| m.image = Some("a b".into())),
            "spec.ollama.managed.image",
            "not a container image",
        );
    }

    #[test]
    fn server_kinds() {
        assert_problem(
            &server(|s| s.image = None),
            "spec.mcpServers[0]",
            "exactly one of preset or image",
        );
        assert_problem(
            &server(|s| s.url = Some("https://x/mcp".into())),
            "spec.mcpServers[0]",
            "exactly one",
        );
        assert_problem(
            &server(|s| {
                s.image = None;
                s.preset = Some(Preset::Memory);
                s.command = vec!["node".into()];
            }),
            "spec.mcpServers[0].command",
            "preset",
        );
        assert_problem(
            &server(|s| {
                s.preset = Some(Preset::Fetch);
                s.transport = Some(Transport::Http);
                s.port = Some(8000);
            }),
            "spec.mcpServers[0].transport",
            "presets speak stdio",
        );
        assert_problem(
            &server(|s| s.name = "Bad_Name".into()),
            "spec.mcpServers[0].name",
            "lower-case",
        );
        assert_problem(
            &server(|s| s.image = Some(" ".into())),
            "spec.mcpServers[0].image",
            "not a container image",
        );
    }

    #[test]
    fn duplicate_server_names() {
        let s = McpServerSpec {
            name: "a".into(),
            preset: Some(Preset::Memory),
            ..Default::default()
        };
        let bd = with(|spec| spec.mcp_servers = vec![s.clone(), s]);
        assert_problem(&bd, "spec.mcpServers[1].name", "unique");
    }

    #[test]
    fn ports() {
        let http = |port: Option<i32>| {
            server(|s| {
                s.transport = Some(Transport::Http);
                s.port = port;
            })
        };
        assert_problem(&http(None), "spec.mcpServers[0].port", "give the port");
        assert_problem(
            &http(Some(9090)),
            "spec.mcpServers[0].port",
            "bot's metrics",
        );
        assert_problem(&http(Some(70000)), "spec.mcpServers[0].port", "not a port");
        let two = with(|spec| {
            let s = McpServerSpec {
                name: "a".into(),
                image: Some("i:1".into()),
                transport: Some(Transport::Http),
                port: Some(8000),
                ..Default::default()
            };
            spec.mcp_servers = vec![
                s.clone(),
                McpServerSpec {
                    name: "b".into(),
                    ..s
                },
            ];
        });
        assert_problem(
            &two,
            "spec.mcpServers[1].port",
            "already used by server `a`",
        );
        assert_problem(
            &server(|s| s.port = Some(8000)),
            "spec.mcpServers[0].port",
            "speaks stdio",
        );
        assert_problem(
            &server(|s| s.path = Some("/x".into())),
            "spec.mcpServers[0].path",
            "speaks stdio",
        );
        assert_problem(
            &server(|s| {
                s.transport = Some(Transport::Http);
                s.port = Some(8000);
                s.path = Some("mcp".into());
            }),
            "spec.mcpServers[0].path",
            "must start with '/'",
        );
    }

    #[test]
    fn remote_servers() {
        let remote = |f: fn(&mut McpServerSpec)| {
            server(|s| {
                s.image = None;
                s.url = Some("https://mcp.example.com/mcp".into());
                f(s);
            })
        };
        assert_eq!(problems(&remote(|_| {})), vec![]);
        assert_problem(
            &remote(|s| s.command = vec!["x".into()]),
            "spec.mcpServers[0].command",
            "only to sidecars",
        );
        assert_problem(
            &remote(|s| s.port = Some(1)),
            "spec.mcpServers[0].port",
            "only to sidecars",
        );
        assert_problem(
            &remote(|s| s.url = Some("mcp.example.com".into())),
            "spec.mcpServers[0].url",
            "not an http",
        );
        assert_problem(
            &remote(|s| {
                s.headers = vec![HeaderSpec {
                    name: "A".into(),
                    value: None,
                    value_from: None,
                }]
            }),
            "spec.mcpServers[0].headers[0]",
            "exactly one of value or valueFrom",
        );
        assert_problem(
            &remote(|s| {
                s.headers = vec![HeaderSpec {
                    name: "Bad Header".into(),
                    value: Some("v".into()),
                    value_from: None,
                }]
            }),
            "spec.mcpServers[0].headers[0].name",
            "not an HTTP header name",
        );
        assert_problem(
            &remote(|s| {
                let h = HeaderSpec {
                    name: "A".into(),
                    value: Some("v".into()),
                    value_from: None,
                };
                s.headers = vec![
                    h.clone(),
                    HeaderSpec {
                        name: "a".into(),
                        ..h
                    },
                ];
            }),
            "spec.mcpServers[0].headers[1].name",
            "given twice",
        );
        assert_problem(
            &server(|s| {
                s.headers = vec![HeaderSpec {
                    name: "A".into(),
                    value: Some("v".into()),
                    value_from: None,
                }]
            }),
            "spec.mcpServers[0].headers",
            "only to remote",
        );
    }

    #[test]
    fn server_details() {
        assert_problem(
            &server(|s| s.tools.allow = vec!["".into()]),
            "spec.mcpServers[0].tools.allow",
            "blank",
        );
        assert_problem(
            &server(|s| {
                s.egress = vec![EgressSpec {
                    port: 443,
                    cidr: Some("10.0.0.0/33".into()),
                }]
            }),
            "spec.mcpServers[0].egress[0].cidr",
            "not a CIDR",
        );
        assert_problem(
            &server(|s| {
                s.egress = vec![EgressSpec {
                    port: 0,
                    cidr: None,
                }]
            }),
            "spec.mcpServers[0].egress[0].port",
            "not a port",
        );
        assert_problem(
            &server(|s| {
                s.env = vec![k8s_openapi::api::core::v1::EnvVar {
                    name: "A=B".into(),
                    ..Default::default()
                }]
            }),
            "spec.mcpServers[0].env[0].name",
            "not an environment variable name",
        );
        assert_problem(
            &server(|s| s.call_timeout_seconds = Some(0)),
            "spec.mcpServers[0].callTimeoutSeconds",
            "at least 1",
        );
        assert_problem(
            &server(|s| s.startup_timeout_seconds = Some(0)),
            "spec.mcpServers[0].startupTimeoutSeconds",
            "at least 1",
        );
    }

    #[test]
    fn pod_level_fields() {
        let bd = minimal();
        let e = validate(&bd, &all_secrets(&bd), None).expect_err("no image");
        assert!(e.0[0].message.contains("--bot-image"), "{e}");
        assert_eq!(
            validate(
                &with(|s| s.image = Some("b:1".into())),
                &all_secrets(&bd),
                None
            ),
            Ok(())
        );
        assert_problem(
            &with(|s| {
                s.persistence = Some(StorageSpec {
                    size: Some("1GB".into()),
                    storage_class_name: None,
                })
            }),
            "spec.persistence.size",
            "not a size",
        );
        assert_problem(
            &with(|s| {
                s.metrics = MetricsSpec {
                    service_monitor: true,
                    interval: Some("30".into()),
                }
            }),
            "spec.metrics.interval",
            "not a duration",
        );
        assert_problem(
            &with(|s| {
                s.pod_annotations =
                    [("ollama-mcp.io/config-hash".to_string(), "x".to_string())].into()
            }),
            "spec.podAnnotations",
            "reserved",
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity_bytes("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(parse_quantity_bytes("500M"), Some(5e8));
        assert_eq!(parse_quantity_bytes("0"), None);
        assert_eq!(parse_quantity_bytes("1.5Ti"), Some(1.5 * 1024f64.powi(4)));
        assert_eq!(parse_quantity_bytes("Gi"), None);
    }
}
