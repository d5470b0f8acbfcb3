//! Who may talk to the bot, and who may administer it.
//!
//! Lists come from the configuration (`[discord.access]`) and, per guild, from the admin commands
//! `allow` / `deny` (persisted in the store). Deny wins over allow; an empty allow list allows
//! everyone. Admins are configured users or roles; they pass the allow lists (so that they cannot
//! lock themselves out) but not the deny lists.

use std::collections::BTreeSet;

use super::settings::Settings;
use crate::config::AccessConfig;
use crate::store::StoreError;

/// Someone writing somewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub user: u64,
    pub roles: Vec<u64>,
    pub guild: Option<u64>,
    pub channel: u64,
    /// For threads: the channel the thread hangs off (channel lists apply to its threads).
    pub parent_channel: Option<u64>,
}

/// Allow and deny lists of one place (config ∪ the guild's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lists {
    pub allowed_guilds: BTreeSet<u64>,
    pub allowed_channels: BTreeSet<u64>,
    pub denied_channels: BTreeSet<u64>,
    pub allowed_roles: BTreeSet<u64>,
    pub denied_roles: BTreeSet<u64>,
    pub allowed_users: BTreeSet<u64>,
    pub denied_users: BTreeSet<u64>,
    pub admin_users: BTreeSet<u64>,
    pub admin_roles: BTreeSet<u64>,
}

/// The outcome of an access check; `Denied` says why, for the refusal message and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied(&'static str),
}

impl Lists {
    pub fn from_config(c: &AccessConfig) -> Self {
        let set = |v: &Vec<u64>| v.iter().copied().collect::<BTreeSet<u64>>();
        Lists {
            allowed_guilds: set(&c.allowed_guilds),
            allowed_channels: set(&c.allowed_channels),
            allowed_roles: set(&c.allowed_roles),
            allowed_users: set(&c.allowed_users),
            denied_users: set(&c.denied_users),
            admin_users: set(&c.admin_users),
            admin_roles: set(&c.admin_roles),
            ..Lists::default()
        }
    }

    pub fn is_admin(&self, who: &Who) -> bool {
        self.admin_users.contains(&who.user)
            || who.roles.iter().any(|r| self.admin_roles.contains(r))
    }

    /// May `who` use the bot here? Deny wins; admins pass the allow lists.
    pub fn decide(&self, who: &Who) -> Decision {
        if self.denied_users.contains(&who.user) {
            return Decision::Denied("you are on this bot's deny list");
        }
        if who.roles.iter().any(|r| self.denied_roles.contains(r)) {
            return Decision::Denied("one of your roles is on this bot's deny list");
        }
        let channels = [Some(who.channel), who.parent_channel];
        if channels
            .iter()
            .flatten()
            .any(|c| self.denied_channels.contains(c))
        {
            return Decision::Denied("the bot is switched off in this channel");
        }
        if self.is_admin(who) {
            return Decision::Allowed;
        }
        if let Some(guild) = who.guild {
            if !self.allowed_guilds.is_empty() && !self.allowed_guilds.contains(&guild) {
                return Decision::Denied("the bot is not enabled in this server");
            }
            if !self.allowed_channels.is_empty()
                && !channels
                    .iter()
                    .flatten()
                    .any(|c| self.allowed_channels.contains(c))
            {
                return Decision::Denied("the bot is not enabled in this channel");
            }
        }
        let by_user = self.allowed_users.contains(&who.user);
        let by_role = who.roles.iter().any(|r| self.allowed_roles.contains(r));
        if (!self.allowed_users.is_empty() || !self.allowed_roles.is_empty())
            && !by_user
            && !by_role
        {
            return Decision::Denied("you are not on this bot's allow list");
        }
        Decision::Allowed
    }
}

/// What an `allow` / `deny` command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    User,
    Role,
    Channel,
}

impl Subject {
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Subject::User => ("access.allowed_users", "access.denied_users"),
            Subject::Role => ("access.allowed_roles", "access.denied_roles"),
            Subject::Channel => ("access.allowed_channels", "access.denied_channels"),
        }
    }
    pub fn noun(self) -> &'static str {
        match self {
            Subject::User => "user",
            Subject::Role => "role",
            Subject::Channel => "channel",
        }
    }
}

pub fn guild_scope(guild: u64) -> String {
    format!("guild:{guild}")
}

async fn load_set(store: &Settings, scope: &str, key: &str) -> Result<BTreeSet<u64>, StoreError> {
    Ok(store
        .get(scope, key)
        .await?
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_default())
}

async fn save_set(
    store: &Settings,
    scope: &str,
    key: &str,
    set: &BTreeSet<u64>,
) -> Result<(), StoreError> {
    if set.is_empty() {
        store.delete(scope, key).await?;
        return Ok(());
    }
    let v = set.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    store.set(scope, key, &v).await
}

/// The lists that apply in `guild`: the configuration's plus the guild's own.
pub async fn lists_for(
    store: &Settings,
    config: &Lists,
    guild: Option<u64>,
) -> Result<Lists, StoreError> {
    let mut lists = config.clone();
    if let Some(g) = guild {
        let scope = guild_scope(g);
        for subject in [Subject::User, Subject::Role, Subject::Channel] {
            let (allow_key, deny_key) = subject.keys();
            let allow = load_set(store, &scope, allow_key).await?;
            let deny = load_set(store, &scope, deny_key).await?;
            let (a, d) = match subject {
                Subject::User => (&mut lists.allowed_users, &mut lists.denied_users),
                Subject::Role => (&mut lists.allowed_roles, &mut lists.denied_roles),
                Subject::Channel => (&mut lists.allowed_channels, &mut lists.denied_channels),
            };
            a.extend(allow);
            d.extend(deny);
        }
    }
    Ok(lists)
}

/// `allow` (true) or `deny` (false) `id` in `guild`: adds it to one list and removes it from the
/// other. Returns whether the guild's allow list for this kind is now non-empty (which restricts
/// everyone else).
pub async fn set_access(
    store: &Settings,
    guild: u64,
    subject: Subject,
    id: u64,
    allow: bool,
) -> Result<bool, StoreError> {
    let scope = guild_scope(guild);
    let (allow_key, deny_key) = subject.keys();
    let mut allowed = load_set(store, &scope, allow_key).await?;
    let mut denied = load_set(store, &scope, deny_key).await?;
    if allow {
        denied.remove(&id);
        allowed.insert(id);
    } else {
        allowed.remove(&id);
        denied.insert(id);
    }
    save_set(store, &scope, allow_key, &allowed).await?;
    save_set(store, &scope, deny_key, &denied).await?;
    Ok(!allowed.is_empty())
}

/// Removes `id` from both of the guild's lists for `subject`.
pub async fn clear_access(
    store: &Settings,
    guild: u64,
    subject: Subject,
    id: u64,
) -> Result<(), StoreError> {
    let scope = guild_scope(guild);
    let (allow_key, deny_key) = subject.keys();
    for key in [allow_key, deny_key] {
        let mut set = load_set(store, &scope, key).await?;
        set.remove(&id);
        save_set(store, &scope, key, &set).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn who(user: u64, roles: &[u64]) -> Who {
        Who {
            user,
            roles: roles.to_vec(),
            guild: Some(1),
            channel: 10,
            parent_channel: None,
        }
    }

    #[test]
    fn empty_lists_allow_everyone() {
        assert_eq!(Lists::default().decide(&who(5, &[])), Decision::Allowed);
    }

    #[test]
    fn deny_wins_over_allow() {
        let mut l = Lists::default();
        l.allowed_users.insert(5);
        l.denied_users.insert(5);
        assert!(matches!(l.decide(&who(5, &[])), Decision::Denied(_)));
        let mut l = Lists::default();
        l.allowed_users.insert(5);
        l.denied_roles.insert(7);
        assert!(matches!(l.decide(&who(5, &[7])), Decision::Denied(_)));
        // Even admins are denied when denied.
        l.admin_users.insert(5);
        assert!(matches!(l.decide(&who(5, &[7])), Decision::Denied(_)));
    }

    #[test]
    fn allow_lists_by_user_or_role() {
        let mut l = Lists::default();
        l.allowed_roles.insert(7);
        assert_eq!(l.decide(&who(5, &[7])), Decision::Allowed);
        assert!(matches!(l.decide(&who(6, &[])), Decision::Denied(_)));
        l.allowed_users.insert(6);
        assert_eq!(l.decide(&who(6, &[])), Decision::Allowed);
    }

    #[test]
    fn channels_and_threads() {
        let mut l = Lists::default();
        l.allowed_channels.insert(10);
        assert_eq!(l.decide(&who(5, &[])), Decision::Allowed);
        let thread = Who {
            channel: 99,
            parent_channel: Some(10),
            ..who(5, &[])
        };
        assert_eq!(l.decide(&thread), Decision::Allowed);
        let elsewhere = Who {
            channel: 11,
            ..who(5, &[])
        };
        assert!(matches!(l.decide(&elsewhere), Decision::Denied(_)));
        l.denied_channels.insert(10);
        assert!(matches!(l.decide(&thread), Decision::Denied(_)));
    }

    #[test]
    fn guilds_and_dms() {
        let mut l = Lists::default();
        l.allowed_guilds.insert(2);
        assert!(matches!(l.decide(&who(5, &[])), Decision::Denied(_)));
        let dm = Who {
            guild: None,
            ..who(5, &[])
        };
        assert_eq!(l.decide(&dm), Decision::Allowed);
    }

    #[test]
    fn admins_pass_allow_lists() {
        let mut l = Lists::default();
        l.allowed_users.insert(1);
        l.admin_roles.insert(9);
        assert!(l.is_admin(&who(5, &[9])));
        assert_eq!(l.decide(&who(5, &[9])), Decision::Allowed);
        assert!(!l.is_admin(&who(5, &[])));
    }

    #[tokio::test]
    async fn guild_lists_persist_and_merge_with_config() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        let store = Settings::new(Store::open(path.to_str().expect("utf-8")).expect("store"));
        let mut config = Lists::default();
        config.denied_users.insert(3);
        assert!(
            set_access(&store, 1, Subject::User, 5, true)
                .await
                .expect("allow")
        );
        set_access(&store, 1, Subject::Role, 7, false)
            .await
            .expect("deny");
        let l = lists_for(&store, &config, Some(1)).await.expect("lists");
        assert!(
            l.allowed_users.contains(&5)
                && l.denied_users.contains(&3)
                && l.denied_roles.contains(&7)
        );
        // Other guilds are unaffected.
        let other = lists_for(&store, &config, Some(2)).await.expect("lists");
        assert!(other.allowed_users.is_empty());
        // Deny moves the user from one list to the other.
        assert!(
            !set_access(&store, 1, Subject::User, 5, false)
                .await
                .expect("deny")
        );
        let l = lists_for(&store, &config, Some(1)).await.expect("lists");
        assert!(!l.allowed_users.contains(&5) && l.denied_users.contains(&5));
        clear_access(&store, 1, Subject::User, 5)
            .await
            .expect("clear");
        let l = lists_for(&store, &config, Some(1)).await.expect("lists");
        assert!(!l.denied_users.contains(&5));
        drop(store);
        let reopened = Settings::new(Store::open(path.to_str().expect("utf-8")).expect("store"));
        let l = lists_for(&reopened, &config, Some(1)).await.expect("lists");
        assert!(l.denied_roles.contains(&7), "lists survive a restart");
    }
}
