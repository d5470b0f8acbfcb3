//! Who may talk to the bot, and who may administer it: the policy alone, testable without a
//! store.
//!
//! Lists come from the configuration (`[discord.access]`) and, per guild, from the admin commands
//! `allow` / `deny` (persisted by `settings.rs`). Deny wins over allow; an empty allow list allows
//! everyone. Admins are configured users or roles; they pass the allow lists (so that they cannot
//! lock themselves out) but not the deny lists.

use std::collections::BTreeSet;

use crate::config::AccessConfig;

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
    pub fn noun(self) -> &'static str {
        match self {
            Subject::User => "user",
            Subject::Role => "role",
            Subject::Channel => "channel",
        }
    }

    /// How Discord renders a mention of this subject.
    pub fn mention(self, id: u64) -> String {
        match self {
            Subject::User => format!("<@{id}>"),
            Subject::Role => format!("<@&{id}>"),
            Subject::Channel => format!("<#{id}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
