//! Validation tests. Over ~450 lines: one test per field group of the spec, sharing helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
use super::*;
use crate::crd::*;
use crate::fixtures::{self, all_secrets, full, minimal};

fn problems(bd: &BotDeployment) -> Vec<Problem> {
    match validate(bd, &all_secrets(bd), Some(fixtures::BOT_IMAGE)) {
        Ok(_) => Vec::new(),
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
        text.starts_with("spec.discord.triggers[0]: ") && text.contains("; spec.model.name: ``"),
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
        &with(|s| s.discord.access.allowed_users = vec![DiscordId("99999999999999999999".into())]),
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
    assert!(
        validate(
            &with(|s| s.image = Some("b:1".into())),
            &all_secrets(&bd),
            None
        )
        .is_ok()
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
            s.pod_annotations = [("ollama-mcp.io/config-hash".to_string(), "x".to_string())].into()
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
