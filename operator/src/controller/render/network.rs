//! The bot pod's NetworkPolicy: ingress only to the metrics port; egress only to DNS, Discord,
//! the Ollama endpoint, and what the MCP servers declare (presets' ports, `egress`, remote URLs).
//! Sidecars talk to the bot over localhost, which NetworkPolicy does not govern.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{BOT_APP, OLLAMA_APP, Owner};
use super::{BOT_METRICS_PORT, OLLAMA_PORT};
use crate::crd::BotDeploymentSpec;
use crate::presets::preset;

/// Where an egress rule points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Anywhere,
    Cidr(String),
    /// Every pod of a namespace (an in-cluster Service by DNS name).
    Namespace(String),
    /// Pods in the bot's namespace with these labels.
    Pods(BTreeMap<String, String>),
}

#[derive(Default)]
struct Egress(BTreeSet<(Peer, &'static str, u16)>);

impl Egress {
    fn tcp(&mut self, peer: Peer, port: u16) {
        self.0.insert((peer, "TCP", port));
    }

    /// The destination of a URL: an IP literal becomes a /32 (or /128), an in-cluster Service
    /// name its namespace, anything else (a public host, resolved by DNS) anywhere on its port.
    fn url(&mut self, url: &str, namespace: &str) {
        let Some((host, port)) = host_port(url) else {
            return;
        };
        let peer = if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            Peer::Cidr(match ip {
                std::net::IpAddr::V4(v4) => format!("{v4}/32"),
                std::net::IpAddr::V6(v6) => format!("{v6}/128"),
            })
        } else if let Some(ns) = cluster_namespace(&host, namespace) {
            Peer::Namespace(ns)
        } else {
            Peer::Anywhere
        };
        self.tcp(peer, port);
    }
}

/// Host and port of an http(s) URL (default ports filled in).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(default), |p| p.parse().ok())?;
        return Some((addr.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

/// The namespace of an in-cluster Service host (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`).
fn cluster_namespace(host: &str, own: &str) -> Option<String> {
    let parts: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    match parts.as_slice() {
        [_svc] => Some(own.to_string()),
        // `svc.ns` cannot be told apart from `example.com`: treated as a public host.
        [_svc, ns, "svc", ..] => Some((*ns).to_string()),
        _ => None,
    }
}

pub fn network_policy(
    owner: &Owner,
    spec: &BotDeploymentSpec,
    ollama_url: &str,
    version: &str,
) -> NetworkPolicy {
    let mut egress = Egress::default();
    let discord = spec
        .discord
        .api_base
        .as_deref()
        .unwrap_or("https://discord.com");
    // Discord's addresses are not fixed: its HTTPS port (and the gateway's) anywhere.
    egress.tcp(Peer::Anywhere, host_port(discord).map_or(443, |(_, p)| p));
    if spec.ollama.managed.is_some() {
        egress.tcp(Peer::Pods(owner.selector(OLLAMA_APP)), OLLAMA_PORT);
    } else {
        egress.url(ollama_url, &owner.namespace);
    }
    for s in &spec.mcp_servers {
        if let Some(p) = s.preset {
            for port in preset(p).egress_ports {
                egress.tcp(Peer::Anywhere, *port);
            }
        }
        for e in &s.egress {
            let peer = e.cidr.clone().map_or(Peer::Anywhere, Peer::Cidr);
            if let Ok(port) = u16::try_from(e.port) {
                egress.tcp(peer, port);
            }
        }
        if let Some(url) = &s.url {
            egress.url(url, &owner.namespace);
        }
    }

    let mut rules = vec![NetworkPolicyEgressRule {
        // DNS, wherever the cluster runs it.
        to: None,
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    }];
    let mut by_peer: BTreeMap<Peer, Vec<NetworkPolicyPort>> = BTreeMap::new();
    for (peer, proto, p) in egress.0 {
        by_peer.entry(peer).or_default().push(port(proto, p));
    }
    for (peer, ports) in by_peer {
        rules.push(NetworkPolicyEgressRule {
            to: Some(peers(peer)),
            ports: Some(ports),
        });
    }

    NetworkPolicy {
        metadata: owner.meta(
            owner.name.clone(),
            owner.labels(BOT_APP, "network-policy", version),
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(owner.selector(BOT_APP)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![port("TCP", BOT_METRICS_PORT)]),
            }]),
            egress: Some(rules),
        }),
    }
}

fn port(protocol: &str, p: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(i32::from(p))),
        end_port: None,
    }
}

fn peers(peer: Peer) -> Vec<NetworkPolicyPeer> {
    let block = |cidr: &str| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.into(),
            except: None,
        }),
        ..Default::default()
    };
    match peer {
        Peer::Anywhere => vec![block("0.0.0.0/0"), block("::/0")],
        Peer::Cidr(c) => vec![block(&c)],
        Peer::Namespace(ns) => vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some([("kubernetes.io/metadata.name".to_string(), ns)].into()),
                match_expressions: None,
            }),
            ..Default::default()
        }],
        Peer::Pods(labels) => vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            }),
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            host_port("https://discord.com"),
            Some(("discord.com".into(), 443))
        );
        assert_eq!(
            host_port("http://ollama.ai.svc:11434/x"),
            Some(("ollama.ai.svc".into(), 11434))
        );
        assert_eq!(
            host_port("http://[::1]:8080/mcp"),
            Some(("::1".into(), 8080))
        );
        assert_eq!(host_port("http://10.0.0.5"), Some(("10.0.0.5".into(), 80)));
    }

    #[test]
    fn cluster_hosts_map_to_namespaces() {
        assert_eq!(cluster_namespace("ollama", "bots"), Some("bots".into()));
        assert_eq!(
            cluster_namespace("ollama.ai.svc", "bots"),
            Some("ai".into())
        );
        assert_eq!(
            cluster_namespace("ollama.ai.svc.cluster.local", "bots"),
            Some("ai".into())
        );
        // Two labels are ambiguous (`svc.ns` or `example.com`): treated as a public host.
        assert_eq!(cluster_namespace("example.com", "bots"), None);
        assert_eq!(cluster_namespace("mcp.example.com", "bots"), None);
    }
}
