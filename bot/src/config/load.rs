//! Loading: built-in defaults, then the TOML file, then `OLLAMA_MCP__SECTION__KEY` variables and
//! `OLLAMA_HOST`, then the `servers_json` file; each error names the file or variable and the key.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};

use super::mcp::servers_from_json_file;
use super::ollama_host::parse_ollama_host;
use super::{BotConfig, CONFIG_ENV, ConfigError, ENV_PREFIX};

/// Where the configuration file comes from: `--config`, else `$OLLAMA_MCP_CONFIG`, else none.
pub fn config_path(cli: Option<&Path>) -> Option<PathBuf> {
    cli.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

impl BotConfig {
    /// Loads defaults → file → environment, then the `servers_json` file, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`BotConfig::load`] with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut fig = Figment::from(Serialized::defaults(BotConfig::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "{}: no such file (give an existing TOML file with --config or {CONFIG_ENV})",
                    path.display()
                )));
            }
            // Parse once on our own first: figment reports a bad file without its line.
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Load(format!("{}: {e}", path.display())))?;
            if let Err(e) = text.parse::<toml::Table>() {
                return Err(ConfigError::Load(format!(
                    "{}: invalid TOML: {}",
                    path.display(),
                    e.to_string().trim()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        for (name, value) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
            fig = fig.merge(EnvVar::new(name, value));
        }
        let mut config: BotConfig = fig.extract().map_err(|e| {
            ConfigError::Load(
                e.into_iter()
                    .map(|e| describe_figment_error(&e, file))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        if let Some((_, host)) = env
            .iter()
            .find(|(k, v)| k == "OLLAMA_HOST" && !v.is_empty())
        {
            // OLLAMA_MCP__OLLAMA__URL wins over Ollama's own variable.
            if !env
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("OLLAMA_MCP__OLLAMA__URL"))
            {
                config.ollama.url =
                    parse_ollama_host(host).map_err(|problem| ConfigError::Invalid {
                        key: "OLLAMA_HOST".into(),
                        problem,
                    })?;
            }
        }
        if let Some(json) = config.mcp.servers_json.clone() {
            let base = file.and_then(Path::parent).unwrap_or(Path::new("."));
            let path = if json.is_absolute() {
                json
            } else {
                base.join(json)
            };
            config.mcp.servers.extend(servers_from_json_file(&path)?);
        }
        config.validate()?;
        Ok(config)
    }
}

/// One `OLLAMA_MCP__SECTION__KEY` variable as a figment provider, so that an error names it.
struct EnvVar {
    name: String,
    dict: figment::value::Dict,
}

impl EnvVar {
    fn new(name: &str, value: &str) -> Self {
        let dotted = name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        let value = lenient_value(value);
        Self {
            name: name.to_string(),
            dict: figment::util::nest(&dotted, value)
                .into_dict()
                .unwrap_or_default(),
        }
    }
}

/// Lenient parsing, as figment's own Env provider does: `5` is a number, `[a, b]` a list, and
/// anything else the string itself.
fn lenient_value(raw: &str) -> figment::value::Value {
    use figment::value::Value;
    // figment 0.10's parser slices a quoted string by CHARACTER index at its first backslash and
    // panics when non-ASCII text comes before it; such values go through the TOML parser instead.
    if raw.is_ascii() || !raw.contains('\\') {
        return raw.parse().unwrap_or_else(|_| Value::from(raw.to_string()));
    }
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| Value::serialize(v).ok())
        .unwrap_or_else(|| Value::from(raw.to_string()))
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.name))
    }
    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.dict.clone()))
    }
}

fn describe_figment_error(e: &figment::Error, file: Option<&Path>) -> String {
    let kind = e.kind.to_string();
    // `[mcp]` parses its servers itself and names the exact key (`mcp.servers[2].url`).
    let key = if e.path.is_empty() || kind.starts_with("configuration key") {
        String::new()
    } else {
        format!("key `{}`: ", e.path.join("."))
    };
    let source = match &e.metadata {
        Some(m) if m.name.contains("TOML") => file
            .map(|f| format!("{}: ", f.display()))
            .unwrap_or_default(),
        Some(m) => format!("{}: ", m.name),
        None => String::new(),
    };
    format!("{source}{key}{kind}")
}
