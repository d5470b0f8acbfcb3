//! Which messages the bot answers and which conversation (session) they belong to.
//!
//! - Addressed: a mention of the bot, a reply to one of its messages, a DM (when allowed), or a
//!   trigger word (whole words, any case). Bots, the bot itself included, are never answered.
//! - Sessions: per user per channel by default; a thread is one shared conversation; a DM is the
//!   user's own. A turn always runs in the asker's own session: a reply to a message of another
//!   conversation brings only the visible reply chain along (`chain.rs`). The bot's message →
//!   session map lives in the store, so a reply to the bot's answer in your own conversation is
//!   known as such after a restart.

use crate::store::{Store, StoreError};

/// Where a message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Dm { user: u64 },
    Thread { thread: u64 },
    Channel { channel: u64, user: u64 },
}

impl Place {
    /// The session key of a new conversation here.
    pub fn session(self) -> String {
        match self {
            Place::Dm { user } => format!("discord:dm:{user}"),
            Place::Thread { thread } => format!("discord:thread:{thread}"),
            Place::Channel { channel, user } => format!("discord:channel:{channel}:user:{user}"),
        }
    }
}

/// Why a message is for the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    Mention,
    Reply,
    Dm,
    Trigger,
}

/// The facts about a message that decide whether the bot answers it.
#[derive(Debug, Clone, Default)]
pub struct Incoming<'a> {
    pub author_is_bot: bool,
    pub is_dm: bool,
    pub mentions_bot: bool,
    pub replies_to_bot: bool,
    pub content: &'a str,
}

/// The switches of `[discord]` that matter here.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub respond_to_mentions: bool,
    pub allow_dms: bool,
    pub triggers: &'a [String],
}

/// Whether (and why) the bot should answer a message.
pub fn addressed(m: &Incoming<'_>, rules: &Rules<'_>) -> Option<Addressed> {
    if m.author_is_bot {
        return None;
    }
    if m.is_dm {
        return rules.allow_dms.then_some(Addressed::Dm);
    }
    if rules.respond_to_mentions && m.mentions_bot {
        return Some(Addressed::Mention);
    }
    if m.replies_to_bot {
        return Some(Addressed::Reply);
    }
    if rules.triggers.iter().any(|t| contains_word(m.content, t)) {
        return Some(Addressed::Trigger);
    }
    None
}

/// Whether `phrase` occurs in `text` as whole words, ignoring case ("hey bot" matches
/// "Hey bot, hi" but not "they botanize").
pub fn contains_word(text: &str, phrase: &str) -> bool {
    let phrase = phrase.trim().to_lowercase();
    if phrase.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(pos) = text[from..].find(&phrase) {
        let start = from + pos;
        let end = start + phrase.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(word_char) && !after.is_some_and(word_char) {
            return true;
        }
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Removes mentions of the bot (`<@id>`, `<@!id>`) and trims: what the user asked.
pub fn strip_bot_mention(content: &str, bot: u64) -> String {
    content
        .replace(&format!("<@{bot}>"), "")
        .replace(&format!("<@!{bot}>"), "")
        .trim()
        .to_string()
}

/// The session a bot message belongs to, if the bot recorded one.
pub async fn session_of_message(store: &Store, message: u64) -> Result<Option<String>, StoreError> {
    store.reply_session(message).await
}

/// Records that a bot message belongs to `session` (so replies to it continue there).
pub async fn remember_message(
    store: &Store,
    message: u64,
    session: &str,
) -> Result<(), StoreError> {
    store.link_reply(message, session).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules<'static> = Rules {
        respond_to_mentions: true,
        allow_dms: false,
        triggers: &[],
    };

    #[test]
    fn who_gets_answered() {
        let base = Incoming {
            content: "hello",
            ..Incoming::default()
        };
        assert_eq!(addressed(&base, &RULES), None);
        assert_eq!(
            addressed(
                &Incoming {
                    mentions_bot: true,
                    ..base.clone()
                },
                &RULES
            ),
            Some(Addressed::Mention)
        );
        assert_eq!(
            addressed(
                &Incoming {
                    replies_to_bot: true,
                    ..base.clone()
                },
                &RULES
            ),
            Some(Addressed::Reply)
        );
        let bot = Incoming {
            author_is_bot: true,
            mentions_bot: true,
            ..base.clone()
        };
        assert_eq!(addressed(&bot, &RULES), None, "bots are never answered");
        let dm = Incoming {
            is_dm: true,
            ..base.clone()
        };
        assert_eq!(addressed(&dm, &RULES), None, "DMs off by default");
        assert_eq!(
            addressed(
                &dm,
                &Rules {
                    allow_dms: true,
                    ..RULES
                }
            ),
            Some(Addressed::Dm)
        );
        let no_mentions = Rules {
            respond_to_mentions: false,
            ..RULES
        };
        assert_eq!(
            addressed(
                &Incoming {
                    mentions_bot: true,
                    ..base.clone()
                },
                &no_mentions
            ),
            None
        );
        let triggers = ["hey bot".to_string()];
        let with = Rules {
            triggers: &triggers,
            ..RULES
        };
        assert_eq!(
            addressed(
                &Incoming {
                    content: "Hey Bot, what's up?",
                    ..base.clone()
                },
                &with
            ),
            Some(Addressed::Trigger)
        );
        assert_eq!(
            addressed(
                &Incoming {
                    content: "they botanize",
                    ..base
                },
                &with
            ),
            None
        );
    }

    #[test]
    fn whole_words_only() {
        assert!(contains_word("ok ASK-AI please", "ask-ai"));
        assert!(contains_word("hey bot", "hey bot"));
        assert!(!contains_word("hey bots", "hey bot"));
        assert!(!contains_word("anything", ""));
        assert!(contains_word("ééé hey bot", "hey bot"));
        assert!(
            contains_word("xhey bot hey bot", "hey bot"),
            "a later occurrence counts"
        );
    }

    #[test]
    fn session_keys() {
        assert_eq!(
            Place::Channel {
                channel: 1,
                user: 2
            }
            .session(),
            "discord:channel:1:user:2"
        );
        assert_eq!(Place::Thread { thread: 3 }.session(), "discord:thread:3");
        assert_eq!(Place::Dm { user: 4 }.session(), "discord:dm:4");
    }

    #[test]
    fn mention_is_stripped() {
        assert_eq!(strip_bot_mention("<@42> what is 2+2?", 42), "what is 2+2?");
        assert_eq!(strip_bot_mention("hi <@!42>", 42), "hi");
        assert_eq!(strip_bot_mention("<@42>", 42), "");
        assert_eq!(
            strip_bot_mention("  line one\nline two ", 42),
            "line one\nline two"
        );
        assert_eq!(strip_bot_mention("ask <@7>", 42), "ask <@7>");
    }

    #[tokio::test]
    async fn reply_chains_survive_restarts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        let store = Store::open(path.to_str().expect("utf-8")).expect("store");
        remember_message(&store, 99, "discord:thread:3")
            .await
            .expect("remember");
        drop(store);
        let store = Store::open(path.to_str().expect("utf-8")).expect("store");
        assert_eq!(
            session_of_message(&store, 99)
                .await
                .expect("read")
                .as_deref(),
            Some("discord:thread:3")
        );
        assert_eq!(session_of_message(&store, 100).await.expect("read"), None);
    }
}
