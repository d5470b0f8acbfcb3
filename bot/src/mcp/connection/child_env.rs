//! What a stdio child inherits from the bot, and that it dies with the bot.
//!
//! A child gets a small allow-list of the bot's environment plus exactly what its configuration
//! names (`env`, `env_inherit`): the Discord token and the values of `headers_env` live in the
//! bot's environment and must never reach a process that a model can drive.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::config::{BOT_SECRETS, StdioServer};

/// Variables every child inherits when the bot has them: what programs need to run at all
/// (locale, time zone, home for caches), Node's own settings and the proxies a user set.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TZ",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];
const INHERITED_PREFIXES: &[&str] = &["LC_", "NODE_"];

fn inherited_by_default(name: &str) -> bool {
    INHERITED.contains(&name) || INHERITED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The whole environment of `server`'s child, given the bot's own (`parent`).
pub fn child_env(
    server: &StdioServer,
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = parent
        .into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return false;
            };
            !BOT_SECRETS.contains(&name)
                && (inherited_by_default(name) || server.env_inherit.iter().any(|n| n == name))
        })
        .collect();
    for (name, value) in &server.env {
        env.insert(OsString::from(name), OsString::from(value));
    }
    env
}

/// Asks Linux to SIGKILL the child when the bot dies, however it dies (`kill -9` included):
/// the child is the leader of its process group and the hub's clean shutdown cannot run then.
/// `unsafe_code` is denied in the workspace; `pre_exec` is unsafe by signature and is allowed
/// here alone.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only calls `prctl` and
    // `getppid`, which are async-signal-safe; it allocates nothing and touches no lock.
    // The death signal follows the forking THREAD: the hub spawns from Tokio worker threads,
    // which live as long as the runtime (and the runtime as long as the bot).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The bot died between fork and prctl: the signal would never come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut tokio::process::Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C.UTF-8"),
            ("NODE_OPTIONS", "--max-old-space-size=512"),
            ("https_proxy", "http://proxy:3128"),
            ("DISCORD_TOKEN", "canary"),
            ("DOCS_MCP_AUTH", "Bearer canary"),
            ("AWS_SECRET_ACCESS_KEY", "canary"),
            ("EXTRA", "wanted"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    fn server(env_inherit: &[&str]) -> StdioServer {
        StdioServer {
            command: "x".into(),
            args: vec![],
            env: [("OWN".to_string(), "1".to_string())].into(),
            env_inherit: env_inherit.iter().map(|s| s.to_string()).collect(),
            cwd: None,
        }
    }

    #[test]
    fn allow_list_plus_what_the_config_names() {
        let env = child_env(&server(&["EXTRA", "DISCORD_TOKEN"]), parent());
        let names: Vec<_> = env.keys().filter_map(|k| k.to_str()).collect();
        assert_eq!(
            names,
            [
                "EXTRA",
                "HOME",
                "LC_ALL",
                "NODE_OPTIONS",
                "OWN",
                "PATH",
                "https_proxy"
            ]
        );
        assert!(!env.values().any(|v| v.to_string_lossy().contains("canary")));
    }
}
