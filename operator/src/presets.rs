//! The MCP server presets: the one table of what each ready-made server runs and needs.
//!
//! The README's preset table is rendered from [`PRESETS`] by [`markdown_table`] (a test checks
//! that `docs/OPERATOR.md` holds the current rendering), so code and documentation cannot drift.

use crate::crd::Preset;

/// Node image for the npm-published servers (pinned; `npx` needs node and npm only).
pub const NODE_IMAGE: &str = "node:22.20.0-bookworm-slim";
/// Python image with `uv` for the PyPI-published servers.
pub const UV_IMAGE: &str = "ghcr.io/astral-sh/uv:0.8.22-python3.12-bookworm-slim";
/// Node with Chromium for the browser server.
pub const CHROMIUM_NODE_IMAGE: &str = "zenika/alpine-chrome:124-with-node";

/// Environment every sidecar gets: the root filesystem is read-only, so tools that cache
/// (npm, uv) must write under the `/tmp` emptyDir.
pub const SIDECAR_BASE_ENV: &[(&str, &str)] = &[
    ("HOME", "/tmp"),
    ("npm_config_cache", "/tmp/.npm"),
    ("npm_config_update_notifier", "false"),
    ("UV_CACHE_DIR", "/tmp/.cache/uv"),
    ("UV_PYTHON_DOWNLOADS", "never"),
    ("XDG_CACHE_HOME", "/tmp/.cache"),
];

/// One ready-made MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetDef {
    pub preset: Preset,
    /// The name users write in `preset:`.
    pub name: &'static str,
    pub image: &'static str,
    /// Command and arguments of the stdio server (run through the bridge).
    pub command: &'static [&'static str],
    /// Environment the server needs.
    pub env: &'static [(&'static str, &'static str)],
    /// A directory that must outlive restarts (on the bot's PVC when `persistence` is set).
    pub data_dir: Option<&'static str>,
    /// A memory-backed `/dev/shm` (Chromium needs more than the default 64 MiB).
    pub needs_shm: bool,
    /// TCP ports the server's tools reach, anywhere (NetworkPolicy egress).
    pub egress_ports: &'static [u16],
    /// Why the ports are needed (documentation).
    pub egress_reason: &'static str,
    /// What the server does (documentation).
    pub description: &'static str,
}

/// Every preset, in the order the documentation lists them.
pub const PRESETS: &[PresetDef] = &[
    PresetDef {
        preset: Preset::Memory,
        name: "memory",
        image: NODE_IMAGE,
        command: &["npx", "-y", "@modelcontextprotocol/server-memory@2026.8.31"],
        env: &[("MEMORY_FILE_PATH", "/data/memory.jsonl")],
        data_dir: Some("/data"),
        needs_shm: false,
        egress_ports: &[],
        egress_reason: "none (npx fetches the package at start over 443, which the pod allows for Discord)",
        description: "A knowledge graph the model can write to and read back (entities, relations, observations).",
    },
    PresetDef {
        preset: Preset::Fetch,
        name: "fetch",
        image: UV_IMAGE,
        command: &["uvx", "mcp-server-fetch@2026.10.24"],
        env: &[],
        data_dir: None,
        needs_shm: false,
        egress_ports: &[80, 443],
        egress_reason: "fetches web pages over HTTP and HTTPS",
        description: "Fetches a URL and returns it as Markdown.",
    },
    PresetDef {
        preset: Preset::Puppeteer,
        name: "puppeteer",
        image: CHROMIUM_NODE_IMAGE,
        command: &[
            "npx",
            "-y",
            "@modelcontextprotocol/server-puppeteer@2025.5.12",
        ],
        env: &[
            ("PUPPETEER_SKIP_DOWNLOAD", "true"),
            ("ALLOW_DANGEROUS", "true"),
            (
                "PUPPETEER_LAUNCH_OPTIONS",
                r#"{"headless":true,"executablePath":"/usr/bin/chromium-browser","args":["--no-sandbox","--disable-dev-shm-usage"]}"#,
            ),
        ],
        data_dir: None,
        needs_shm: true,
        egress_ports: &[80, 443],
        egress_reason: "browses web pages over HTTP and HTTPS",
        description: "A headless Chromium the model drives: navigate, screenshot, click, fill, evaluate.",
    },
    PresetDef {
        preset: Preset::SequentialThinking,
        name: "sequential-thinking",
        image: NODE_IMAGE,
        command: &[
            "npx",
            "-y",
            "@modelcontextprotocol/server-sequential-thinking@2026.8.31",
        ],
        env: &[("DISABLE_THOUGHT_LOGGING", "true")],
        data_dir: None,
        needs_shm: false,
        egress_ports: &[],
        egress_reason: "none (npx fetches the package at start over 443, which the pod allows for Discord)",
        description: "Step-by-step problem solving: the model records, revises and branches its thoughts.",
    },
    PresetDef {
        preset: Preset::AwsDocumentation,
        name: "aws-documentation",
        image: UV_IMAGE,
        command: &["uvx", "awslabs.aws-documentation-mcp-server@latest"],
        env: &[
            ("FASTMCP_LOG_LEVEL", "ERROR"),
            ("AWS_DOCUMENTATION_PARTITION", "aws"),
        ],
        data_dir: None,
        needs_shm: false,
        egress_ports: &[443],
        egress_reason: "reads and searches docs.aws.amazon.com over HTTPS",
        description: "Searches and reads the AWS documentation.",
    },
];

/// The table entry of a preset. Every [`Preset`] variant has exactly one (a test checks it).
pub fn preset(p: Preset) -> &'static PresetDef {
    // The table is complete (tested), so the fallback is unreachable in practice; it returns the
    // first entry instead of panicking.
    PRESETS
        .iter()
        .find(|d| d.preset == p)
        .unwrap_or(&PRESETS[0])
}

/// The Markdown table of the presets, as the documentation shows it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| preset | what it does | image | command | environment | egress |\n|---|---|---|---|---|---|\n",
    );
    for d in PRESETS {
        let env = if d.env.is_empty() {
            "—".to_string()
        } else {
            d.env
                .iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let ports = if d.egress_ports.is_empty() {
            String::new()
        } else {
            format!(
                "TCP {}: ",
                d.egress_ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push_str(&format!(
            "| `{}` | {} | `{}` | `{}` | {} | {}{} |\n",
            d.name,
            d.description,
            d.image,
            d.command.join(" "),
            env,
            ports,
            d.egress_reason,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_has_exactly_one_entry_and_its_serde_name() {
        for p in [
            Preset::Memory,
            Preset::Fetch,
            Preset::Puppeteer,
            Preset::SequentialThinking,
            Preset::AwsDocumentation,
        ] {
            assert_eq!(PRESETS.iter().filter(|d| d.preset == p).count(), 1, "{p:?}");
            let serde_name = serde_json::to_value(p).expect("serialize preset");
            assert_eq!(serde_name, serde_json::json!(preset(p).name));
        }
    }

    #[test]
    fn images_are_pinned() {
        for d in PRESETS {
            let tag = d.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{} image {} is not pinned",
                d.name,
                d.image
            );
        }
    }

    #[test]
    fn documentation_holds_the_current_table() {
        let doc = include_str!("../../docs/OPERATOR.md");
        assert!(
            doc.contains(&markdown_table()),
            "docs/OPERATOR.md's preset table differs from operator/src/presets.rs; paste the output of \
             `cargo run -p ollama-mcp-operator -- presets` between the PRESETS markers"
        );
    }
}
