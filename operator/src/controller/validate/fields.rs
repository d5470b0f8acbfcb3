//! Checks of single values: URLs, images, sizes, durations, names, ids.

use super::{Problems, SecretVersions};
use crate::crd::DiscordId;

pub(super) fn check_env_names(
    field: &str,
    env: &[k8s_openapi::api::core::v1::EnvVar],
    p: &mut Problems,
) {
    for (j, e) in env.iter().enumerate() {
        if e.name.is_empty() || e.name.contains('=') {
            p.add(
                format!("{field}[{j}].name"),
                format!("`{}` is not an environment variable name", e.name),
            );
        }
    }
}

pub(super) fn check_secret(
    field: &str,
    name: &str,
    key: &str,
    secrets: &SecretVersions,
    p: &mut Problems,
) {
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

pub(super) fn check_url(field: &str, url: &str, p: &mut Problems) {
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

pub(super) fn check_image(field: &str, image: &str, p: &mut Problems) {
    if image.trim().is_empty() || image.contains(char::is_whitespace) {
        p.add(
            field,
            format!("`{image}` is not a container image reference"),
        );
    }
}

pub(super) fn check_quantity(field: &str, q: &str, p: &mut Problems) {
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

pub(super) fn is_prometheus_duration(s: &str) -> bool {
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

pub(super) fn is_cidr(s: &str) -> bool {
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

pub fn parse_id(id: &DiscordId) -> Option<u64> {
    let s = id.0.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(super) fn is_model_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'))
}
