//! Per-guild and per-channel settings the admin commands change, persisted in the store: trigger
//! words, allow/deny lists, the guild's default model, and personas (system prompts). The pure
//! access policy over the lists is `access.rs`; loading and saving them is here.
//!
//! Every read-modify-write (add a trigger, allow a user) runs in one store transaction, so two
//! admin commands at once never lose an update.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::access::{Lists, Subject};
use crate::store::{Store, StoreError};

/// The store's per-scope settings with an in-memory cache, so that after the first read of a key
/// no message costs a database round trip. Writes go to the store first, then drop the cached
/// keys; a read that raced a write does not cache what it read (the generation moved on).
#[derive(Clone)]
pub struct GuildSettings {
    store: Store,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    values: HashMap<(String, String), Option<String>>,
    /// Bumped by every write.
    generation: u64,
}

const TRIGGERS: &str = "triggers";
const MODEL: &str = "model";
const PERSONA: &str = "persona";
/// Longest trigger phrase accepted.
pub const MAX_TRIGGER_CHARS: usize = 100;

fn guild_scope(guild: u64) -> String {
    format!("guild:{guild}")
}

fn channel_scope(channel: u64) -> String {
    format!("channel:{channel}")
}

/// The (allow, deny) keys of a subject's lists in a guild's scope.
fn access_keys(subject: Subject) -> [&'static str; 2] {
    match subject {
        Subject::User => ["access.allowed_users", "access.denied_users"],
        Subject::Role => ["access.allowed_roles", "access.denied_roles"],
        Subject::Channel => ["access.allowed_channels", "access.denied_channels"],
    }
}

fn parse_set(v: Option<&str>) -> BTreeSet<u64> {
    v.map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn format_set(set: &BTreeSet<u64>) -> Option<String> {
    (!set.is_empty()).then(|| set.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
}

fn parse_triggers(v: Option<&str>) -> Vec<String> {
    v.map(|v| {
        v.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn format_triggers(list: &[String]) -> Option<String> {
    (!list.is_empty()).then(|| list.join("\n"))
}

/// Where a persona applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonaScope {
    Guild(u64),
    Channel(u64),
}

impl PersonaScope {
    fn scope(self) -> String {
        match self {
            PersonaScope::Guild(g) => guild_scope(g),
            PersonaScope::Channel(c) => channel_scope(c),
        }
    }
}

/// Normalizes a trigger phrase: one line, single spaces, lower case.
pub fn normalize_trigger(word: &str) -> Option<String> {
    let w = word
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    (!w.is_empty() && w.chars().count() <= MAX_TRIGGER_CHARS).then_some(w)
}

impl GuildSettings {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(Cache::default())),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        let id = (scope.to_string(), key.to_string());
        let generation = {
            let cache = self.cache();
            if let Some(v) = cache.values.get(&id) {
                return Ok(v.clone());
            }
            cache.generation
        };
        let v = self.store.get_setting(scope, key).await?;
        let mut cache = self.cache();
        if cache.generation == generation {
            cache.values.insert(id, v.clone());
        }
        Ok(v)
    }

    /// One transaction over `keys` of `scope` (see [`Store::update_settings`]).
    async fn update<T: Send + 'static>(
        &self,
        scope: &str,
        keys: &[&str],
        f: impl FnOnce(&mut [Option<String>]) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let result = self.store.update_settings(scope, keys, f).await;
        let mut cache = self.cache();
        cache.generation += 1;
        for key in keys {
            cache.values.remove(&(scope.to_string(), key.to_string()));
        }
        result
    }

    async fn set(&self, scope: &str, key: &str, value: Option<&str>) -> Result<bool, StoreError> {
        let value = value.map(str::to_string);
        self.update(scope, &[key], move |v| {
            let existed = v[0].is_some();
            v[0] = value;
            existed
        })
        .await
    }

    /// The guild's own trigger words (the configured ones are added by the caller).
    pub async fn triggers(&self, guild: u64) -> Result<Vec<String>, StoreError> {
        Ok(parse_triggers(
            self.get(&guild_scope(guild), TRIGGERS).await?.as_deref(),
        ))
    }

    /// Adds a trigger; false when it was already there.
    pub async fn add_trigger(&self, guild: u64, word: &str) -> Result<bool, StoreError> {
        let word = word.to_string();
        self.update(&guild_scope(guild), &[TRIGGERS], move |v| {
            let mut list = parse_triggers(v[0].as_deref());
            if list.contains(&word) {
                return false;
            }
            list.push(word);
            v[0] = format_triggers(&list);
            true
        })
        .await
    }

    /// Removes a trigger; false when it was not there.
    pub async fn remove_trigger(&self, guild: u64, word: &str) -> Result<bool, StoreError> {
        let word = word.to_string();
        self.update(&guild_scope(guild), &[TRIGGERS], move |v| {
            let mut list = parse_triggers(v[0].as_deref());
            let before = list.len();
            list.retain(|t| *t != word);
            v[0] = format_triggers(&list);
            list.len() != before
        })
        .await
    }

    /// The lists that apply in `guild`: the configuration's plus the guild's own.
    pub async fn lists(&self, config: &Lists, guild: Option<u64>) -> Result<Lists, StoreError> {
        let mut lists = config.clone();
        let Some(g) = guild else {
            return Ok(lists);
        };
        let scope = guild_scope(g);
        for subject in [Subject::User, Subject::Role, Subject::Channel] {
            let [allow_key, deny_key] = access_keys(subject);
            let allow = parse_set(self.get(&scope, allow_key).await?.as_deref());
            let deny = parse_set(self.get(&scope, deny_key).await?.as_deref());
            let (a, d) = match subject {
                Subject::User => (&mut lists.allowed_users, &mut lists.denied_users),
                Subject::Role => (&mut lists.allowed_roles, &mut lists.denied_roles),
                Subject::Channel => (&mut lists.allowed_channels, &mut lists.denied_channels),
            };
            a.extend(allow);
            d.extend(deny);
        }
        Ok(lists)
    }

    /// `allow` (true) or `deny` (false) `id` in `guild`: adds it to one list and removes it from
    /// the other. Returns whether the guild's allow list for this kind is now non-empty (which
    /// restricts everyone else).
    pub async fn set_access(
        &self,
        guild: u64,
        subject: Subject,
        id: u64,
        allow: bool,
    ) -> Result<bool, StoreError> {
        self.update(&guild_scope(guild), &access_keys(subject), move |v| {
            let mut allowed = parse_set(v[0].as_deref());
            let mut denied = parse_set(v[1].as_deref());
            if allow {
                denied.remove(&id);
                allowed.insert(id);
            } else {
                allowed.remove(&id);
                denied.insert(id);
            }
            v[0] = format_set(&allowed);
            v[1] = format_set(&denied);
            !allowed.is_empty()
        })
        .await
    }

    pub async fn guild_model(&self, guild: u64) -> Result<Option<String>, StoreError> {
        self.get(&guild_scope(guild), MODEL).await
    }

    pub async fn set_guild_model(&self, guild: u64, model: &str) -> Result<(), StoreError> {
        self.set(&guild_scope(guild), MODEL, Some(model)).await?;
        Ok(())
    }

    pub async fn set_persona(&self, at: PersonaScope, text: &str) -> Result<(), StoreError> {
        self.set(&at.scope(), PERSONA, Some(text)).await?;
        Ok(())
    }

    /// Clears a persona; false when there was none.
    pub async fn clear_persona(&self, at: PersonaScope) -> Result<bool, StoreError> {
        self.set(&at.scope(), PERSONA, None).await
    }

    pub async fn persona_at(&self, at: PersonaScope) -> Result<Option<String>, StoreError> {
        self.get(&at.scope(), PERSONA).await
    }

    /// The persona in effect: the channel's (or, in a thread, its parent channel's), else the
    /// guild's.
    pub async fn persona_for(
        &self,
        guild: Option<u64>,
        channels: &[u64],
    ) -> Result<Option<String>, StoreError> {
        for c in channels {
            if let Some(p) = self.persona_at(PersonaScope::Channel(*c)).await? {
                return Ok(Some(p));
            }
        }
        match guild {
            Some(g) => self.persona_at(PersonaScope::Guild(g)).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> GuildSettings {
        let path = dir.path().join("s.db");
        GuildSettings::new(Store::open(path.to_str().expect("utf-8")).expect("store"))
    }

    #[test]
    fn triggers_are_normalized() {
        assert_eq!(normalize_trigger("  Hey   Bot "), Some("hey bot".into()));
        assert_eq!(normalize_trigger("  "), None);
        assert_eq!(normalize_trigger(&"x".repeat(101)), None);
    }

    #[tokio::test]
    async fn settings_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let s = open(&dir);
        assert!(s.add_trigger(1, "hey bot").await.expect("add"));
        assert!(!s.add_trigger(1, "hey bot").await.expect("add again"));
        s.add_trigger(1, "ask ai").await.expect("add");
        assert_eq!(
            s.triggers(1).await.expect("list"),
            vec!["hey bot", "ask ai"]
        );
        assert!(s.triggers(2).await.expect("list").is_empty());
        assert!(s.remove_trigger(1, "hey bot").await.expect("remove"));
        assert!(!s.remove_trigger(1, "hey bot").await.expect("remove again"));
        s.set_persona(PersonaScope::Guild(1), "pirate")
            .await
            .expect("persona");
        assert_eq!(
            s.persona_for(Some(1), &[10]).await.expect("p").as_deref(),
            Some("pirate")
        );
        s.set_persona(PersonaScope::Channel(10), "poet")
            .await
            .expect("persona");
        assert_eq!(
            s.persona_for(Some(1), &[10]).await.expect("p").as_deref(),
            Some("poet")
        );
        assert_eq!(
            s.persona_for(Some(1), &[11]).await.expect("p").as_deref(),
            Some("pirate")
        );
        assert!(
            s.clear_persona(PersonaScope::Channel(10))
                .await
                .expect("clear")
        );
        assert!(
            !s.clear_persona(PersonaScope::Channel(10))
                .await
                .expect("clear again")
        );
        s.set_guild_model(1, "qwen3").await.expect("model");
        assert_eq!(
            s.guild_model(1).await.expect("model").as_deref(),
            Some("qwen3")
        );
    }

    #[tokio::test]
    async fn guild_lists_persist_and_merge_with_config() {
        let dir = tempfile::tempdir().expect("dir");
        let s = open(&dir);
        let mut config = Lists::default();
        config.denied_users.insert(3);
        assert!(
            s.set_access(1, Subject::User, 5, true)
                .await
                .expect("allow")
        );
        s.set_access(1, Subject::Role, 7, false)
            .await
            .expect("deny");
        let l = s.lists(&config, Some(1)).await.expect("lists");
        assert!(
            l.allowed_users.contains(&5)
                && l.denied_users.contains(&3)
                && l.denied_roles.contains(&7)
        );
        // Other guilds are unaffected.
        let other = s.lists(&config, Some(2)).await.expect("lists");
        assert!(other.allowed_users.is_empty());
        // Deny moves the user from one list to the other.
        assert!(
            !s.set_access(1, Subject::User, 5, false)
                .await
                .expect("deny")
        );
        let l = s.lists(&config, Some(1)).await.expect("lists");
        assert!(!l.allowed_users.contains(&5) && l.denied_users.contains(&5));
        drop(s);
        let reopened = open(&dir);
        let l = reopened.lists(&config, Some(1)).await.expect("lists");
        assert!(l.denied_roles.contains(&7), "lists survive a restart");
    }

    /// Admin commands run concurrently (one task per interaction): each read-modify-write of a
    /// list must see the one before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_admin_commands_lose_no_update() {
        let dir = tempfile::tempdir().expect("dir");
        let s = open(&dir);
        // Warm the cache, as a running bot has it after its first message.
        s.lists(&Lists::default(), Some(1)).await.expect("lists");
        s.triggers(1).await.expect("triggers");
        let tasks: Vec<_> = (0..40u64)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.set_access(1, Subject::User, 100 + i, i % 2 == 0)
                        .await
                        .expect("access");
                    s.add_trigger(1, &format!("word{i}"))
                        .await
                        .expect("trigger");
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let l = s.lists(&Lists::default(), Some(1)).await.expect("lists");
        assert_eq!(l.allowed_users.len() + l.denied_users.len(), 40, "{l:?}");
        assert_eq!(l.allowed_users.len(), 20);
        assert_eq!(s.triggers(1).await.expect("triggers").len(), 40);
        // What another process sees (no cache) is the same.
        let fresh = open(&dir);
        let l = fresh
            .lists(&Lists::default(), Some(1))
            .await
            .expect("lists");
        assert_eq!(l.allowed_users.len() + l.denied_users.len(), 40);
    }
}
