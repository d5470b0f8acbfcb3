//! MCP servers as native sidecars (init containers with `restartPolicy: Always`, so they start
//! before the bot and stop after it), and the endpoints the bot connects to.
//!
//! A stdio server runs behind the bot's bridge: an init container copies the `ollama-mcp-bot`
//! binary (static, so it runs in any image) into a shared emptyDir, and the sidecar's command
//! becomes `ollama-mcp-bot bridge --port P --health-port P+1000 -- <command> <args>`: MCP on
//! 127.0.0.1:P for the bot only, `/healthz` alone on 0.0.0.0:(P+1000) for the kubelet.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Probe, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BRIDGE_DIR;
use super::workload::restricted_container_security;
use crate::controller::validate::{EndpointKind, McpEndpoint};
use crate::crd::{BotDeploymentSpec, McpServerSpec};
use crate::presets::{PresetDef, SIDECAR_BASE_ENV, preset};

/// The path of the bot binary inside the bot image (a contract with the bot's Dockerfile).
pub const BOT_BINARY_IN_IMAGE: &str = "/usr/local/bin/ollama-mcp-bot";
/// Name of the init container that copies the bridge.
pub const BRIDGE_COPY_CONTAINER: &str = "bridge-copy";
pub const BRIDGE_VOLUME: &str = "bridge-bin";

/// The sidecar container name of a server.
pub fn container_name(server: &str) -> String {
    format!("mcp-{server}")
}

/// What the sidecars add to the pod.
#[derive(Debug, Default)]
pub struct Sidecars {
    /// Init containers in start order: the bridge copy (when needed), then one per server.
    pub init_containers: Vec<Container>,
    pub volumes: Vec<Volume>,
}

/// The sidecars of every non-remote server. `data_volume` is the bot's PVC volume name when
/// persistence is on (preset data directories go there, each under its own sub-path).
pub fn sidecars(
    spec: &BotDeploymentSpec,
    endpoints: &[McpEndpoint],
    bot_image: &str,
    data_volume: Option<&str>,
) -> Sidecars {
    let mut out = Sidecars::default();
    let bridged = endpoints
        .iter()
        .any(|e| matches!(e.kind, EndpointKind::Bridged { .. }));
    if bridged {
        out.volumes.push(empty_dir(BRIDGE_VOLUME, None));
        out.init_containers.push(Container {
            name: BRIDGE_COPY_CONTAINER.into(),
            image: Some(bot_image.to_string()),
            image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
            command: Some(vec![
                "cp".into(),
                BOT_BINARY_IN_IMAGE.into(),
                format!("{BRIDGE_DIR}/ollama-mcp-bot"),
            ]),
            volume_mounts: Some(vec![mount(BRIDGE_VOLUME, BRIDGE_DIR, false)]),
            security_context: Some(restricted_container_security()),
            resources: Some(small_resources()),
            ..Default::default()
        });
    }
    for (s, e) in spec.mcp_servers.iter().zip(endpoints) {
        let Some(port) = e.kind.port() else { continue };
        let def = s.preset.map(preset);
        let (container, volumes) = sidecar(s, def, e.kind, port, data_volume);
        out.init_containers.push(container);
        out.volumes.extend(volumes);
    }
    out
}

fn sidecar(
    s: &McpServerSpec,
    def: Option<&'static PresetDef>,
    kind: EndpointKind,
    port: u16,
    data_volume: Option<&str>,
) -> (Container, Vec<Volume>) {
    let name = container_name(&s.name);
    let tmp_volume = format!("tmp-{}", s.name);
    let mut volumes = vec![empty_dir(&tmp_volume, None)];
    let mut mounts = vec![mount(&tmp_volume, "/tmp", false)];

    let mut env: Vec<EnvVar> = SIDECAR_BASE_ENV
        .iter()
        .map(|(k, v)| plain_env(k, v))
        .collect();
    if let Some(d) = def {
        env.extend(d.env.iter().map(|(k, v)| plain_env(k, v)));
        if let Some(dir) = d.data_dir {
            match data_volume {
                Some(pvc) => mounts.push(VolumeMount {
                    name: pvc.to_string(),
                    mount_path: dir.to_string(),
                    sub_path: Some(format!("mcp-{}", s.name)),
                    ..Default::default()
                }),
                None => {
                    let v = format!("data-{}", s.name);
                    volumes.push(empty_dir(&v, None));
                    mounts.push(mount(&v, dir, false));
                }
            }
        }
        if d.needs_shm {
            let v = format!("shm-{}", s.name);
            volumes.push(empty_dir(&v, Some("Memory")));
            mounts.push(mount(&v, "/dev/shm", false));
        }
    }
    // The user's env comes last so that it overrides a preset's value of the same name.
    for e in &s.env {
        env.retain(|x| x.name != e.name);
        env.push(e.clone());
    }

    let (command, args) = match kind {
        EndpointKind::Bridged { .. } => {
            let mut server_cmd: Vec<String> = match def {
                Some(d) => d.command.iter().map(|c| c.to_string()).collect(),
                None => s.command.clone(),
            };
            server_cmd.extend(s.args.iter().cloned());
            mounts.push(mount(BRIDGE_VOLUME, BRIDGE_DIR, true));
            let health = kind.health_port().unwrap_or(port);
            let mut args = vec![
                "bridge".to_string(),
                "--port".into(),
                port.to_string(),
                "--health-port".into(),
                health.to_string(),
                "--".into(),
            ];
            args.extend(server_cmd);
            (
                Some(vec![format!("{BRIDGE_DIR}/ollama-mcp-bot")]),
                Some(args),
            )
        }
        // An HTTP server runs as its image says, with the user's command and args if given.
        _ => (
            (!s.command.is_empty()).then(|| s.command.clone()),
            (!s.args.is_empty()).then(|| s.args.clone()),
        ),
    };
    let image = s
        .image
        .clone()
        .or_else(|| def.map(|d| d.image.to_string()))
        .unwrap_or_default();
    // A bridged server is ready when the bridge's /healthz (on its health port: the MCP port
    // listens on 127.0.0.1) says its child is up; an HTTP server when it accepts connections.
    let probe = Probe {
        http_get: kind.health_port().map(|health| HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(i32::from(health)),
            ..Default::default()
        }),
        tcp_socket: matches!(kind, EndpointKind::Http { .. }).then(|| TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        period_seconds: Some(2),
        failure_threshold: Some(150),
        ..Default::default()
    };
    let container = Container {
        name,
        image: Some(image),
        command,
        args,
        env: Some(env),
        // Native sidecar: started before the bot, kept running, stopped after it.
        restart_policy: Some("Always".into()),
        // What the pod exposes: an HTTP server's own port, or a bridge's health port (its MCP
        // port is bound to 127.0.0.1 and reachable only inside the pod).
        ports: Some(vec![match kind.health_port() {
            Some(health) => ContainerPort {
                name: Some(format!("health-{health}")),
                container_port: i32::from(health),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            None => ContainerPort {
                name: Some(format!("mcp-{port}")),
                container_port: i32::from(port),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        }]),
        // The next container (and the bot) starts only once the server accepts connections;
        // npx/uvx may download the server first, hence the generous threshold (5 minutes).
        startup_probe: Some(probe.clone()),
        readiness_probe: Some(Probe {
            failure_threshold: Some(3),
            period_seconds: Some(10),
            ..probe
        }),
        resources: s.resources.clone(),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    (container, volumes)
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

pub fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

pub fn empty_dir(name: &str, medium: Option<&str>) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_string),
            size_limit: None,
        }),
        ..Default::default()
    }
}

fn small_resources() -> k8s_openapi::api::core::v1::ResourceRequirements {
    k8s_openapi::api::core::v1::ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ]
            .into(),
        ),
        limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
        ..Default::default()
    }
}
