//! Loading, layering and the error messages a person sees.

use std::path::Path;

use super::*;

fn write(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), text).expect("write");
    f
}

#[test]
fn defaults_are_valid() {
    let c = BotConfig::load_from(None, Vec::new()).expect("defaults load");
    assert_eq!(c.ollama.url, "http://127.0.0.1:11434");
    assert_eq!(c.chat.max_tool_rounds, 8);
}

#[test]
fn file_then_env_override() {
    let f = write(
        r#"
        [ollama]
        model = "qwen3"
        [ollama.options]
        temperature = 0.2
        [chat]
        max_tool_rounds = 3
        [[mcp.servers]]
        name = "memory"
        command = "npx"
        args = ["-y", "@modelcontextprotocol/server-memory"]
        tools.deny = ["delete_entities"]
        "#,
    );
    let env = vec![
        (
            "OLLAMA_MCP__CHAT__MAX_TOOL_ROUNDS".to_string(),
            "5".to_string(),
        ),
        ("OLLAMA_HOST".to_string(), "gpu-box".to_string()),
    ];
    let c = BotConfig::load_from(Some(f.path()), env).expect("loads");
    assert_eq!(c.ollama.model, "qwen3");
    assert_eq!(c.chat.max_tool_rounds, 5);
    assert_eq!(c.ollama.url, "http://gpu-box:11434");
    assert_eq!(
        c.ollama.options.get("temperature"),
        Some(&serde_json::json!(0.2))
    );
    assert!(!c.mcp.servers[0].tools.allows("delete_entities"));
    assert!(c.mcp.servers[0].tools.allows("read_graph"));
}

#[test]
fn unknown_key_names_file_and_key() {
    let f = write("[chat]\nmax_tool_round = 3\n");
    let e = BotConfig::load_from(Some(f.path()), Vec::new()).expect_err("unknown key");
    let msg = e.to_string();
    assert!(msg.contains("max_tool_round"), "{msg}");
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
}

#[test]
fn invalid_toml_names_the_line() {
    let f = write("[chat\nmax_tool_rounds = 3\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("bad toml")
        .to_string();
    assert!(
        msg.contains("invalid TOML") && msg.contains("line 1"),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_key() {
    let f = write("[chat]\nmax_tool_rounds = \"many\"\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("bad type")
        .to_string();
    assert!(msg.contains("chat.max_tool_rounds"), "{msg}");
}

#[test]
fn server_needs_exactly_one_transport() {
    let f = write("[[mcp.servers]]\nname = \"x\"\ncommand = \"a\"\nurl = \"http://h/mcp\"\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("both")
        .to_string();
    assert!(
        msg.contains("mcp.servers[0].url") && msg.contains("exactly one"),
        "{msg}"
    );
    let f = write("[[mcp.servers]]\nname = \"x\"\n");
    assert!(BotConfig::load_from(Some(f.path()), Vec::new()).is_err());
}

#[test]
fn duplicate_server_names_rejected() {
    let f = write(
        "[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\n[[mcp.servers]]\nname = \"a\"\ncommand = \"y\"\n",
    );
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("dup")
        .to_string();
    assert!(msg.contains("unique"), "{msg}");
}

#[test]
fn ids_as_strings_or_integers() {
    let f = write("[discord.access]\nadmin_users = [123, \"456\"]\n");
    let c = BotConfig::load_from(Some(f.path()), Vec::new()).expect("ids");
    assert_eq!(c.discord.access.admin_users, vec![123, 456]);
    let f = write("[discord.access]\nadmin_users = [\"abc\"]\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("bad id")
        .to_string();
    assert!(msg.contains("not a Discord id"), "{msg}");
}

#[test]
fn claude_desktop_json_is_accepted() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("servers.json"),
        r#"{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
            "docs": {"url": "http://127.0.0.1:8101/mcp", "type": "http"},
            "off": {"command": "x", "disabled": true}}}"#,
    )
    .expect("write");
    let cfg = dir.path().join("bot.toml");
    std::fs::write(&cfg, "[mcp]\nservers_json = \"servers.json\"\n").expect("write");
    let c = BotConfig::load_from(Some(&cfg), Vec::new()).expect("loads");
    let names: Vec<_> = c.mcp.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["docs", "fetch"]);
}

#[test]
fn rendered_toml_round_trips() {
    let mut c = BotConfig::default();
    let raw = McpServerConfig {
        name: "m".into(),
        command: Some("npx".into()),
        env: [("TOKEN".to_string(), "x".to_string())].into(),
        call_timeout_secs: Some(5),
        ..Default::default()
    };
    c.mcp
        .servers
        .push(McpServer::try_from(raw).expect("valid server"));
    let f = write(&c.to_toml());
    assert_eq!(
        BotConfig::load_from(Some(f.path()), Vec::new()).expect("round trip"),
        c
    );
}

#[test]
fn shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.example.toml");
    let c = BotConfig::load_from(Some(&path), Vec::new()).expect("docs/config.example.toml loads");
    assert_eq!(c.mcp.servers.len(), 4);
}

#[test]
fn ollama_host_as_ollama_reads_it() {
    let load = |host: &str| {
        BotConfig::load_from(None, vec![("OLLAMA_HOST".to_string(), host.to_string())])
            .map(|c| c.ollama.url)
    };
    assert_eq!(load("110.0.0.0").expect("ip"), "http://110.0.0.0:11434");
    assert_eq!(load(":11434").expect("port only"), "http://127.0.0.1:11434");
    assert_eq!(
        load("0.0.0.0:11434").expect("any"),
        "http://127.0.0.1:11434"
    );
    let msg = load("box:99999").expect_err("bad port").to_string();
    assert!(msg.contains("OLLAMA_HOST") && msg.contains("port"), "{msg}");
}

#[test]
fn option_types_are_checked_as_ollama_checks_them() {
    let f = write("[ollama.options]\nnum_ctx = \"8192\"\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("string num_ctx")
        .to_string();
    assert!(
        msg.contains("ollama.options.num_ctx") && msg.contains("integer"),
        "{msg}"
    );
    let f = write("[ollama.options]\nstop = \"</s>\"\n");
    assert!(BotConfig::load_from(Some(f.path()), Vec::new()).is_err());
    let f = write("[ollama.options]\ntemperature = 0.2\nnum_ctx = 4096\nstop = [\"x\"]\n");
    BotConfig::load_from(Some(f.path()), Vec::new()).expect("right types load");
}

#[test]
fn keep_alive_is_a_go_duration() {
    let f = write("[ollama]\nkeep_alive = \"forever\"\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("forever")
        .to_string();
    assert!(
        msg.contains("ollama.keep_alive") && msg.contains("invalid duration \"forever\""),
        "{msg}"
    );
    for ok in ["5m", "0", "-1m", "1h30m"] {
        let f = write(&format!("[ollama]\nkeep_alive = \"{ok}\"\n"));
        BotConfig::load_from(Some(f.path()), Vec::new()).expect(ok);
    }
}

#[test]
fn servers_parse_into_transports_with_nonzero_timeouts() {
    let f = write("[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\ncall_timeout_secs = 0\n");
    let msg = BotConfig::load_from(Some(f.path()), Vec::new())
        .expect_err("zero timeout")
        .to_string();
    assert!(msg.contains("mcp.servers[0].call_timeout_secs"), "{msg}");
    let f = write("[[mcp.servers]]\nname = \"a\"\nurl = \"http://h/mcp\"\nenv_inherit = [\"X\"]\n");
    assert!(BotConfig::load_from(Some(f.path()), Vec::new()).is_err());
    let f = write("[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\nstartup_timeout_secs = 7\n");
    let c = BotConfig::load_from(Some(f.path()), Vec::new()).expect("loads");
    let s = &c.mcp.servers[0];
    assert_eq!(s.call_timeout, McpServer::DEFAULT_CALL_TIMEOUT);
    assert_eq!(s.startup_timeout, std::time::Duration::from_secs(7));
    assert!(matches!(&s.transport, McpTransport::Stdio(st) if st.command == "x"));
}

#[test]
fn shown_configuration_redacts_env_and_header_values() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("servers.json"),
        r#"{"mcpServers": {"github": {"command": "npx",
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_canary0123456789"}},
            "docs": {"url": "http://127.0.0.1:8101/mcp", "headers": {"Authorization": "Bearer canary-h"}}}}"#,
    )
    .expect("write");
    let cfg = dir.path().join("bot.toml");
    std::fs::write(
        &cfg,
        "[mcp]\nservers_json = \"servers.json\"\n[[mcp.servers]]\nname = \"m\"\ncommand = \"x\"\nenv = { API_KEY = \"canary-toml\" }\n",
    )
    .expect("write");
    let c = BotConfig::load_from(Some(&cfg), Vec::new()).expect("loads");
    let shown = c.to_toml_redacted();
    for secret in ["ghp_canary0123456789", "canary-h", "canary-toml"] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
    assert!(
        shown.contains("GITHUB_PERSONAL_ACCESS_TOKEN = \"<set, 20 chars>\""),
        "{shown}"
    );
    assert!(
        shown.contains("Authorization = \"<set, 15 chars>\""),
        "{shown}"
    );
}

/// Found by `any_environment_loads_or_says_why`: figment's own value parser panicked on a quoted
/// value with non-ASCII text before a backslash escape.
#[test]
fn a_quoted_env_value_with_non_ascii_and_an_escape_loads() {
    let env = vec![(
        "OLLAMA_MCP__CHAT__SYSTEM_PROMPT".to_string(),
        r#""Grüße \"Freund\" ☕""#.to_string(),
    )];
    let c = BotConfig::load_from(None, env).expect("loads");
    assert_eq!(c.chat.system_prompt, r#"Grüße "Freund" ☕"#);
}
