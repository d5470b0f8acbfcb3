//! The bot's shared state: what every event and command needs, and the small facts it learns
//! from the gateway (its own id, which channels are threads, which messages it has handled).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use super::access::{Lists, Who};
use super::approval::Approvals;
use super::fair_use::{Gate, SessionLocks, UserLimiter};
use super::rest::DiscordRest;
use super::session::Place;
use super::settings::GuildSettings;
use crate::config::BotConfig;
use crate::conversation::Engine;
use crate::mcp::McpHub;
use crate::metrics::Readiness;
use crate::store::StoreError;

/// Messages remembered for de-duplication (a resumed gateway may deliver one twice).
const SEEN_CAPACITY: usize = 4096;
/// How long a question waits for another turn of the same conversation to finish before the
/// asker is told the bot is busy (a turn with tools and an approval can take this long).
pub const SESSION_WAIT: Duration = Duration::from_secs(90);

#[derive(Default)]
struct Seen {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

/// The bot's shared state.
pub struct Bot {
    pub(crate) config: BotConfig,
    pub(crate) engine: Engine,
    pub(crate) hub: Arc<McpHub>,
    pub(crate) rest: Arc<DiscordRest>,
    pub(crate) lists: Lists,
    pub(crate) limiter: UserLimiter,
    pub(crate) gate: Gate,
    pub(crate) sessions: SessionLocks,
    pub(crate) approvals: Arc<Approvals>,
    pub(crate) settings: GuildSettings,
    pub(crate) interactions: Interactions,
    pub(crate) started: Instant,
    pub(crate) ready: Readiness,
    bot_id: AtomicU64,
    pub(crate) readies: AtomicU64,
    seen: Mutex<Seen>,
    /// Channel id → the parent channel for threads (None: not a thread).
    threads: Mutex<HashMap<u64, Option<u64>>>,
}

impl Bot {
    pub fn new(
        config: BotConfig,
        engine: Engine,
        hub: Arc<McpHub>,
        rest: Arc<DiscordRest>,
        ready: Readiness,
    ) -> Self {
        let d = &config.discord;
        Self {
            lists: Lists::from_config(&d.access),
            limiter: UserLimiter::new(&d.rate_limit),
            gate: Gate::new(d.rate_limit.max_concurrent_per_guild, d.max_queue),
            sessions: SessionLocks::new(SESSION_WAIT),
            approvals: Arc::new(Approvals::new(Duration::from_secs(
                d.approval_timeout_secs.max(1),
            ))),
            settings: GuildSettings::new(engine.store().clone()),
            interactions: Interactions::default(),
            started: Instant::now(),
            ready,
            bot_id: AtomicU64::new(0),
            readies: AtomicU64::new(0),
            seen: Mutex::new(Seen::default()),
            threads: Mutex::new(HashMap::new()),
            config,
            engine,
            hub,
            rest,
        }
    }

    pub fn bot_id(&self) -> u64 {
        self.bot_id.load(Ordering::Relaxed)
    }

    pub fn set_bot_id(&self, id: u64) {
        self.bot_id.store(id, Ordering::Relaxed);
    }

    /// True the first time a message id is seen.
    pub fn first_time(&self, id: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.set.insert(id) {
            return false;
        }
        seen.order.push_back(id);
        if seen.order.len() > SEEN_CAPACITY
            && let Some(old) = seen.order.pop_front()
        {
            seen.set.remove(&old);
        }
        true
    }

    pub fn remember_channel(&self, channel: u64, parent: Option<u64>) {
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel, parent);
    }

    fn parent_of(&self, channel: u64) -> Option<u64> {
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&channel)
            .copied()
            .flatten()
    }

    /// Where a message was written: a DM, a thread (looked up once per channel), or a channel.
    pub async fn place(&self, guild: Option<u64>, channel: u64, user: u64) -> Place {
        if guild.is_none() {
            return Place::Dm { user };
        }
        let known = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&channel)
            .copied();
        let parent = match known {
            Some(p) => p,
            None => match self.rest.get_channel(channel).await {
                Ok(c) => {
                    let parent = thread_parent(&c);
                    self.remember_channel(channel, parent);
                    parent
                }
                Err(e) => {
                    warn!(error = %e, channel, "looking up the channel failed; treating it as a plain channel");
                    None
                }
            },
        };
        match parent {
            Some(_) => Place::Thread { thread: channel },
            None => Place::Channel { channel, user },
        }
    }

    /// Who is writing, for the access lists.
    pub fn who(
        &self,
        guild: Option<u64>,
        channel: u64,
        user: u64,
        roles: Vec<u64>,
        place: Place,
    ) -> Who {
        let parent_channel = match place {
            Place::Thread { .. } => self.parent_of(channel),
            _ => None,
        };
        Who {
            user,
            roles,
            guild,
            channel,
            parent_channel,
        }
    }

    /// Trigger words that apply in `guild`: the configured ones and the guild's own.
    pub async fn triggers(&self, guild: Option<u64>) -> Result<Vec<String>, StoreError> {
        let mut t = self.config.discord.triggers.clone();
        if let Some(g) = guild {
            t.extend(self.settings.triggers(g).await?);
        }
        Ok(t)
    }
}

/// What has been sent so far for a slash command's interaction (Discord wants a first response
/// within 3 s: a message, or a deferral whose "thinking…" the answer fills later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Responded {
    Nothing,
    Deferred,
    Answered,
}

/// Interactions remembered (commands finish within minutes; older ones are forgotten).
const INTERACTIONS_CAPACITY: usize = 1024;

/// [`Responded`] per interaction id.
#[derive(Default)]
pub struct Interactions {
    state: Mutex<(VecDeque<u64>, HashMap<u64, Responded>)>,
}

impl Interactions {
    /// Moves interaction `id` on to `now` (never back) and returns where it was.
    pub fn advance(&self, id: u64, now: Responded) -> Responded {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (order, map) = &mut *guard;
        let before = *map.get(&id).unwrap_or(&Responded::Nothing);
        if before == Responded::Nothing {
            order.push_back(id);
            if order.len() > INTERACTIONS_CAPACITY
                && let Some(old) = order.pop_front()
            {
                map.remove(&old);
            }
        }
        map.insert(id, before.max(now));
        before
    }
}

/// A thread's parent channel (0 when Discord does not say), from a channel as the REST API
/// writes it; `None` for anything but a thread.
fn thread_parent(channel: &serde_json::Value) -> Option<u64> {
    // 10, 11, 12: announcement, public and private threads.
    let is_thread = matches!(channel["type"].as_u64(), Some(10..=12));
    is_thread.then(|| {
        channel["parent_id"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn threads_are_told_by_their_type() {
        assert_eq!(
            thread_parent(&json!({"type": 11, "parent_id": "5"})),
            Some(5)
        );
        assert_eq!(thread_parent(&json!({"type": 12})), Some(0));
        assert_eq!(thread_parent(&json!({"type": 0, "parent_id": "5"})), None);
    }
}
