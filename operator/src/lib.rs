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

use kube::CustomResourceExt;

/// The BotDeployment CRD as YAML: what `ollama-mcp-operator crd` prints and `crds/` holds.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&crd::BotDeployment::crd())
        .unwrap_or_else(|e| format!("# could not render the CRD: {e}\n"))
}
