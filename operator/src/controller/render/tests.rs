//! Render tests. Over ~450 lines: one test per child kind over the same fixtures; splitting
//! would copy the fixture helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use ollama_mcp_bot::config::{BotConfig, LogFormat, McpServerConfig};
use serde_json::{Value, json};

use super::*;
use crate::crd::{BotDeployment, McpServerSpec, Preset};
use crate::fixtures::{self, all_secrets, full, minimal};
use crate::presets::{PRESETS, preset};

fn owner(bd: &BotDeployment) -> Owner {
    Owner {
        name: bd.metadata.name.clone().unwrap(),
        namespace: bd.metadata.namespace.clone().unwrap(),
        reference: bd.controller_owner_ref(&()).unwrap(),
    }
}

fn build_ok(bd: &BotDeployment) -> Children {
    let secrets = all_secrets(bd);
    let bot = crate::controller::validate::validate(bd, &secrets, Some(fixtures::BOT_IMAGE))
        .expect("valid");
    render(&owner(bd), &bot).expect("renders")
}

fn pod(c: &Children) -> &PodSpec {
    c.deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn init(c: &Children, name: &str) -> Container {
    pod(c)
        .init_containers
        .iter()
        .flatten()
        .find(|x| x.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no init container {name}"))
}

fn env_of(c: &Container) -> Vec<(String, Value)> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), serde_json::to_value(e).unwrap()))
        .collect()
}

/// The rendered config, read back by the bot's own loader (what the pod will do).
fn loaded_config(c: &Children) -> BotConfig {
    let toml = c
        .config_map
        .data
        .as_ref()
        .unwrap()
        .get(CONFIG_FILE)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    BotConfig::load_from(Some(&path), Vec::new())
        .expect("the bot accepts the rendered configuration")
}

#[test]
fn minimal_children() {
    let bd = minimal();
    let c = build_ok(&bd);
    assert_eq!(c.config_map.metadata.name.as_deref(), Some("helper-config"));
    assert_eq!(c.service_account.metadata.name.as_deref(), Some("helper"));
    assert_eq!(
        c.service_account.automount_service_account_token,
        Some(false)
    );
    assert_eq!(
        c.metrics_service.metadata.name.as_deref(),
        Some("helper-metrics")
    );
    assert!(c.data_pvc.is_none() && c.ollama.is_none() && c.service_monitor.is_none());

    let cfg = loaded_config(&c);
    assert_eq!(cfg.ollama.url, "http://ollama.ai.svc:11434");
    assert_eq!(cfg.ollama.model, "llama3.2");
    assert_eq!(cfg.ollama.models, ["llama3.2"]);
    assert_eq!(cfg.store.path, "/var/lib/ollama-mcp/ollama-mcp.db");
    assert_eq!(cfg.metrics.listen, "0.0.0.0:9090");
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert!(cfg.mcp.servers.is_empty());

    let d = &c.deployment;
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(d.metadata.name.as_deref(), Some("helper"));
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(
        annotations.get(CONFIG_HASH_ANNOTATION),
        Some(&c.config_hash)
    );
    assert!(!annotations.contains_key(SECRETS_HASH_ANNOTATION));
    let p = pod(&c);
    assert!(p.init_containers.is_none());
    assert_eq!(p.service_account_name.as_deref(), Some("helper"));
    assert_eq!(p.automount_service_account_token, Some(false));
    let bot = &p.containers[0];
    assert_eq!(bot.name, "bot");
    assert_eq!(bot.image.as_deref(), Some(fixtures::BOT_IMAGE));
    assert_eq!(bot.args.as_deref(), Some(&["run".to_string()][..]));
    let env = env_of(bot);
    assert!(env.contains(&(
        "OLLAMA_MCP_CONFIG".into(),
        json!({"name": "OLLAMA_MCP_CONFIG", "value": "/etc/ollama-mcp/config.toml"})
    )));
    assert!(env.contains(&(
        "DISCORD_TOKEN_FILE".into(),
        json!({"name": "DISCORD_TOKEN_FILE", "value": "/var/run/secrets/ollama-mcp/discord/token"})
    )));
    let probes = [
        &bot.startup_probe,
        &bot.liveness_probe,
        &bot.readiness_probe,
    ]
    .map(|p| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    });
    assert_eq!(probes, ["/healthz", "/healthz", "/readyz"]);
    assert_eq!(bot.ports.as_ref().unwrap()[0].container_port, 9090);

    // The token: a whole-directory Secret mount (kubelet refreshes it on rotation), read-only.
    let volumes = serde_json::to_value(p.volumes.as_ref().unwrap()).unwrap();
    assert!(volumes.as_array().unwrap().contains(&json!({
        "name": "discord-token",
        "secret": {"secretName": "helper-discord", "items": [{"key": "token", "path": "token"}], "defaultMode": 0o440, "optional": false}
    })));
    let mounts = serde_json::to_value(bot.volume_mounts.as_ref().unwrap()).unwrap();
    assert!(mounts.as_array().unwrap().contains(&json!({"name": "discord-token", "mountPath": "/var/run/secrets/ollama-mcp/discord", "readOnly": true})));
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("subPath").is_none())
    );
    // Without persistence the store is an emptyDir.
    assert!(
        volumes
            .as_array()
            .unwrap()
            .contains(&json!({"name": "data", "emptyDir": {}}))
    );

    let np = serde_json::to_value(&c.network_policy).unwrap();
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([{"ports": [{"port": 9090, "protocol": "TCP"}]}])
    );
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(
        egress[0],
        json!({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]})
    );
    assert!(egress.contains(
        &json!({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                                    "ports": [{"port": 443, "protocol": "TCP"}]})
    ));
    assert!(egress.contains(&json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ai"}}}],
                                    "ports": [{"port": 11434, "protocol": "TCP"}]})));
    assert_eq!(egress.len(), 3, "{egress:#?}");
}

#[test]
fn full_config_carries_every_field() {
    let c = build_ok(&full());
    let cfg = loaded_config(&c);
    assert_eq!(cfg.ollama.url, "http://helper-ollama.bots.svc:11434");
    assert_eq!(cfg.ollama.model, "qwen3:8b");
    assert_eq!(cfg.ollama.models, ["qwen3:8b", "llama3.2"]);
    assert_eq!(
        cfg.ollama.options,
        json!({"num_ctx": 16384, "temperature": 0.4})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert!(cfg.ollama.think);
    assert_eq!(cfg.ollama.keep_alive.as_deref(), Some("10m"));
    assert_eq!(cfg.ollama.request_timeout_secs, 120);
    assert_eq!(cfg.chat.system_prompt, "You are Helper.");
    assert_eq!(cfg.chat.max_tool_rounds, 5);
    assert_eq!(cfg.chat.history_token_budget, 4000);
    let d = &cfg.discord;
    assert_eq!(d.api_base, "https://discord.example.net:8443");
    assert_eq!(d.command_prefix, "?");
    assert_eq!(d.triggers, ["hey helper"]);
    assert!(!d.respond_to_mentions && d.allow_dms && !d.show_tool_calls);
    assert_eq!(d.approval_timeout_secs, 120);
    assert_eq!(d.access.allowed_guilds, [111111111111111111]);
    assert_eq!(d.access.allowed_channels, [222222222222222222]);
    assert_eq!(d.access.allowed_roles, [333333333333333333]);
    assert_eq!(d.access.allowed_users, [444444444444444444]);
    assert_eq!(d.access.denied_users, [555555555555555555]);
    assert_eq!(d.access.admin_users, [666666666666666666]);
    assert_eq!(d.access.admin_roles, [777777777777777777]);
    assert_eq!(
        (
            d.rate_limit.messages,
            d.rate_limit.per_seconds,
            d.rate_limit.max_concurrent_per_guild
        ),
        (3, 30, 2)
    );

    // The servers as the ConfigMap's file writes them.
    let raw: Vec<McpServerConfig> = cfg
        .mcp
        .servers
        .iter()
        .cloned()
        .map(McpServerConfig::from)
        .collect();
    let servers: Vec<(&str, &str)> = raw
        .iter()
        .map(|s| (s.name.as_str(), s.url.as_deref().unwrap()))
        .collect();
    assert_eq!(
        servers,
        [
            ("memory", "http://127.0.0.1:8101/mcp"),
            ("fetch", "http://127.0.0.1:8102/mcp"),
            ("browser", "http://127.0.0.1:8103/mcp"),
            ("thinking", "http://127.0.0.1:8104/mcp"),
            ("aws-docs", "http://127.0.0.1:8105/mcp"),
            ("tools", "http://127.0.0.1:8106/mcp"),
            // Its own port, taken first so that the bridges count around it.
            ("web", "http://127.0.0.1:8100/v1/mcp"),
            ("remote", "https://mcp.example.com/mcp"),
        ]
    );
    assert!(
        raw.iter().all(|s| s.command.is_none()),
        "the bot reaches every server over HTTP"
    );
    let tools = &raw[5];
    assert_eq!(tools.tools.deny, ["drop_table"]);
    assert_eq!(tools.tools.require_approval, ["deploy"]);
    assert_eq!(
        (tools.call_timeout_secs, tools.startup_timeout_secs),
        (Some(90), Some(45))
    );
    let remote = &raw[7];
    assert_eq!(
        remote.headers.get("X-Team").map(String::as_str),
        Some("bots")
    );
    assert_eq!(
        remote.headers_env.get("Authorization").map(String::as_str),
        Some("OLLAMA_MCP_HEADER_REMOTE_0")
    );
    assert!(!remote.headers.contains_key("Authorization"));
    assert_eq!(remote.tools.require_approval, ["send_email"]);
}

#[test]
fn secret_values_never_reach_the_config_or_any_object() {
    let bd = full();
    let c = build_ok(&bd);
    let toml = c
        .config_map
        .data
        .as_ref()
        .unwrap()
        .get(CONFIG_FILE)
        .unwrap();
    // The Secret references appear only as env var names; no Secret name or key is in the config.
    for needle in ["helper-discord", "secretKeyRef", "\"auth\"", "tools\" key"] {
        assert!(!toml.contains(needle), "`{needle}` in the config:\n{toml}");
    }
    // The header value comes from the Secret through an env var on the bot container.
    let bot = &pod(&c).containers[0];
    assert!(env_of(bot).contains(&(
        "OLLAMA_MCP_HEADER_REMOTE_0".into(),
        json!({"name": "OLLAMA_MCP_HEADER_REMOTE_0", "valueFrom": {"secretKeyRef": {"name": "remote", "key": "auth", "optional": false}}})
    )));
    // The token is never an env var.
    let all = serde_json::to_string(&c.deployment).unwrap();
    assert!(
        !all.contains("DISCORD_TOKEN\""),
        "the token must be a file, not an env var"
    );
}

#[test]
fn sidecars_for_every_kind_of_server() {
    let c = build_ok(&full());
    let p = pod(&c);
    let names: Vec<&str> = p
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "bridge-copy",
            "mcp-memory",
            "mcp-fetch",
            "mcp-browser",
            "mcp-thinking",
            "mcp-aws-docs",
            "mcp-tools",
            "mcp-web"
        ]
    );
    let copy = init(&c, "bridge-copy");
    assert_eq!(copy.image.as_deref(), Some("registry.example/bot:1.2.3"));
    assert_eq!(
        copy.restart_policy, None,
        "the copy is a plain init container that finishes"
    );
    assert_eq!(
        copy.command.as_deref().unwrap(),
        [
            "cp",
            "/usr/local/bin/ollama-mcp-bot",
            "/opt/ollama-mcp/bin/ollama-mcp-bot"
        ]
    );
    for c in p
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.name.starts_with("mcp-"))
    {
        assert_eq!(
            c.restart_policy.as_deref(),
            Some("Always"),
            "{} is a native sidecar",
            c.name
        );
        let probe = c.startup_probe.as_ref().unwrap();
        if c.name == "mcp-web" {
            // Serves HTTP itself: ready once it accepts connections.
            assert_eq!(
                probe.tcp_socket.as_ref().unwrap().port,
                IntOrString::Int(8100)
            );
        } else {
            // Behind the bridge: ready once the bridge's child MCP server is up, asked on the
            // health port (the MCP port listens on 127.0.0.1, out of the kubelet's reach).
            let get = probe
                .http_get
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no /healthz probe", c.name));
            assert_eq!(get.path.as_deref(), Some("/healthz"), "{}", c.name);
            let args = c.args.as_ref().unwrap();
            assert_eq!(
                get.port,
                IntOrString::Int(args[4].parse().unwrap()),
                "{}: probed on --health-port",
                c.name
            );
            assert_eq!(
                Some(&get.port),
                c.ports
                    .as_ref()
                    .map(|p| IntOrString::Int(p[0].container_port))
                    .as_ref()
            );
        }
        assert!(c.readiness_probe.is_some(), "{} reports readiness", c.name);
    }

    // Each preset runs its table entry through the bridge.
    for (server, p) in [
        ("memory", Preset::Memory),
        ("fetch", Preset::Fetch),
        ("browser", Preset::Puppeteer),
        ("thinking", Preset::SequentialThinking),
        ("aws-docs", Preset::AwsDocumentation),
    ] {
        let def = preset(p);
        let s = init(&c, &format!("mcp-{server}"));
        assert_eq!(s.image.as_deref(), Some(def.image), "{server}");
        assert_eq!(
            s.command.as_deref().unwrap(),
            ["/opt/ollama-mcp/bin/ollama-mcp-bot"]
        );
        let args = s.args.clone().unwrap();
        assert_eq!(&args[..2], ["bridge", "--port"]);
        // /mcp listens on 127.0.0.1 only; /healthz alone on the health port, 1000 above.
        let port: u16 = args[2].parse().unwrap();
        assert_eq!(
            args[3..5],
            ["--health-port".to_string(), (port + 1000).to_string()]
        );
        assert_eq!(args[5], "--");
        let cmd: Vec<&str> = args[6..].iter().map(String::as_str).collect();
        assert_eq!(&cmd[..def.command.len()], def.command, "{server}");
        let env = env_of(&s);
        for (k, v) in def.env {
            assert!(
                env.contains(&(k.to_string(), json!({"name": k, "value": v}))),
                "{server} lacks {k}"
            );
        }
        assert!(
            env.iter().any(|(k, _)| k == "HOME"),
            "{server}: HOME on the writable /tmp"
        );
    }
    // Preset args are appended.
    let fetch = init(&c, "mcp-fetch").args.unwrap();
    assert_eq!(
        fetch.last().map(String::as_str),
        Some("--ignore-robots-txt")
    );
    assert_eq!(fetch[2], "8102");
    // The memory graph lives on the bot's PVC, under its own sub-path.
    let mem = serde_json::to_value(init(&c, "mcp-memory").volume_mounts.unwrap()).unwrap();
    assert!(
        mem.as_array()
            .unwrap()
            .contains(&json!({"name": "data", "mountPath": "/data", "subPath": "mcp-memory"}))
    );
    // Chromium gets a memory-backed /dev/shm.
    let browser = serde_json::to_value(init(&c, "mcp-browser").volume_mounts.unwrap()).unwrap();
    assert!(
        browser
            .as_array()
            .unwrap()
            .contains(&json!({"name": "shm-browser", "mountPath": "/dev/shm"}))
    );
    let vols = serde_json::to_value(p.volumes.as_ref().unwrap()).unwrap();
    assert!(
        vols.as_array()
            .unwrap()
            .contains(&json!({"name": "shm-browser", "emptyDir": {"medium": "Memory"}}))
    );

    // A custom stdio image: its command and args behind the bridge, its env (with the Secret).
    let tools = init(&c, "mcp-tools");
    assert_eq!(tools.image.as_deref(), Some("ghcr.io/acme/tools-mcp:1.2"));
    assert_eq!(
        tools.args.clone().unwrap(),
        [
            "bridge",
            "--port",
            "8106",
            "--health-port",
            "9106",
            "--",
            "node",
            "dist/index.js",
            "--stdio"
        ]
    );
    let env = env_of(&tools);
    assert!(env.contains(&(
        "API_KEY".into(),
        json!({"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "tools", "key": "key"}}})
    )));
    assert!(env.contains(&("MODE".into(), json!({"name": "MODE", "value": "fast"}))));
    // A custom HTTP image runs as it is, on its own port.
    let web = init(&c, "mcp-web");
    assert_eq!(web.command, None);
    assert_eq!(web.ports.unwrap()[0].container_port, 8100);
    // The remote server has no sidecar.
    assert!(
        p.init_containers
            .iter()
            .flatten()
            .all(|c| c.name != "mcp-remote")
    );
}

#[test]
fn every_preset_alone() {
    for def in PRESETS {
        let mut bd = minimal();
        bd.spec.mcp_servers = vec![McpServerSpec {
            name: "p".into(),
            preset: Some(def.preset),
            ..Default::default()
        }];
        let c = build_ok(&bd);
        let s = init(&c, "mcp-p");
        assert_eq!(s.image.as_deref(), Some(def.image));
        assert_eq!(s.args.as_ref().unwrap()[2], "8100");
        let egress = serde_json::to_value(&c.network_policy).unwrap()["spec"]["egress"].clone();
        for port in def.egress_ports {
            assert!(
                egress
                    .to_string()
                    .contains(&format!("{{\"port\":{port},\"protocol\":\"TCP\"}}")),
                "{}: {port}",
                def.name
            );
        }
        if def.egress_ports.is_empty() {
            // Only DNS, Discord and Ollama.
            assert_eq!(
                egress.as_array().unwrap().len(),
                3,
                "{}: {egress}",
                def.name
            );
        }
    }
}

#[test]
fn restricted_pod_security_everywhere() {
    let c = build_ok(&full());
    let mut pods = vec![pod(&c).clone()];
    pods.push(
        c.ollama
            .as_ref()
            .unwrap()
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .clone()
            .unwrap(),
    );
    for p in pods {
        let sc = p.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert!(sc.run_as_user.is_some_and(|u| u > 0));
        for c in p
            .containers
            .iter()
            .chain(p.init_containers.iter().flatten())
        {
            let s = c
                .security_context
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no securityContext", c.name));
            assert_eq!(s.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(s.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(s.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(
                s.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_string()][..]),
                "{}",
                c.name
            );
            assert_eq!(
                s.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault",
                "{}",
                c.name
            );
        }
        assert_eq!(p.automount_service_account_token, Some(false));
    }
}

#[test]
fn labels_and_selectors() {
    let c = build_ok(&full());
    let o = c.ollama.as_ref().unwrap();
    let metas = [
        serde_json::to_value(&c.config_map.metadata).unwrap(),
        serde_json::to_value(&c.service_account.metadata).unwrap(),
        serde_json::to_value(&c.data_pvc.as_ref().unwrap().metadata).unwrap(),
        serde_json::to_value(&c.metrics_service.metadata).unwrap(),
        serde_json::to_value(&c.deployment.metadata).unwrap(),
        serde_json::to_value(&c.network_policy.metadata).unwrap(),
        serde_json::to_value(&c.service_monitor.as_ref().unwrap().metadata).unwrap(),
        serde_json::to_value(&o.deployment.metadata).unwrap(),
        serde_json::to_value(&o.service.metadata).unwrap(),
        serde_json::to_value(&o.pvc.as_ref().unwrap().metadata).unwrap(),
    ];
    for m in &metas {
        let labels = m["labels"].as_object().unwrap();
        assert_eq!(labels.len(), 6, "{m}");
        assert_eq!(labels["app.kubernetes.io/instance"], json!("helper"));
        assert_eq!(labels["app.kubernetes.io/part-of"], json!("ollama-mcp"));
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            json!("ollama-mcp-operator")
        );
        assert_eq!(m["namespace"], json!("bots"));
        assert_eq!(m["ownerReferences"][0]["controller"], json!(true));
        assert_eq!(m["ownerReferences"][0]["uid"], json!(fixtures::UID));
    }
    assert_eq!(
        metas[4]["labels"]["app.kubernetes.io/version"],
        json!("1.2.3")
    );
    assert_eq!(
        metas[7]["labels"]["app.kubernetes.io/version"],
        json!("0.12.6")
    );
    let bot_selector =
        json!({"app.kubernetes.io/name": "ollama-mcp-bot", "app.kubernetes.io/instance": "helper"});
    assert_eq!(
        serde_json::to_value(&c.deployment.spec.as_ref().unwrap().selector.match_labels).unwrap(),
        bot_selector
    );
    assert_eq!(
        serde_json::to_value(&c.metrics_service.spec.as_ref().unwrap().selector).unwrap(),
        bot_selector
    );
    let ollama_selector =
        json!({"app.kubernetes.io/name": "ollama", "app.kubernetes.io/instance": "helper"});
    assert_eq!(
        serde_json::to_value(&o.deployment.spec.as_ref().unwrap().selector.match_labels).unwrap(),
        ollama_selector
    );
    assert_eq!(
        serde_json::to_value(&o.service.spec.as_ref().unwrap().selector).unwrap(),
        ollama_selector
    );
    // Pod templates carry all six labels too (the pods watch maps them back by instance).
    let tpl = c
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(tpl.labels.as_ref().unwrap().len(), 6);
    assert_eq!(
        tpl.annotations
            .as_ref()
            .unwrap()
            .get("example.com/team")
            .map(String::as_str),
        Some("bots")
    );
}

#[test]
fn managed_ollama_and_storage() {
    let c = build_ok(&full());
    let o = c.ollama.as_ref().unwrap();
    assert_eq!(o.deployment.metadata.name.as_deref(), Some("helper-ollama"));
    let spec = o.deployment.spec.as_ref().unwrap();
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    let p = spec.template.spec.as_ref().unwrap();
    assert_eq!(p.runtime_class_name.as_deref(), Some("nvidia"));
    assert_eq!(
        p.node_selector
            .as_ref()
            .unwrap()
            .get("gpu")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        p.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("nvidia.com/gpu")
    );
    let ollama = &p.containers[0];
    assert_eq!(ollama.image.as_deref(), Some("ollama/ollama:0.12.6"));
    let limits = ollama.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(
        limits.get("nvidia.com/gpu").map(|q| q.0.as_str()),
        Some("1")
    );
    let env = env_of(ollama);
    assert!(env.contains(&(
        "OLLAMA_NUM_PARALLEL".into(),
        json!({"name": "OLLAMA_NUM_PARALLEL", "value": "2"})
    )));
    assert!(env.contains(&(
        "OLLAMA_HOST".into(),
        json!({"name": "OLLAMA_HOST", "value": "0.0.0.0:11434"})
    )));
    let pvc = serde_json::to_value(o.pvc.as_ref().unwrap()).unwrap();
    assert_eq!(
        pvc["spec"]["resources"]["requests"]["storage"],
        json!("50Gi")
    );
    assert_eq!(pvc["spec"]["storageClassName"], json!("fast"));
    assert_eq!(
        o.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        11434
    );
    // The bot's store PVC: an empty class name is kept (it means "no class").
    let data = serde_json::to_value(c.data_pvc.as_ref().unwrap()).unwrap();
    assert_eq!(data["metadata"]["name"], json!("helper-data"));
    assert_eq!(data["spec"]["storageClassName"], json!(""));
    assert_eq!(
        data["spec"]["resources"]["requests"]["storage"],
        json!("2Gi")
    );
    let vols = serde_json::to_value(pod(&c).volumes.as_ref().unwrap()).unwrap();
    assert!(
        vols.as_array().unwrap().contains(
            &json!({"name": "data", "persistentVolumeClaim": {"claimName": "helper-data"}})
        )
    );
}

#[test]
fn network_policy_follows_what_servers_declare() {
    let c = build_ok(&full());
    let np = serde_json::to_value(&c.network_policy).unwrap();
    let egress = np["spec"]["egress"].as_array().unwrap().clone();
    let anywhere = json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]);
    let rule = |to: &Value| {
        egress
            .iter()
            .find(|r| &r["to"] == to)
            .cloned()
            .unwrap_or_else(|| panic!("no rule to {to} in {egress:#?}"))
    };
    let ports: Vec<i64> = rule(&anywhere)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    // fetch/puppeteer 80+443, aws 443, the remote server 443, Discord's custom port 8443.
    assert_eq!(ports, [80, 443, 8443]);
    assert_eq!(
        rule(&json!([{"ipBlock": {"cidr": "10.20.0.0/16"}}]))["ports"],
        json!([{"port": 5432, "protocol": "TCP"}])
    );
    assert_eq!(
        rule(
            &json!([{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ollama", "app.kubernetes.io/instance": "helper"}}}])
        )["ports"],
        json!([{"port": 11434, "protocol": "TCP"}])
    );
}

#[test]
fn service_monitor_selects_the_metrics_service() {
    let c = build_ok(&full());
    let sm = serde_json::to_value(c.service_monitor.as_ref().unwrap()).unwrap();
    assert_eq!(sm["apiVersion"], json!("monitoring.coreos.com/v1"));
    assert_eq!(sm["kind"], json!("ServiceMonitor"));
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "30s", "relabelings": [{
            "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
            "targetLabel": "bot",
        }]}])
    );
    let selector = &sm["spec"]["selector"]["matchLabels"];
    let svc_labels = serde_json::to_value(&c.metrics_service.metadata.labels).unwrap();
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(
            &svc_labels[k], v,
            "the metrics Service must match selector label {k}"
        );
    }
}

#[test]
fn hashes_roll_the_pod_only_when_they_should() {
    let bd = full();
    let a = build_ok(&bd);
    let b = build_ok(&bd);
    assert_eq!(a.config_hash, b.config_hash, "the hash is stable");
    let mut changed = bd.clone();
    changed.spec.model.system_prompt = Some("You are Helper 2.".into());
    assert_ne!(
        build_ok(&changed).config_hash,
        a.config_hash,
        "a config change rolls the pod"
    );

    let annotations = |c: &Children| {
        c.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap()
    };
    let owner = owner(&bd);
    let with_secrets = |secrets: &crate::controller::validate::SecretVersions| {
        let bot =
            crate::controller::validate::validate(&bd, secrets, Some(fixtures::BOT_IMAGE)).unwrap();
        render(&owner, &bot).unwrap()
    };
    let mut secrets = all_secrets(&bd);
    let before = annotations(&with_secrets(&secrets));
    // A rotated Discord token is read live from the mounted file: no roll.
    secrets.insert("helper-discord".into(), Some("8".into()));
    assert_eq!(annotations(&with_secrets(&secrets)), before);
    // A rotated header Secret reaches the pod through an env var: roll.
    secrets.insert("remote".into(), Some("8".into()));
    let after = annotations(&with_secrets(&secrets));
    assert_ne!(
        after.get(SECRETS_HASH_ANNOTATION),
        before.get(SECRETS_HASH_ANNOTATION)
    );
    assert_eq!(
        after.get(CONFIG_HASH_ANNOTATION),
        before.get(CONFIG_HASH_ANNOTATION)
    );
}

#[test]
fn removing_a_server_removes_its_sidecar() {
    let mut bd = full();
    bd.spec.mcp_servers.retain(|s| s.name != "browser");
    let c = build_ok(&bd);
    let names: Vec<String> = pod(&c)
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert!(!names.contains(&"mcp-browser".to_string()), "{names:?}");
    assert!(
        !serde_json::to_string(pod(&c))
            .unwrap()
            .contains("shm-browser")
    );
    // Only servers that need the bridge bring the copy container.
    bd.spec
        .mcp_servers
        .retain(|s| s.name == "web" || s.name == "remote");
    let c = build_ok(&bd);
    let names: Vec<String> = pod(&c)
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["mcp-web"]);
}

#[test]
fn image_falls_back_to_the_operator_default() {
    let c = build_ok(&minimal());
    assert_eq!(
        pod(&c).containers[0].image.as_deref(),
        Some(fixtures::BOT_IMAGE)
    );
    assert_eq!(
        c.deployment.metadata.labels.as_ref().unwrap()["app.kubernetes.io/version"],
        "0.1.0"
    );
}

#[test]
fn bridge_health_ports_never_clash_with_an_http_sidecar() {
    let mut bd = minimal();
    bd.spec.mcp_servers = vec![
        McpServerSpec {
            name: "web".into(),
            image: Some("ghcr.io/acme/web-mcp:2.0".into()),
            transport: Some(crate::crd::Transport::Http),
            // The health port a bridge on 8100 would take.
            port: Some(9100),
            ..Default::default()
        },
        McpServerSpec {
            name: "memory".into(),
            preset: Some(Preset::Memory),
            ..Default::default()
        },
    ];
    let c = build_ok(&bd);
    let args = init(&c, "mcp-memory").args.unwrap();
    assert_eq!(
        args[..5],
        ["bridge", "--port", "8101", "--health-port", "9101"]
    );
}
