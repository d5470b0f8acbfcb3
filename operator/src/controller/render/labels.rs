//! Names, labels and metadata shared by every child object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const VERSION: &str = "app.kubernetes.io/version";

/// `app.kubernetes.io/name` of the bot's objects.
pub const BOT_APP: &str = "ollama-mcp-bot";
/// `app.kubernetes.io/name` of a managed Ollama's objects.
pub const OLLAMA_APP: &str = "ollama";
pub const PART_OF_VALUE: &str = "ollama-mcp";
pub const MANAGED_BY_VALUE: &str = "ollama-mcp-operator";

/// What every child of one BotDeployment shares.
#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub reference: OwnerReference,
}

impl Owner {
    /// The six recommended labels.
    pub fn labels(&self, app: &str, component: &str, version: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME.to_string(), app.to_string()),
            (INSTANCE.to_string(), self.name.clone()),
            (COMPONENT.to_string(), component.to_string()),
            (PART_OF.to_string(), PART_OF_VALUE.to_string()),
            (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
            (VERSION.to_string(), label_value(version)),
        ])
    }

    /// Selector labels: only name and instance, which never change for a given object.
    pub fn selector(&self, app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME.to_string(), app.to_string()),
            (INSTANCE.to_string(), self.name.clone()),
        ])
    }

    /// Metadata of a child: name, namespace, labels, controller owner reference.
    pub fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.reference.clone()]),
            ..Default::default()
        }
    }
}

/// The version part of an image reference (`repo:tag` → `tag`, `repo@sha256:abc…` → `abc…`).
pub fn image_version(image: &str) -> &str {
    if let Some((_, digest)) = image.rsplit_once('@') {
        return digest.rsplit_once(':').map_or(digest, |(_, d)| d);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.rsplit_once(':').map_or("latest", |(_, tag)| tag)
}

/// A string made into a valid label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric ends.
pub fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_images() {
        assert_eq!(image_version("ghcr.io/a/b:1.2.3"), "1.2.3");
        assert_eq!(image_version("localhost:5000/bot"), "latest");
        assert_eq!(image_version("bot@sha256:0123abcd"), "0123abcd");
        assert_eq!(label_value("-1.2+build/x-"), "1.2_build_x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }
}
