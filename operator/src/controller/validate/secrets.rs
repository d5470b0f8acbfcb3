//! The Secrets a spec references, walked once: validate checks that they exist, reconcile reads
//! their metadata, render hashes those that reach the pod through env vars, and the Secret watch
//! maps a changed Secret back to its BotDeployments.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::EnvVar;

use crate::crd::BotDeploymentSpec;

/// One reference to a key of a Secret in the BotDeployment's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The field path, e.g. `spec.mcpServers[1].env[0].valueFrom.secretKeyRef`.
    pub field: String,
    pub name: String,
    pub key: String,
    /// `optional: true`: the pod starts without it, so it need not exist.
    pub optional: bool,
    /// It reaches the bot's pod as an environment variable, so a rotation needs a new pod
    /// (the Discord token is a mounted file that the bot reads again: it does not).
    pub rolls_bot_pod: bool,
}

/// Every Secret reference of the spec, in spec order.
pub fn secret_refs(spec: &BotDeploymentSpec) -> Vec<SecretRef> {
    let t = &spec.discord.token_secret_ref;
    let mut out = vec![SecretRef {
        field: "spec.discord.tokenSecretRef".into(),
        name: t.name.clone(),
        key: t.key.clone(),
        optional: false,
        rolls_bot_pod: false,
    }];
    for (i, s) in spec.mcp_servers.iter().enumerate() {
        for (j, h) in s.headers.iter().enumerate() {
            if let Some(from) = &h.value_from {
                out.push(SecretRef {
                    field: format!("spec.mcpServers[{i}].headers[{j}].valueFrom.secretKeyRef"),
                    name: from.secret_key_ref.name.clone(),
                    key: from.secret_key_ref.key.clone(),
                    optional: false,
                    rolls_bot_pod: true,
                });
            }
        }
        env_refs(&format!("spec.mcpServers[{i}].env"), &s.env, true, &mut out);
    }
    if let Some(m) = &spec.ollama.managed {
        env_refs("spec.ollama.managed.env", &m.env, false, &mut out);
    }
    out
}

fn env_refs(field: &str, env: &[EnvVar], rolls_bot_pod: bool, out: &mut Vec<SecretRef>) {
    for (j, e) in env.iter().enumerate() {
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            out.push(SecretRef {
                field: format!("{field}[{j}].valueFrom.secretKeyRef"),
                name: r.name.clone(),
                key: r.key.clone(),
                optional: r.optional == Some(true),
                rolls_bot_pod,
            });
        }
    }
}

/// The names of the Secrets the spec needs (optional references left out).
pub fn referenced_secrets(spec: &BotDeploymentSpec) -> BTreeSet<String> {
    secret_refs(spec)
        .into_iter()
        .filter(|r| !r.optional)
        .map(|r| r.name)
        .collect()
}
