//! Shared set-up of the end-to-end Discord tests: the Discord double playing a guild with users,
//! the Ollama double playing the model, and the BUILT `ollama-mcp-bot run` in between.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ollama_mcp_bot::config::BotConfig;
use ollama_mcp_tests::bot_process::{bot_binary, test_config, write_config};
use ollama_mcp_tests::discord_double::{DiscordDouble, DoubleConfig, Message, World};
use ollama_mcp_tests::ollama_double::OllamaDouble;
use tokio::process::{Child, Command};

/// The bot token of the tests; a test greps the logs for it.
pub const TOKEN: &str = "MTE4OTk.discord-double.s3cr3t-t0ken-value";
/// Generous waits: a loaded 2-core machine starts processes slowly.
pub const WAIT: Duration = Duration::from_secs(60);
pub const MODEL: &str = "llama3.2";

/// The people and places of the test guild.
#[derive(Debug, Clone, Copy)]
pub struct People {
    pub guild: u64,
    pub general: u64,
    pub random: u64,
    pub alice: u64,
    pub bob: u64,
    pub admin: u64,
    pub admin_role: u64,
    pub mods: u64,
}

pub struct Harness {
    pub discord: DiscordDouble,
    pub ollama: OllamaDouble,
    pub dir: tempfile::TempDir,
    pub config: BotConfig,
    pub p: People,
    pub bot: Option<Child>,
    /// Environment for the next start (DISCORD_TOKEN by default).
    pub env: Vec<(String, String)>,
    starts: usize,
}

/// An Ollama double with the default model that echoes (`echo: <question>`).
pub async fn echo_model() -> OllamaDouble {
    OllamaDouble::builder()
        .model(MODEL, &["completion", "tools"])
        .start()
        .await
        .expect("Ollama double")
}

impl Harness {
    /// The world and the configuration, without starting the bot.
    pub async fn prepare(
        double: DoubleConfig,
        ollama: OllamaDouble,
        setup: impl FnOnce(&mut BotConfig, &People),
    ) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let discord = DiscordDouble::start_with(double).await;
        let guild = discord.add_guild("Test Guild");
        let general = discord.add_text_channel(guild, "general");
        let random = discord.add_text_channel(guild, "random");
        let (alice, bob, admin) = (
            discord.add_user("alice"),
            discord.add_user("bob"),
            discord.add_user("admin"),
        );
        let admin_role = discord.add_role(guild, "bot-admins");
        let mods = discord.add_role(guild, "mods");
        discord.add_member(guild, alice, &[]);
        discord.add_member(guild, bob, &[mods]);
        discord.add_member(guild, admin, &[admin_role]);
        let p = People {
            guild,
            general,
            random,
            alice,
            bob,
            admin,
            admin_role,
            mods,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path(), &ollama.url(), Vec::new());
        config.ollama.model = MODEL.into();
        config.ollama.max_retries = 1;
        config.discord.api_base = discord.api_base();
        config.discord.access.admin_roles = vec![admin_role];
        setup(&mut config, &p);
        let env = vec![("DISCORD_TOKEN".to_string(), TOKEN.to_string())];
        Harness {
            discord,
            ollama,
            dir,
            config,
            p,
            bot: None,
            env,
            starts: 0,
        }
    }

    /// Prepares and starts the bot, waiting until it is connected and its commands registered.
    pub async fn start(
        ollama: OllamaDouble,
        setup: impl FnOnce(&mut BotConfig, &People),
    ) -> Harness {
        let mut h = Self::prepare(DoubleConfig::new(TOKEN), ollama, setup).await;
        h.start_bot().await;
        h
    }

    pub fn log_path(&self, start: usize) -> PathBuf {
        self.dir.path().join(format!("bot-{start}.log"))
    }

    /// Everything the bot processes wrote to stderr so far.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| std::fs::read_to_string(self.log_path(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Spawns `ollama-mcp-bot run --config ...` without waiting.
    pub fn spawn_bot(&mut self) {
        self.starts += 1;
        let path = write_config(self.dir.path(), &self.config);
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut cmd = Command::new(bot_binary());
        cmd.arg("run").arg("--config").arg(&path);
        cmd.env_remove("RUST_LOG")
            .env_remove("OLLAMA_HOST")
            .env_remove("OLLAMA_MCP_CONFIG");
        cmd.env_remove("DISCORD_TOKEN")
            .env_remove("DISCORD_TOKEN_FILE");
        cmd.env("RUST_LOG", "info,ollama_mcp_bot=debug");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        self.bot = Some(cmd.spawn().expect("spawn ollama-mcp-bot run"));
    }

    /// Starts the bot and waits until it has identified, resumed nothing, and registered commands.
    pub async fn start_bot(&mut self) {
        let registrations = self.discord.with(|w| w.registrations.len());
        let identifies = self.discord.with(|w| w.identifies.len());
        self.spawn_bot();
        self.discord
            .wait_for("the bot to connect and register its commands", WAIT, |w| {
                (w.attached
                    && w.identifies.len() > identifies
                    && w.registrations.len() > registrations)
                    .then_some(())
            })
            .await;
    }

    /// Stops the bot (SIGTERM, then kill) and waits for it to exit.
    pub async fn stop_bot(&mut self) -> Option<i32> {
        let mut child = self.bot.take()?;
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    /// Waits for the bot process to exit on its own.
    pub async fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.bot.as_mut()?;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!(
                "the bot did not exit within {timeout:?}; log:\n{}",
                self.logs()
            ),
        }
    }

    /// The bot's reply to `message` once `done` says its content is final. (On a timeout the
    /// double panics with a summary; the harness then prints the bot's log.)
    pub async fn reply(&self, message: u64, what: &str, done: impl Fn(&str) -> bool) -> Message {
        self.discord
            .wait_for(what, WAIT, |w: &World| {
                w.replies_to(message)
                    .into_iter()
                    .find(|m| done(&m.content))
                    .cloned()
            })
            .await
    }

    /// The reply to `message` once its content equals `expected`.
    pub async fn reply_eq(&self, message: u64, expected: &str) -> Message {
        self.reply(message, &format!("the reply {expected:?}"), |c| {
            c == expected
        })
        .await
    }

    /// The reply to `message` once its content contains `needle`.
    pub async fn reply_containing(&self, message: u64, needle: &str) -> Message {
        self.reply(message, &format!("a reply containing {needle:?}"), |c| {
            c.contains(needle)
        })
        .await
    }

    /// `<@bot> text`
    pub fn mention(&self, text: &str) -> String {
        format!("<@{}> {text}", self.discord.bot_id())
    }

    /// A user says something and we wait for the bot to answer with `expected`.
    pub async fn ask(&self, user: u64, channel: u64, text: &str, expected: &str) -> u64 {
        let id = self.discord.user_says(user, channel, &self.mention(text));
        self.reply_eq(id, expected).await;
        id
    }

    /// Proof of silence: after `message` (which must get no answer), another question is sent in
    /// the same channel and answered; then `message` must still have no reply.
    pub async fn assert_no_reply(&self, message: u64, channel: u64) {
        let probe = self
            .discord
            .user_says(self.p.admin, channel, &self.mention("probe"));
        self.reply_eq(probe, "echo: probe").await;
        let replies = self.discord.with(|w| w.replies_to(message).len());
        assert_eq!(
            replies,
            0,
            "message {message} should not be answered\n{}",
            self.discord.summary()
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- bot log ----\n{}\n---- Discord double ----\n{}",
                self.logs(),
                self.discord.summary()
            );
        }
    }
}
