//! Validation of a BotDeployment beyond what the CRD schema enforces (pure: no client), and
//! what a valid spec resolves to ([`ValidatedBot`]), which render consumes.
//!
//! The schema catches shapes and ranges when the API server has the CRD; this catches the rest
//! (port clashes, Secrets that do not exist, ids that are not numbers, ...) and repeats the
//! schema's cross-field rules so that an object created before a schema change is still caught.
//! Every problem names the field and says what to change.

mod fields;
pub mod resolve;
pub mod secrets;
mod servers;

use std::collections::BTreeMap;

use kube::ResourceExt;

use self::fields::{
    check_env_names, check_image, check_quantity, check_secret, check_url, is_model_name,
    is_prometheus_duration,
};
pub use self::fields::{is_dns_label, parse_id, parse_quantity_bytes};
pub use self::resolve::{EndpointKind, McpEndpoint};
pub use self::secrets::{SecretRef, referenced_secrets, secret_refs};
use crate::crd::{BotDeployment, BotDeploymentSpec, ManagedOllamaSpec};

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

/// A BotDeployment that passed validation, with what it resolves to. Render consumes it and
/// reads the spec only for the fields it copies as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedBot<'a> {
    pub spec: &'a BotDeploymentSpec,
    /// The bot's image: `spec.image`, or the operator's `--bot-image`.
    pub image: String,
    /// The Ollama base URL the bot uses (no trailing '/').
    pub ollama_url: String,
    /// The managed Ollama, when the operator runs one.
    pub managed_ollama: Option<&'a ManagedOllamaSpec>,
    /// Models the bot may use (the default first).
    pub models: Vec<String>,
    /// Models the model check looks for (and pulls, for a managed Ollama).
    pub checked_models: Vec<String>,
    /// How the bot reaches each MCP server, in spec order.
    pub endpoints: Vec<McpEndpoint>,
    /// Secrets that reach the bot's pod as env vars: name → resourceVersion (a rotation rolls
    /// the pod).
    pub env_secrets: BTreeMap<String, String>,
}

/// Checks the BotDeployment and resolves it; `secrets` holds the metadata of the Secrets it
/// references, `default_image` is the operator's `--bot-image`.
pub fn validate<'a>(
    bd: &'a BotDeployment,
    secrets: &SecretVersions,
    default_image: Option<&str>,
) -> Result<ValidatedBot<'a>, InvalidSpec> {
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
    validate_discord(spec, &mut p);
    validate_model(spec, &mut p);
    validate_ollama(spec, &mut p);
    servers::validate_mcp_servers(spec, &mut p);
    let refs = secret_refs(spec);
    for r in refs.iter().filter(|r| !r.optional) {
        if r.name.trim().is_empty() || r.key.trim().is_empty() {
            p.add(
                r.field.clone(),
                "give the Secret's name and the key that holds the value".into(),
            );
        } else {
            check_secret(&r.field, &r.name, &r.key, secrets, &mut p);
        }
    }
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
    p.finish()?;

    let ollama_url = match &spec.ollama.managed {
        Some(_) => resolve::managed_url(&name, &bd.namespace().unwrap_or_default()),
        None => spec
            .ollama
            .url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
    };
    let models = resolve::models(spec);
    let env_secrets = refs
        .iter()
        .filter(|r| r.rolls_bot_pod)
        .map(|r| {
            let version = secrets.get(&r.name).cloned().flatten();
            (r.name.clone(), version.unwrap_or_default())
        })
        .collect();
    Ok(ValidatedBot {
        spec,
        image: spec
            .image
            .clone()
            .or_else(|| default_image.map(str::to_string))
            .unwrap_or_default(),
        ollama_url,
        managed_ollama: spec.ollama.managed.as_ref(),
        checked_models: resolve::checked_models(spec, &models),
        models,
        endpoints: resolve::endpoints(spec),
        env_secrets,
    })
}

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, field: impl Into<String>, message: String) {
        self.0.push(Problem {
            field: field.into(),
            message,
        });
    }
    fn finish(&mut self) -> Result<(), InvalidSpec> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidSpec(std::mem::take(&mut self.0)))
        }
    }
}

fn validate_discord(spec: &BotDeploymentSpec, p: &mut Problems) {
    let d = &spec.discord;
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

#[cfg(test)]
mod tests;
