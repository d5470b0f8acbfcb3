//! What the Discord double knows and has seen: users, guilds, channels, messages, and a record of
//! every request and gateway exchange. Payloads are rendered in Discord's JSON shapes (ids as
//! snowflake strings, RFC 3339 timestamps), checked against serenity's models by the self-tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Discord's epoch (2015-01-01) in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Snowflakes: time-based like Discord's, unique and increasing within the process.
pub(crate) fn snowflake() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    ((ms.saturating_sub(DISCORD_EPOCH_MS)) << 22) | (n & 0x3F_FFFF)
}

/// An RFC 3339 timestamp (UTC, microseconds) as Discord sends them.
pub(crate) fn timestamp_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now)
}

fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let micros = since_epoch.subsec_micros();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Gateway intent bits the double cares about.
pub mod intents {
    pub const GUILDS: u64 = 1 << 0;
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    pub const GUILD_PRESENCES: u64 = 1 << 8;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
    /// Intents an application must enable in the developer portal before it may ask for them.
    pub const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;
}

/// Channel types (Discord's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Text = 0,
    Dm = 1,
    PublicThread = 11,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub bot: bool,
}

impl User {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": null,
            "bot": self.bot,
            "public_flags": 0,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Guild {
    pub id: u64,
    pub name: String,
    pub owner_id: u64,
    pub roles: Vec<Role>,
    /// Member user id → role ids.
    pub members: BTreeMap<u64, Vec<u64>>,
    pub joined_at: String,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: u64,
    pub kind: ChannelKind,
    pub guild_id: Option<u64>,
    pub name: String,
    /// Threads: the channel they hang off.
    pub parent_id: Option<u64>,
    /// DMs: the other person.
    pub recipient: Option<u64>,
    pub last_message_id: Option<u64>,
}

/// One message, as it currently stands, plus its history in the double.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub channel_id: u64,
    pub guild_id: Option<u64>,
    pub author_id: u64,
    pub content: String,
    /// Content after each edit, oldest first (the original content is not in here).
    pub edits: Vec<String>,
    pub deleted: bool,
    /// The message this one replies to.
    pub reply_to: Option<u64>,
    /// `components` as last sent (action rows with buttons).
    pub components: Value,
    pub flags: u64,
    /// Users this message pinged when it was created or edited (allowed_mentions applied).
    pub pinged_users: Vec<u64>,
    pub pinged_roles: Vec<u64>,
    /// Whether it pinged @everyone / @here.
    pub pinged_everyone: bool,
    /// `allowed_mentions` of the create request and of every edit (None where absent).
    pub allowed_mentions: Vec<Option<Value>>,
    /// Set for interaction responses: the interaction it answers.
    pub interaction_id: Option<u64>,
    pub created_at: Instant,
    pub edited_at: Vec<Instant>,
    /// Discord's RFC 3339 creation time.
    pub timestamp: String,
    pub edited_timestamp: Option<String>,
}

impl Message {
    /// Custom ids of the (enabled) buttons on the message.
    pub fn button_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for row in self.components.as_array().into_iter().flatten() {
            for c in row["components"].as_array().into_iter().flatten() {
                if c["type"] == 2
                    && c["disabled"] != true
                    && let Some(id) = c["custom_id"].as_str()
                {
                    ids.push(id.to_string());
                }
            }
        }
        ids
    }
}

/// What an interaction is (type 2 slash command, type 3 button press).
#[derive(Debug, Clone)]
pub struct Interaction {
    pub id: u64,
    pub token: String,
    pub kind: u8,
    pub user_id: u64,
    pub channel_id: u64,
    pub guild_id: Option<u64>,
    /// Slash command name, or the pressed button's custom id.
    pub name: String,
    /// For button presses: the message the button is on.
    pub message_id: Option<u64>,
    pub created_at: Instant,
    /// Callback types sent for it, in order (Discord accepts exactly one).
    pub callbacks: Vec<u8>,
    /// The message of the response (types 4/5), once there is one.
    pub original_message: Option<u64>,
}

/// One application command registration call (bulk overwrite).
#[derive(Debug, Clone)]
pub struct CommandRegistration {
    /// None: global; Some: that guild.
    pub guild_id: Option<u64>,
    pub commands: Vec<Value>,
}

/// One REST request as the double answered it.
#[derive(Debug, Clone)]
pub struct RestCall {
    pub method: String,
    /// The path with ids, under `/api/v10`.
    pub path: String,
    /// A bounded route class: create_message, edit_message, typing, ...
    pub route: &'static str,
    pub status: u16,
    pub at: Instant,
    /// Which token authenticated it: 0 = the first, 1 = the first rotation, ...
    pub token_generation: Option<usize>,
}

/// A 429 the double answered.
#[derive(Debug, Clone)]
pub struct RateLimited {
    pub route: &'static str,
    pub bucket: String,
    /// True when a test forced it; false when the client really exceeded the limit.
    pub forced: bool,
    pub global: bool,
    pub at: Instant,
}

/// One IDENTIFY the gateway received.
#[derive(Debug, Clone)]
pub struct Identify {
    pub intents: u64,
    /// Which token it carried (see [`RestCall::token_generation`]); None = not a valid one.
    pub token_generation: Option<usize>,
    pub at: Instant,
}

/// Everything the double has seen; read it with [`super::DiscordDouble::with`] or
/// [`super::DiscordDouble::wait_for`].
#[derive(Debug, Default)]
pub struct World {
    pub bot: Option<User>,
    pub application_id: u64,
    pub users: BTreeMap<u64, User>,
    pub guilds: BTreeMap<u64, Guild>,
    pub channels: BTreeMap<u64, Channel>,
    pub messages: BTreeMap<u64, Message>,
    /// Message id → the messages replying to it, oldest first.
    pub replies: BTreeMap<u64, Vec<u64>>,
    pub interactions: BTreeMap<u64, Interaction>,
    pub registrations: Vec<CommandRegistration>,
    /// Commands currently registered: (guild or None for global) → name → command JSON.
    pub commands: BTreeMap<Option<u64>, BTreeMap<String, Value>>,
    pub typing: Vec<(u64, Instant)>,
    pub rest_calls: Vec<RestCall>,
    pub rate_limited: Vec<RateLimited>,
    /// Requests the double refused with a 4xx other than 401/429, with the error body.
    pub rejected: Vec<(String, u16, Value)>,
    pub identifies: Vec<Identify>,
    pub resumes: u32,
    pub heartbeats: u32,
    /// Gateway connections accepted so far.
    pub connections: u32,
    /// Whether a gateway connection is attached to the bot's session (READY or RESUMED).
    pub attached: bool,
    /// Dispatches sent on the gateway: (seq, event name), in order, across connections.
    pub dispatched: Vec<(u64, String)>,
    /// Close codes of the close frames the bot sent (1000: a clean shutdown).
    pub client_closes: Vec<u16>,
}

impl World {
    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn bot_id(&self) -> u64 {
        self.bot.as_ref().map_or(0, |b| b.id)
    }

    /// Messages the bot wrote in a channel, oldest first (deleted ones included).
    pub fn bot_messages_in(&self, channel: u64) -> Vec<&Message> {
        let bot = self.bot_id();
        self.messages
            .values()
            .filter(|m| m.channel_id == channel && m.author_id == bot)
            .collect()
    }

    /// Every message the bot wrote, oldest first.
    pub fn bot_messages(&self) -> Vec<&Message> {
        let bot = self.bot_id();
        self.messages
            .values()
            .filter(|m| m.author_id == bot)
            .collect()
    }

    /// Bot messages that reply to `message`.
    pub fn replies_to(&self, message: u64) -> Vec<&Message> {
        let bot = self.bot_id();
        self.replies
            .get(&message)
            .into_iter()
            .flatten()
            .filter_map(|id| self.messages.get(id))
            .filter(|m| m.author_id == bot)
            .collect()
    }

    /// REST calls of one route class.
    pub fn calls(&self, route: &str) -> Vec<&RestCall> {
        self.rest_calls
            .iter()
            .filter(|c| c.route == route)
            .collect()
    }

    /// REST writes (every method but GET, on every route, 429s included: Discord counts each
    /// request it receives) answered at or after `since`.
    pub fn writes_since(&self, since: Instant) -> Vec<Instant> {
        let mut at: Vec<Instant> = self
            .rest_calls
            .iter()
            .filter(|c| c.at >= since && c.method != "GET")
            .map(|c| c.at)
            .collect();
        at.sort();
        at
    }

    /// The most REST writes in any one-second window at or after `since`: what Discord's global
    /// limit (50 requests a second per bot) is checked against.
    pub fn busiest_second_writes(&self, since: Instant) -> usize {
        busiest_window(&self.writes_since(since), Duration::from_secs(1))
    }

    /// 429s the client caused by exceeding a limit (not forced by a test).
    pub fn exceeded(&self) -> Vec<&RateLimited> {
        self.rate_limited.iter().filter(|r| !r.forced).collect()
    }

    pub(crate) fn member_roles(&self, guild: u64, user: u64) -> Vec<u64> {
        self.guilds
            .get(&guild)
            .and_then(|g| g.members.get(&user))
            .cloned()
            .unwrap_or_default()
    }

    /// A guild member object (`with_user`: include the `user` field, as member objects outside
    /// messages do).
    pub(crate) fn member_json(&self, guild: u64, user: u64, with_user: bool) -> Value {
        let joined = self
            .guilds
            .get(&guild)
            .map_or_else(timestamp_now, |g| g.joined_at.clone());
        let roles: Vec<String> = self
            .member_roles(guild, user)
            .iter()
            .map(u64::to_string)
            .collect();
        let mut m = json!({
            "roles": roles,
            "joined_at": joined,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "nick": null,
            "avatar": null,
            "premium_since": null,
            "communication_disabled_until": null,
        });
        if with_user && let Some(u) = self.users.get(&user) {
            m["user"] = u.json();
        }
        m
    }

    pub(crate) fn channel_json(&self, channel: &Channel) -> Value {
        match channel.kind {
            ChannelKind::Dm => json!({
                "id": channel.id.to_string(),
                "type": 1,
                "last_message_id": channel.last_message_id.map(|i| i.to_string()),
                "recipients": channel.recipient.and_then(|r| self.users.get(&r)).map(User::json).into_iter().collect::<Vec<_>>(),
                "flags": 0,
            }),
            ChannelKind::Text => json!({
                "id": channel.id.to_string(),
                "type": 0,
                "guild_id": channel.guild_id.map(|g| g.to_string()),
                "name": channel.name,
                "position": 0,
                "permission_overwrites": [],
                "topic": null,
                "nsfw": false,
                "last_message_id": channel.last_message_id.map(|i| i.to_string()),
                "rate_limit_per_user": 0,
                "parent_id": null,
                "flags": 0,
            }),
            ChannelKind::PublicThread => json!({
                "id": channel.id.to_string(),
                "type": 11,
                "guild_id": channel.guild_id.map(|g| g.to_string()),
                "name": channel.name,
                "parent_id": channel.parent_id.map(|p| p.to_string()),
                "owner_id": self.bot_id().to_string(),
                "last_message_id": channel.last_message_id.map(|i| i.to_string()),
                "rate_limit_per_user": 0,
                "message_count": 0,
                "member_count": 1,
                "flags": 0,
                "total_message_sent": 0,
                "thread_metadata": {
                    "archived": false,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": timestamp_now(),
                    "locked": false,
                },
            }),
        }
    }

    pub(crate) fn role_json(role: &Role, guild: u64) -> Value {
        let everyone = role.id == guild;
        json!({
            "id": role.id.to_string(),
            "name": role.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": i32::from(!everyone),
            "permissions": if everyone { "1071698660929" } else { "0" },
            "managed": false,
            "mentionable": true,
            "flags": 0,
        })
    }

    /// The GUILD_CREATE payload: the guild with channels, threads, roles and members.
    pub(crate) fn guild_create_json(&self, guild: &Guild) -> Value {
        let channels: Vec<Value> = self
            .channels
            .values()
            .filter(|c| c.guild_id == Some(guild.id) && c.kind == ChannelKind::Text)
            .map(|c| self.channel_json(c))
            .collect();
        let threads: Vec<Value> = self
            .channels
            .values()
            .filter(|c| c.guild_id == Some(guild.id) && c.kind == ChannelKind::PublicThread)
            .map(|c| self.channel_json(c))
            .collect();
        let members: Vec<Value> = guild
            .members
            .keys()
            .map(|u| self.member_json(guild.id, *u, true))
            .collect();
        json!({
            "id": guild.id.to_string(),
            "name": guild.name,
            "icon": null,
            "icon_hash": null,
            "splash": null,
            "discovery_splash": null,
            "owner_id": guild.owner_id.to_string(),
            "afk_channel_id": null,
            "afk_timeout": 300,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": guild.roles.iter().map(|r| Self::role_json(r, guild.id)).collect::<Vec<_>>(),
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "max_presences": null,
            "max_members": 500000,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": null,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "stickers": [],
            "premium_progress_bar_enabled": false,
            "safety_alerts_channel_id": null,
            "incidents_data": null,
            "joined_at": guild.joined_at,
            "large": false,
            "unavailable": false,
            "member_count": guild.members.len(),
            "voice_states": [],
            "members": members,
            "channels": channels,
            "threads": threads,
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "lazy": true,
            "hub_type": null,
        })
    }

    /// A message object as Discord returns and dispatches it.
    pub(crate) fn message_json(&self, m: &Message, with_reference: bool) -> Value {
        let author = self
            .users
            .get(&m.author_id)
            .map(User::json)
            .unwrap_or(Value::Null);
        let mentions: Vec<Value> = m
            .pinged_users
            .iter()
            .filter_map(|u| self.users.get(u))
            .map(|u| {
                let mut j = u.json();
                if let Some(g) = m.guild_id
                    && self
                        .guilds
                        .get(&g)
                        .is_some_and(|g| g.members.contains_key(&u.id))
                {
                    j["member"] = self.member_json(g, u.id, false);
                }
                j
            })
            .collect();
        let kind = if m.interaction_id.is_some() {
            20
        } else if m.reply_to.is_some() {
            19
        } else {
            0
        };
        let mut j = json!({
            "id": m.id.to_string(),
            "channel_id": m.channel_id.to_string(),
            "author": author,
            "content": m.content,
            "timestamp": m.timestamp,
            "edited_timestamp": m.edited_timestamp,
            "tts": false,
            "mention_everyone": m.pinged_everyone,
            "mentions": mentions,
            "mention_roles": m.pinged_roles.iter().map(u64::to_string).collect::<Vec<_>>(),
            "attachments": [],
            "embeds": [],
            "pinned": false,
            "type": kind,
            "flags": m.flags,
            "components": m.components,
        });
        if let Some(g) = m.guild_id {
            j["guild_id"] = json!(g.to_string());
        }
        if let Some(r) = m.reply_to {
            j["message_reference"] = json!({
                "type": 0,
                "message_id": r.to_string(),
                "channel_id": m.channel_id.to_string(),
                "guild_id": m.guild_id.map(|g| g.to_string()),
            });
            if with_reference {
                j["referenced_message"] = match self.messages.get(&r) {
                    Some(referenced) if !referenced.deleted => self.message_json(referenced, false),
                    _ => Value::Null,
                };
            }
        }
        if let Some(i) = m.interaction_id.and_then(|i| self.interactions.get(&i)) {
            j["application_id"] = json!(self.application_id.to_string());
            j["interaction_metadata"] = json!({
                "id": i.id.to_string(),
                "type": i.kind,
                "user": self.users.get(&i.user_id).map(User::json),
                "authorizing_integration_owners": {},
            });
        }
        j
    }
}

/// The most instants of a sorted list that fall in any window `[t, t + width)`.
pub fn busiest_window(sorted: &[Instant], width: Duration) -> usize {
    let mut start = 0;
    let mut best = 0;
    for (end, t) in sorted.iter().enumerate() {
        while *t >= sorted[start] + width {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(
            rfc3339(Duration::from_secs(0)),
            "1970-01-01T00:00:00.000000+00:00"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59.000000+00:00"
        );
        assert_eq!(
            rfc3339(Duration::from_millis(951_782_400_500)),
            "2000-02-29T00:00:00.500000+00:00"
        );
    }

    #[test]
    fn snowflakes_increase() {
        let a = snowflake();
        let b = snowflake();
        assert!(b > a);
        assert!(a >> 22 > 0, "time part present");
    }

    #[test]
    fn busiest_window_counts_a_sliding_second() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let s = [
            at(0),
            at(100),
            at(900),
            at(1000),
            at(1050),
            at(1950),
            at(3000),
        ];
        // [900, 1900) holds 900, 1000, 1050; [100, 1100) holds 100, 900, 1000, 1050.
        assert_eq!(busiest_window(&s, Duration::from_secs(1)), 4);
        assert_eq!(busiest_window(&[], Duration::from_secs(1)), 0);
    }
}
