//! Checks of `spec.mcpServers`: names, kinds (sidecar or remote), ports in the shared pod
//! network, headers, filters and egress.

use std::collections::{BTreeMap, BTreeSet};

use super::Problems;
use super::fields::{check_env_names, check_image, check_url, is_cidr, is_dns_label};
use super::resolve::BOT_METRICS_PORT;
use crate::crd::{BotDeploymentSpec, McpServerSpec, Transport};

pub(super) fn validate_mcp_servers(spec: &BotDeploymentSpec, p: &mut Problems) {
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
            (Some(url), false) => validate_remote(s, url, &f, p),
            (None, true) => validate_sidecar(s, &f, &mut ports, p),
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

fn validate_remote(s: &McpServerSpec, url: &str, f: &dyn Fn(&str) -> String, p: &mut Problems) {
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
            // Whether a valueFrom Secret exists is checked with the other Secret references.
            (Some(_), None) | (None, Some(_)) => {}
            _ => p.add(hf, "give exactly one of value or valueFrom".into()),
        }
    }
}

fn validate_sidecar(
    s: &McpServerSpec,
    f: &dyn Fn(&str) -> String,
    ports: &mut BTreeMap<i32, String>,
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
}
