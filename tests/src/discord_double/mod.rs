//! A protocol-faithful Discord double: the REST API under `/api/v10/` and the gateway WebSocket,
//! on 127.0.0.1, for end-to-end tests of the bot.
//!
//! It plays Discord's side exactly where the bot depends on it and refuses what Discord refuses:
//! - REST checks `Authorization: Bot <token>` (401 `{"message": "401: Unauthorized", "code": 0}`),
//!   validates message bodies (over 2000 characters → 400 code 50035, empty → 50006, conflicting
//!   `allowed_mentions` → 50035, unknown reply target, malformed buttons), sends `X-RateLimit-*`
//!   headers, enforces per-channel buckets and a global limit with 429 + `retry_after`, and
//!   answers unknown routes with 404 and wrong methods with 405, in Discord's error JSON.
//! - The gateway sends HELLO, checks IDENTIFY (token → close 4004, intents → 4013/4014), sends
//!   READY and GUILD_CREATE, acknowledges heartbeats, numbers dispatches (`s`) per session,
//!   replays missed events on RESUME, and withholds message content without the MESSAGE_CONTENT
//!   intent (except DMs, mentions and the bot's own messages), as Discord does.
//! - Interactions: slash commands exist only once the bot registered them; a callback must come
//!   within the deadline and only once (40060 otherwise); follow-ups go through the interaction's
//!   webhook.
//!
//! Tests build the world (users, guilds, roles, channels, threads, DMs), act as users
//! ([`DiscordDouble::user_says`], [`DiscordDouble::slash`], [`DiscordDouble::press_button`]),
//! disturb the connection ([`DiscordDouble::force_reconnect`], [`DiscordDouble::drop_connection`],
//! [`DiscordDouble::force_429`], [`DiscordDouble::rotate_token`]) and observe everything through
//! [`World`] with [`DiscordDouble::wait_for`].

mod gateway;
pub mod ratelimit;
mod rest;
mod world;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::serve::ListenerExt as _;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub use ratelimit::Limit;
pub use world::{
    Channel, ChannelKind, CommandRegistration, Guild, Identify, Interaction, Message, RateLimited,
    RestCall, Role, User, World, intents,
};
use world::{snowflake, timestamp_now};

/// How the double behaves; [`DoubleConfig::new`] gives Discord's usual values.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// The bot token the double accepts.
    pub token: String,
    pub bot_name: String,
    /// `heartbeat_interval` in HELLO (Discord sends about 41 s).
    pub heartbeat_interval: Duration,
    /// Privileged intents "enabled in the developer portal"; asking for others closes with 4014.
    pub privileged_intents: u64,
    /// Per-route limits by route class: `create_message`, `edit_message`, `delete_message`,
    /// `typing` (per channel), `webhook` (per interaction token), `interaction_callback`.
    pub limits: BTreeMap<&'static str, Limit>,
    /// Requests per window across all routes (Discord: 50 per second).
    pub global_limit: Limit,
    /// Time an interaction may wait for its first response (Discord: 3 s).
    pub interaction_deadline: Duration,
}

impl DoubleConfig {
    pub fn new(token: &str) -> Self {
        let mut limits = BTreeMap::new();
        limits.insert("create_message", Limit::new(5, Duration::from_secs(5)));
        limits.insert("edit_message", Limit::new(5, Duration::from_secs(5)));
        limits.insert("delete_message", Limit::new(5, Duration::from_secs(5)));
        limits.insert("typing", Limit::new(5, Duration::from_secs(5)));
        limits.insert("webhook", Limit::new(5, Duration::from_secs(2)));
        Self {
            token: token.to_string(),
            bot_name: "ollama-bot".into(),
            heartbeat_interval: Duration::from_millis(41_250),
            privileged_intents: intents::MESSAGE_CONTENT,
            limits,
            global_limit: Limit::new(50, Duration::from_secs(1)),
            interaction_deadline: Duration::from_secs(3),
        }
    }
}

/// What the gateway task of one connection is told to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    Close(u16, &'static str),
    /// Drop the TCP connection without a close frame (a network failure).
    Drop,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Outbound>,
}

/// The bot's gateway session: what RESUME continues.
#[derive(Debug)]
pub(crate) struct Session {
    pub id: String,
    pub seq: u64,
    pub intents: u64,
    /// Dispatches by sequence number, for replay on RESUME.
    pub log: VecDeque<(u64, Value)>,
    /// The connection currently attached to the session.
    pub live: Option<Conn>,
}

pub(crate) struct Inner {
    pub world: World,
    pub config: DoubleConfig,
    /// Every token the application had; the last one is valid.
    pub tokens: Vec<String>,
    pub buckets: ratelimit::Buckets,
    pub session: Option<Session>,
    pub next_conn: u64,
    pub gateway_url: String,
    /// Dispatches re-sent after the next RESUME's replay (at-least-once delivery).
    pub redeliver_on_resume: u32,
}

impl Inner {
    /// Which token generation `token` is, if it is the current (only valid) one.
    pub(crate) fn current_token(&self, token: &str) -> Option<usize> {
        let current = self.tokens.len().checked_sub(1)?;
        (self.tokens[current] == token).then_some(current)
    }

    /// Which generation a token ever was (for the record of rejected requests).
    pub(crate) fn token_generation(&self, token: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t == token)
    }

    /// Sends a dispatch (op 0) to the bot's session, if the session's intents cover it; logs it
    /// for RESUME. Without a session (the bot is not connected) the event is lost, as on Discord.
    pub(crate) fn dispatch(&mut self, event: &str, mut data: Value) {
        let bot = self.world.bot_id();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let is_dm = data.get("guild_id").is_none_or(Value::is_null);
        let needed = match event {
            "GUILD_CREATE" | "THREAD_CREATE" | "CHANNEL_CREATE" => intents::GUILDS,
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" | "MESSAGE_DELETE" if is_dm => {
                intents::DIRECT_MESSAGES
            }
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" | "MESSAGE_DELETE" => intents::GUILD_MESSAGES,
            _ => 0,
        };
        if session.intents & needed != needed {
            return;
        }
        if matches!(event, "MESSAGE_CREATE" | "MESSAGE_UPDATE")
            && session.intents & intents::MESSAGE_CONTENT == 0
        {
            let bot = bot.to_string();
            let own = data["author"]["id"].as_str() == Some(bot.as_str());
            let mentioned = data["mentions"]
                .as_array()
                .is_some_and(|m| m.iter().any(|u| u["id"].as_str() == Some(bot.as_str())));
            if !(own || is_dm || mentioned) {
                data["content"] = json!("");
                data["embeds"] = json!([]);
                data["attachments"] = json!([]);
                data["components"] = json!([]);
            }
        }
        // Discord: without GUILD_PRESENCES (or in guilds over 75k members) GUILD_CREATE's
        // `members` hold only the bot itself and members in voice channels (none here).
        if event == "GUILD_CREATE" && session.intents & intents::GUILD_PRESENCES == 0 {
            let bot = bot.to_string();
            if let Some(members) = data["members"].as_array_mut() {
                members.retain(|m| m["user"]["id"].as_str() == Some(bot.as_str()));
            }
        }
        session.seq += 1;
        let frame = json!({"op": 0, "s": session.seq, "t": event, "d": data});
        session.log.push_back((session.seq, frame.clone()));
        if session.log.len() > 10_000 {
            session.log.pop_front();
        }
        self.world.dispatched.push((session.seq, event.to_string()));
        if let Some(conn) = &session.live {
            let _ = conn.tx.send(Outbound::Text(frame.to_string()));
        }
    }

    /// Pings of a message: users, roles and @everyone it mentions, after `allowed_mentions`
    /// (None = Discord's default: everything mentioned pings, and the replied user too).
    pub(crate) fn pings(
        &self,
        content: &str,
        guild: Option<u64>,
        allowed: Option<&Value>,
        replied_author: Option<u64>,
    ) -> (Vec<u64>, Vec<u64>, bool) {
        let (users, roles, everyone) = parse_mentions(content);
        let parse: Vec<&str> = allowed
            .and_then(|a| a["parse"].as_array())
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let listed = |field: &str, id: u64| {
            allowed.and_then(|a| a[field].as_array()).is_some_and(|l| {
                l.iter()
                    .any(|v| v.as_str() == Some(&id.to_string()) || v.as_u64() == Some(id))
            })
        };
        let all = allowed.is_none();
        let mut pinged_users: Vec<u64> = users
            .into_iter()
            .filter(|u| self.world.users.contains_key(u))
            .filter(|u| all || parse.contains(&"users") || listed("users", *u))
            .collect();
        if let Some(author) = replied_author {
            let ping_replied = allowed.is_none_or(|a| a["replied_user"] == true);
            if ping_replied && !pinged_users.contains(&author) {
                pinged_users.push(author);
            }
        }
        let guild_roles: Vec<u64> = guild
            .and_then(|g| self.world.guilds.get(&g))
            .map(|g| g.roles.iter().map(|r| r.id).collect())
            .unwrap_or_default();
        let pinged_roles = roles
            .into_iter()
            .filter(|r| guild_roles.contains(r))
            .filter(|r| all || parse.contains(&"roles") || listed("roles", *r))
            .collect();
        let pinged_everyone = everyone && guild.is_some() && (all || parse.contains(&"everyone"));
        (pinged_users, pinged_roles, pinged_everyone)
    }
}

/// User ids (`<@1>`, `<@!1>`), role ids (`<@&1>`) and whether `@everyone`/`@here` occur.
fn parse_mentions(content: &str) -> (Vec<u64>, Vec<u64>, bool) {
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.strip_prefix('&') {
            Some(r) => (true, r),
            None => (false, rest.strip_prefix('!').unwrap_or(rest)),
        };
        let digits: String = body.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty()
            && body[digits.len()..].starts_with('>')
            && let Ok(id) = digits.parse::<u64>()
        {
            let list = if is_role { &mut roles } else { &mut users };
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    let everyone = content.contains("@everyone") || content.contains("@here");
    (users, roles, everyone)
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a test failure already; keep serving the state.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes waiters.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_waiters();
        out
    }
}

/// A message a test user sends.
#[derive(Debug, Clone)]
pub struct UserMessage {
    pub author: u64,
    pub channel: u64,
    pub content: String,
    /// Reply to this message.
    pub reply_to: Option<u64>,
    /// Whether the reply pings the replied author (Discord's default: yes).
    pub ping_replied: bool,
}

impl UserMessage {
    pub fn new(author: u64, channel: u64, content: impl Into<String>) -> Self {
        Self {
            author,
            channel,
            content: content.into(),
            reply_to: None,
            ping_replied: true,
        }
    }
    pub fn reply_to(mut self, message: u64) -> Self {
        self.reply_to = Some(message);
        self
    }
    pub fn without_ping(mut self) -> Self {
        self.ping_replied = false;
        self
    }
}

/// The running double. Dropping it stops the server.
pub struct DiscordDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for DiscordDouble {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(s) = self
            .shared
            .lock()
            .session
            .as_ref()
            .and_then(|s| s.live.as_ref())
        {
            let _ = s.tx.send(Outbound::Drop);
        }
    }
}

impl DiscordDouble {
    /// Starts a double that accepts `token`, with Discord's usual limits.
    pub async fn start(token: &str) -> Self {
        Self::start_with(DoubleConfig::new(token)).await
    }

    /// Starts a double with an explicit configuration, on 127.0.0.1 and a free port.
    pub async fn start_with(config: DoubleConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Discord double");
        let addr = listener.local_addr().expect("local address");
        // Like Discord's edge, answer without Nagle's delay (small frames go out at once).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let bot = User {
            id: snowflake(),
            name: config.bot_name.clone(),
            bot: true,
        };
        let mut world = World {
            application_id: bot.id,
            ..World::default()
        };
        world.users.insert(bot.id, bot.clone());
        world.bot = Some(bot);
        let inner = Inner {
            world,
            tokens: vec![config.token.clone()],
            buckets: ratelimit::Buckets::new(config.limits.clone(), config.global_limit),
            config,
            session: None,
            next_conn: 0,
            gateway_url: format!("ws://{addr}/gateway"),
            redeliver_on_resume: 0,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            changed: Notify::new(),
        });
        let app = axum::Router::new()
            .route("/gateway", axum::routing::get(gateway::upgrade))
            .fallback(rest::handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Discord double stopped");
            }
        });
        Self {
            shared,
            addr,
            server,
        }
    }

    /// The REST base to configure as `discord.api_base` (`http://127.0.0.1:PORT`).
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway URL `GET /api/v10/gateway` returns.
    pub fn gateway_url(&self) -> String {
        format!("ws://{}/gateway", self.addr)
    }

    pub fn bot_id(&self) -> u64 {
        self.shared.lock().world.bot_id()
    }

    pub fn application_id(&self) -> u64 {
        self.shared.lock().world.application_id
    }

    /// Reads the recorded world. `f` runs under the double's lock: do not call the double from it.
    pub fn with<T>(&self, f: impl FnOnce(&World) -> T) -> T {
        f(&self.shared.lock().world)
    }

    /// Waits until `f` returns `Some`, re-checking whenever the double records something (and at
    /// least every 100 ms). Panics after `timeout` with `what` and a summary of the world.
    /// `f` runs under the double's lock: do not call the double from it.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&World) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f(&self.shared.lock().world) {
                return v;
            }
            let now = Instant::now();
            if now >= deadline {
                let summary = self.summary();
                panic!("timed out after {timeout:?} waiting for {what}\n{summary}");
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep((deadline - now).min(Duration::from_millis(100))) => {}
            }
        }
    }

    /// Waits until the bot's gateway session is READY (and attached).
    pub async fn wait_ready(&self, timeout: Duration) {
        self.wait_for("the bot's gateway session", timeout, |w| {
            w.attached.then_some(())
        })
        .await;
    }

    /// Whether a gateway connection is attached to the bot's session right now.
    pub fn connected(&self) -> bool {
        self.shared.lock().world.attached
    }

    /// A readable summary for failure messages: messages, rejected requests, gateway counters.
    pub fn summary(&self) -> String {
        let inner = self.shared.lock();
        let w = &inner.world;
        let mut out = format!(
            "gateway: {} connections, {} identifies, {} resumes, {} heartbeats, session {}\n",
            w.connections,
            w.identifies.len(),
            w.resumes,
            w.heartbeats,
            inner
                .session
                .as_ref()
                .map_or("none".to_string(), |s| format!(
                    "seq {} live {}",
                    s.seq,
                    s.live.is_some()
                ))
        );
        for m in w
            .messages
            .values()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let author = w.users.get(&m.author_id).map_or("?", |u| u.name.as_str());
            let content: String = m.content.chars().take(160).collect();
            out.push_str(&format!(
                "  msg {} ch {} by {author}{}{}: {content:?}\n",
                m.id,
                m.channel_id,
                m.reply_to
                    .map(|r| format!(" (reply to {r})"))
                    .unwrap_or_default(),
                if m.edits.is_empty() {
                    String::new()
                } else {
                    format!(" [{} edits]", m.edits.len())
                }
            ));
        }
        for (path, status, body) in w.rejected.iter().rev().take(10) {
            out.push_str(&format!("  rejected {status} {path}: {body}\n"));
        }
        out.push_str(&format!(
            "  {} REST calls, {} 429s\n",
            w.rest_calls.len(),
            w.rate_limited.len()
        ));
        out
    }

    // ----- building the world -----

    /// A human user.
    pub fn add_user(&self, name: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            i.world.users.insert(
                id,
                User {
                    id,
                    name: name.into(),
                    bot: false,
                },
            );
        });
        id
    }

    /// Another bot account (its messages must be ignored by the bot under test).
    pub fn add_other_bot(&self, name: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            i.world.users.insert(
                id,
                User {
                    id,
                    name: name.into(),
                    bot: true,
                },
            );
        });
        id
    }

    /// A guild the bot is in (with its @everyone role). If the bot is connected, it receives
    /// GUILD_CREATE, as when a bot joins a guild.
    pub fn add_guild(&self, name: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            let bot = i.world.bot_id();
            let mut members = BTreeMap::new();
            members.insert(bot, Vec::new());
            let guild = Guild {
                id,
                name: name.into(),
                owner_id: bot,
                roles: vec![Role {
                    id,
                    name: "@everyone".into(),
                }],
                members,
                joined_at: timestamp_now(),
            };
            i.world.guilds.insert(id, guild);
            let data = i.world.guild_create_json(&i.world.guilds[&id]);
            i.dispatch("GUILD_CREATE", data);
        });
        id
    }

    pub fn add_role(&self, guild: u64, name: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            if let Some(g) = i.world.guilds.get_mut(&guild) {
                g.roles.push(Role {
                    id,
                    name: name.into(),
                });
            }
        });
        id
    }

    /// Makes `user` a member of `guild` with `roles`.
    pub fn add_member(&self, guild: u64, user: u64, roles: &[u64]) {
        self.shared.update(|i| {
            if let Some(g) = i.world.guilds.get_mut(&guild) {
                g.members.insert(user, roles.to_vec());
            }
        });
    }

    /// Changes a member's roles.
    pub fn set_roles(&self, guild: u64, user: u64, roles: &[u64]) {
        self.add_member(guild, user, roles);
    }

    pub fn add_text_channel(&self, guild: u64, name: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            i.world.channels.insert(
                id,
                Channel {
                    id,
                    kind: ChannelKind::Text,
                    guild_id: Some(guild),
                    name: name.into(),
                    parent_id: None,
                    recipient: None,
                    last_message_id: None,
                },
            );
            let data = {
                let mut c = i.world.channel_json(&i.world.channels[&id]);
                c["guild_id"] = json!(guild.to_string());
                c
            };
            i.dispatch("CHANNEL_CREATE", data);
        });
        id
    }

    /// A public thread under `parent`; the bot receives THREAD_CREATE.
    pub fn add_thread(&self, guild: u64, parent: u64, name: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            i.world.channels.insert(
                id,
                Channel {
                    id,
                    kind: ChannelKind::PublicThread,
                    guild_id: Some(guild),
                    name: name.into(),
                    parent_id: Some(parent),
                    recipient: None,
                    last_message_id: None,
                },
            );
            let mut data = i.world.channel_json(&i.world.channels[&id]);
            data["newly_created"] = json!(true);
            i.dispatch("THREAD_CREATE", data);
        });
        id
    }

    /// The DM channel between the bot and `user`.
    pub fn dm_channel(&self, user: u64) -> u64 {
        self.shared.update(|i| dm_channel(i, user))
    }

    // ----- users acting -----

    /// `author` writes `content` in `channel`; returns the message id.
    pub fn user_says(&self, author: u64, channel: u64, content: &str) -> u64 {
        self.send(UserMessage::new(author, channel, content))
    }

    /// `author` replies to `message` (pinging its author, as Discord's default).
    pub fn user_replies(&self, author: u64, channel: u64, message: u64, content: &str) -> u64 {
        self.send(UserMessage::new(author, channel, content).reply_to(message))
    }

    /// Sends a user message: records it and dispatches MESSAGE_CREATE.
    pub fn send(&self, msg: UserMessage) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            let channel = i
                .world
                .channels
                .get(&msg.channel)
                .cloned()
                .expect("send: unknown channel (create it first)");
            assert!(
                i.world.users.contains_key(&msg.author),
                "send: unknown author"
            );
            let replied_author = msg.reply_to.map(|r| {
                let m = i.world.messages.get(&r).expect("reply_to: unknown message");
                assert_eq!(
                    m.channel_id, msg.channel,
                    "reply_to: the message is in another channel"
                );
                m.author_id
            });
            let allowed = (!msg.ping_replied)
                .then(|| json!({"parse": ["users", "roles", "everyone"], "replied_user": false}));
            let (pinged_users, pinged_roles, pinged_everyone) = i.pings(
                &msg.content,
                channel.guild_id,
                allowed.as_ref(),
                replied_author,
            );
            let m = Message {
                id,
                channel_id: msg.channel,
                guild_id: channel.guild_id,
                author_id: msg.author,
                content: msg.content.clone(),
                edits: Vec::new(),
                deleted: false,
                reply_to: msg.reply_to,
                components: json!([]),
                flags: 0,
                pinged_users,
                pinged_roles,
                pinged_everyone,
                allowed_mentions: vec![allowed],
                interaction_id: None,
                created_at: Instant::now(),
                edited_at: Vec::new(),
                timestamp: timestamp_now(),
                edited_timestamp: None,
            };
            if let Some(r) = m.reply_to {
                i.world.replies.entry(r).or_default().push(id);
            }
            i.world.messages.insert(id, m);
            if let Some(c) = i.world.channels.get_mut(&msg.channel) {
                c.last_message_id = Some(id);
            }
            let mut data = i.world.message_json(&i.world.messages[&id], true);
            if let Some(g) = channel.guild_id {
                data["member"] = i.world.member_json(g, msg.author, false);
            }
            i.dispatch("MESSAGE_CREATE", data);
        });
        id
    }

    /// `user` runs the slash command `path` (`["chat"]`, or `["trigger", "add"]` for a
    /// subcommand) with `options` (an object of option name → value). The command must have been
    /// registered by the bot (globally or in the channel's guild), and options must match what was
    /// registered. Returns the interaction id.
    pub fn slash(&self, user: u64, channel: u64, path: &[&str], options: Value) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            let ch = i
                .world
                .channels
                .get(&channel)
                .cloned()
                .expect("slash: unknown channel");
            let (name, subs) = path.split_first().expect("slash: empty command path");
            let registered = i
                .world
                .commands
                .get(&ch.guild_id)
                .and_then(|c| c.get(*name))
                .or_else(|| i.world.commands.get(&None).and_then(|c| c.get(*name)))
                .cloned()
                .unwrap_or_else(|| {
                    panic!("slash: `/{name}` is not registered (Discord would not offer it)")
                });
            let options = build_options(&registered, subs, &options);
            let token = format!("itok{id}x{}", snowflake());
            let mut data = json!({
                "id": registered["id"],
                "name": name,
                "type": 1,
                "options": options,
                "guild_id": ch.guild_id.map(|g| g.to_string()),
            });
            let resolved = resolved_json(i, ch.guild_id, &data["options"]);
            if resolved.as_object().is_some_and(|r| !r.is_empty()) {
                data["resolved"] = resolved;
            }
            let interaction = interaction_json(i, id, &token, 2, user, &ch, data, None);
            i.world.interactions.insert(
                id,
                Interaction {
                    id,
                    token,
                    kind: 2,
                    user_id: user,
                    channel_id: channel,
                    guild_id: ch.guild_id,
                    name: path.join(" "),
                    message_id: None,
                    created_at: Instant::now(),
                    callbacks: Vec::new(),
                    original_message: None,
                },
            );
            i.dispatch("INTERACTION_CREATE", interaction);
        });
        id
    }

    /// `user` presses the button `custom_id` on `message`. Panics if the message has no such
    /// enabled button (Discord would not show it).
    pub fn press_button(&self, user: u64, message: u64, custom_id: &str) -> u64 {
        let id = snowflake();
        self.shared.update(|i| {
            let m = i
                .world
                .messages
                .get(&message)
                .cloned()
                .expect("press_button: unknown message");
            assert!(
                m.button_ids().iter().any(|b| b == custom_id),
                "press_button: message {message} has no enabled button `{custom_id}` (it has {:?})",
                m.button_ids()
            );
            let ch = i
                .world
                .channels
                .get(&m.channel_id)
                .cloned()
                .expect("channel of the message");
            let token = format!("itok{id}x{}", snowflake());
            let data = json!({"custom_id": custom_id, "component_type": 2});
            let message_json = i.world.message_json(&m, false);
            let interaction =
                interaction_json(i, id, &token, 3, user, &ch, data, Some(message_json));
            i.world.interactions.insert(
                id,
                Interaction {
                    id,
                    token,
                    kind: 3,
                    user_id: user,
                    channel_id: m.channel_id,
                    guild_id: ch.guild_id,
                    name: custom_id.into(),
                    message_id: Some(message),
                    created_at: Instant::now(),
                    callbacks: Vec::new(),
                    original_message: None,
                },
            );
            i.dispatch("INTERACTION_CREATE", interaction);
        });
        id
    }

    // ----- disturbing the connection -----

    /// Sends op 7 RECONNECT: the client must reconnect and RESUME.
    pub fn force_reconnect(&self) {
        self.shared.update(|i| {
            if let Some(conn) = i.session.as_ref().and_then(|s| s.live.as_ref()) {
                let _ = conn
                    .tx
                    .send(Outbound::Text(json!({"op": 7, "d": null}).to_string()));
            }
        });
    }

    /// Drops the TCP connection without a close frame (a network failure).
    pub fn drop_connection(&self) {
        self.shared.update(|i| {
            if let Some(conn) = i.session.as_mut().and_then(|s| s.live.take()) {
                let _ = conn.tx.send(Outbound::Drop);
                i.world.attached = false;
            }
        });
    }

    /// Closes the gateway connection with a close code: 4000 (unknown error: the client resumes),
    /// 4004 (authentication failed), 4009 (session timed out: the client identifies again).
    pub fn close_gateway(&self, code: u16) {
        let reason = match code {
            4004 => "Authentication failed.",
            4009 => "Session timed out.",
            _ => "Unknown error.",
        };
        self.shared.update(|i| {
            if let Some(conn) = i.session.as_mut().and_then(|s| s.live.take()) {
                let _ = conn.tx.send(Outbound::Close(code, reason));
                i.world.attached = false;
            }
        });
    }

    /// Sends op 9 INVALID SESSION.
    pub fn invalidate_session(&self, resumable: bool) {
        self.shared.update(|i| {
            if let Some(conn) = i.session.as_ref().and_then(|s| s.live.as_ref()) {
                let _ = conn
                    .tx
                    .send(Outbound::Text(json!({"op": 9, "d": resumable}).to_string()));
            }
            if !resumable {
                i.session = None;
                i.world.attached = false;
            }
        });
    }

    /// After the next RESUME, re-sends the last `n` dispatches once more (at-least-once delivery:
    /// a client must not act twice on one event).
    pub fn redeliver_on_resume(&self, n: u32) {
        self.shared.update(|i| i.redeliver_on_resume = n);
    }

    /// Resets the token (as in the developer portal): from now on only `new` is accepted, by REST
    /// and by IDENTIFY/RESUME. The current gateway connection stays up.
    pub fn rotate_token(&self, new: &str) {
        self.shared.update(|i| i.tokens.push(new.to_string()));
    }

    /// The next `count` requests of route class `route` get 429 with `retry_after`.
    pub fn force_429(&self, route: &'static str, count: u32, retry_after: Duration) {
        self.shared
            .update(|i| i.buckets.force(route, count, retry_after, false));
    }

    /// Changes a route class's limit (per channel / webhook).
    pub fn set_limit(&self, route: &'static str, limit: Limit) {
        self.shared.update(|i| i.buckets.set_rule(route, limit));
    }
}

pub(crate) fn dm_channel(i: &mut Inner, user: u64) -> u64 {
    if let Some(c) = i
        .world
        .channels
        .values()
        .find(|c| c.kind == ChannelKind::Dm && c.recipient == Some(user))
    {
        return c.id;
    }
    let id = snowflake();
    i.world.channels.insert(
        id,
        Channel {
            id,
            kind: ChannelKind::Dm,
            guild_id: None,
            name: String::new(),
            parent_id: None,
            recipient: Some(user),
            last_message_id: None,
        },
    );
    id
}

/// Builds interaction options from the registered command: types from the registration, required
/// options checked, unknown names refused.
fn build_options(registered: &Value, subs: &[&str], values: &Value) -> Value {
    let Some((sub, rest)) = subs.split_first() else {
        let declared = registered["options"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let given = values.as_object().cloned().unwrap_or_default();
        for (name, _) in &given {
            assert!(
                declared.iter().any(|d| d["name"] == name.as_str()),
                "slash: option `{name}` is not declared by `{}` (declared: {declared:?})",
                registered["name"]
            );
        }
        let mut out = Vec::new();
        for d in &declared {
            let name = d["name"].as_str().unwrap_or_default();
            match given.get(name) {
                Some(v) => {
                    out.push(json!({"name": name, "type": d["type"], "value": option_value(d, v)}))
                }
                None => assert!(
                    d["required"] != true,
                    "slash: required option `{name}` missing"
                ),
            }
        }
        return Value::Array(out);
    };
    let sub_decl = registered["options"]
        .as_array()
        .and_then(|o| {
            o.iter()
                .find(|o| o["name"] == *sub && (o["type"] == 1 || o["type"] == 2))
        })
        .unwrap_or_else(|| panic!("slash: `{}` has no subcommand `{sub}`", registered["name"]))
        .clone();
    json!([{"name": sub, "type": sub_decl["type"], "options": build_options(&sub_decl, rest, values)}])
}

/// `resolved` of an interaction: the users, members, roles and channels its options name, as
/// Discord sends them alongside the ids.
fn resolved_json(i: &Inner, guild: Option<u64>, options: &Value) -> Value {
    fn walk(
        i: &Inner,
        guild: Option<u64>,
        options: &Value,
        out: &mut serde_json::Map<String, Value>,
    ) {
        for o in options.as_array().into_iter().flatten() {
            if o["type"] == 1 || o["type"] == 2 {
                walk(i, guild, &o["options"], out);
                continue;
            }
            let Some(id) = o["value"].as_str().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let mut put = |kind: &str, value: Value| {
                let entry = out.entry(kind.to_string()).or_insert_with(|| json!({}));
                entry[id.to_string()] = value;
            };
            match o["type"].as_u64() {
                Some(6 | 9) if i.world.users.contains_key(&id) => {
                    put("users", i.world.users[&id].json());
                    if let Some(g) = guild.filter(|g| {
                        i.world
                            .guilds
                            .get(g)
                            .is_some_and(|g| g.members.contains_key(&id))
                    }) {
                        let mut m = i.world.member_json(g, id, false);
                        m["permissions"] = json!("0");
                        put("members", m);
                    }
                }
                Some(7) => {
                    if let Some(c) = i.world.channels.get(&id) {
                        let mut c = i.world.channel_json(c);
                        c["permissions"] = json!("2248473465835073");
                        put("channels", c);
                    }
                }
                Some(8 | 9) => {
                    let role = guild
                        .and_then(|g| i.world.guilds.get(&g))
                        .and_then(|g| g.roles.iter().find(|r| r.id == id));
                    if let (Some(r), Some(g)) = (role, guild) {
                        put("roles", World::role_json(r, g));
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = serde_json::Map::new();
    walk(i, guild, options, &mut out);
    Value::Object(out)
}

/// The value a Discord client sends for option `declared` when the user gives `given`: a choice
/// is picked by its name (the client sends its value); the type must match the declaration.
fn option_value(declared: &Value, given: &Value) -> Value {
    let name = &declared["name"];
    let value = match declared["choices"].as_array().filter(|c| !c.is_empty()) {
        Some(choices) => choices
            .iter()
            .find(|c| c["name"] == *given || c["value"] == *given)
            .map(|c| c["value"].clone())
            .unwrap_or_else(|| {
                panic!("slash: `{given}` is not a choice of option {name}: {choices:?}")
            }),
        None => given.clone(),
    };
    let ok = match declared["type"].as_u64() {
        Some(3) => value.is_string(),
        Some(4) => value.is_i64() || value.is_u64(),
        Some(5) => value.is_boolean(),
        Some(6..=9) => value.as_str().is_some_and(|s| s.parse::<u64>().is_ok()),
        Some(10) => value.is_number(),
        _ => true,
    };
    assert!(
        ok,
        "slash: option {name} is of type {} but got {value}",
        declared["type"]
    );
    value
}

#[allow(clippy::too_many_arguments)]
fn interaction_json(
    i: &Inner,
    id: u64,
    token: &str,
    kind: u8,
    user: u64,
    ch: &Channel,
    data: Value,
    message: Option<Value>,
) -> Value {
    let mut j = json!({
        "id": id.to_string(),
        "application_id": i.world.application_id.to_string(),
        "type": kind,
        "data": data,
        "channel_id": ch.id.to_string(),
        "channel": i.world.channel_json(ch),
        "token": token,
        "version": 1,
        "app_permissions": "2248473465835073",
        "locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": ch.guild_id.map_or("0".to_string(), |g| g.to_string())},
        "context": if ch.guild_id.is_some() { 0 } else { 1 },
        "attachment_size_limit": 10_485_760,
    });
    match ch.guild_id {
        Some(g) => {
            let mut member = i.world.member_json(g, user, true);
            member["permissions"] = json!("2248473465835073");
            j["member"] = member;
            j["guild_id"] = json!(g.to_string());
            j["guild_locale"] = json!("en-US");
            j["guild"] = json!({"id": g.to_string(), "locale": "en-US", "features": []});
        }
        None => {
            j["user"] = i
                .world
                .users
                .get(&user)
                .map(User::json)
                .unwrap_or(Value::Null)
        }
    }
    if let Some(m) = message {
        j["message"] = m;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::parse_mentions;

    #[test]
    fn mentions_are_parsed() {
        let (u, r, e) = parse_mentions("hi <@1> <@!2> <@&3> <@x> <@4 @here");
        assert_eq!(u, vec![1, 2]);
        assert_eq!(r, vec![3]);
        assert!(e);
        assert_eq!(parse_mentions("plain"), (vec![], vec![], false));
    }
}
