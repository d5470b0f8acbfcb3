//! Per-guild and per-channel settings the admin commands change, persisted in the store:
//! trigger words, the guild's default model, and personas (system prompts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{Store, StoreError};

use super::access::guild_scope;

/// The store's per-scope settings with an in-memory cache. The admin commands of this process are
/// the only writers and go through here, so after the first read of a key no message costs a
/// database round trip. (Reply chains are not cached: they grow with every reply.)
#[derive(Clone)]
pub struct Settings {
    store: Store,
    cache: Arc<Mutex<HashMap<ScopeKey, Option<String>>>>,
}

/// (scope, key)
type ScopeKey = (String, String);

impl Settings {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn cached(&self, scope: &str, key: &str) -> Option<Option<String>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(scope.to_string(), key.to_string())).cloned()
    }

    fn remember(&self, scope: &str, key: &str, value: Option<String>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert((scope.to_string(), key.to_string()), value);
    }

    pub async fn get(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(v) = self.cached(scope, key) {
            return Ok(v);
        }
        let v = self.store.get_setting(scope, key).await?;
        self.remember(scope, key, v.clone());
        Ok(v)
    }

    pub async fn set(&self, scope: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.store.set_setting(scope, key, value).await?;
        self.remember(scope, key, Some(value.to_string()));
        Ok(())
    }

    pub async fn delete(&self, scope: &str, key: &str) -> Result<bool, StoreError> {
        let existed = self.store.delete_setting(scope, key).await?;
        self.remember(scope, key, None);
        Ok(existed)
    }
}

fn channel_scope(channel: u64) -> String {
    format!("channel:{channel}")
}

const TRIGGERS: &str = "triggers";
const MODEL: &str = "model";
const PERSONA: &str = "persona";
/// Longest trigger phrase accepted.
pub const MAX_TRIGGER_CHARS: usize = 100;

/// The guild's own trigger words (the configured ones are added by the caller).
pub async fn guild_triggers(store: &Settings, guild: u64) -> Result<Vec<String>, StoreError> {
    Ok(store
        .get(&guild_scope(guild), TRIGGERS)
        .await?
        .map(|v| {
            v.lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default())
}

async fn save_triggers(
    store: &Settings,
    guild: u64,
    triggers: &[String],
) -> Result<(), StoreError> {
    if triggers.is_empty() {
        store.delete(&guild_scope(guild), TRIGGERS).await?;
        Ok(())
    } else {
        store
            .set(&guild_scope(guild), TRIGGERS, &triggers.join("\n"))
            .await
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

/// Adds a trigger; false when it was already there.
pub async fn add_trigger(store: &Settings, guild: u64, word: &str) -> Result<bool, StoreError> {
    let mut list = guild_triggers(store, guild).await?;
    if list.iter().any(|t| t == word) {
        return Ok(false);
    }
    list.push(word.to_string());
    save_triggers(store, guild, &list).await?;
    Ok(true)
}

/// Removes a trigger; false when it was not there.
pub async fn remove_trigger(store: &Settings, guild: u64, word: &str) -> Result<bool, StoreError> {
    let mut list = guild_triggers(store, guild).await?;
    let before = list.len();
    list.retain(|t| t != word);
    if list.len() == before {
        return Ok(false);
    }
    save_triggers(store, guild, &list).await?;
    Ok(true)
}

pub async fn guild_model(store: &Settings, guild: u64) -> Result<Option<String>, StoreError> {
    store.get(&guild_scope(guild), MODEL).await
}

pub async fn set_guild_model(store: &Settings, guild: u64, model: &str) -> Result<(), StoreError> {
    store.set(&guild_scope(guild), MODEL, model).await
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

pub async fn set_persona(store: &Settings, at: PersonaScope, text: &str) -> Result<(), StoreError> {
    store.set(&at.scope(), PERSONA, text).await
}

pub async fn clear_persona(store: &Settings, at: PersonaScope) -> Result<bool, StoreError> {
    store.delete(&at.scope(), PERSONA).await
}

pub async fn persona_at(store: &Settings, at: PersonaScope) -> Result<Option<String>, StoreError> {
    store.get(&at.scope(), PERSONA).await
}

/// The persona in effect: the channel's (or, in a thread, its parent channel's), else the guild's.
pub async fn persona_for(
    store: &Settings,
    guild: Option<u64>,
    channels: &[u64],
) -> Result<Option<String>, StoreError> {
    for c in channels {
        if let Some(p) = persona_at(store, PersonaScope::Channel(*c)).await? {
            return Ok(Some(p));
        }
    }
    match guild {
        Some(g) => persona_at(store, PersonaScope::Guild(g)).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_normalized() {
        assert_eq!(normalize_trigger("  Hey   Bot "), Some("hey bot".into()));
        assert_eq!(normalize_trigger("  "), None);
        assert_eq!(normalize_trigger(&"x".repeat(101)), None);
    }

    #[tokio::test]
    async fn settings_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Settings::new(
            Store::open(dir.path().join("s.db").to_str().expect("utf-8")).expect("store"),
        );
        assert!(add_trigger(&store, 1, "hey bot").await.expect("add"));
        assert!(!add_trigger(&store, 1, "hey bot").await.expect("add again"));
        add_trigger(&store, 1, "ask ai").await.expect("add");
        assert_eq!(
            guild_triggers(&store, 1).await.expect("list"),
            vec!["hey bot", "ask ai"]
        );
        assert!(guild_triggers(&store, 2).await.expect("list").is_empty());
        assert!(remove_trigger(&store, 1, "hey bot").await.expect("remove"));
        assert!(
            !remove_trigger(&store, 1, "hey bot")
                .await
                .expect("remove again")
        );
        set_persona(&store, PersonaScope::Guild(1), "pirate")
            .await
            .expect("persona");
        assert_eq!(
            persona_for(&store, Some(1), &[10])
                .await
                .expect("p")
                .as_deref(),
            Some("pirate")
        );
        set_persona(&store, PersonaScope::Channel(10), "poet")
            .await
            .expect("persona");
        assert_eq!(
            persona_for(&store, Some(1), &[10])
                .await
                .expect("p")
                .as_deref(),
            Some("poet")
        );
        assert_eq!(
            persona_for(&store, Some(1), &[11])
                .await
                .expect("p")
                .as_deref(),
            Some("pirate")
        );
        set_guild_model(&store, 1, "qwen3").await.expect("model");
        assert_eq!(
            guild_model(&store, 1).await.expect("model").as_deref(),
            Some("qwen3")
        );
    }
}
