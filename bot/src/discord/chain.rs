//! The visible reply chain: when someone replies to a message that is not part of their own
//! conversation (the bot's answer to another person, or another person's message), the turn runs
//! in the replier's own session and the model sees what the replier sees in the channel: the
//! chain of replied-to messages' text, as llmcord builds its context. Nobody's private history
//! (tool results, earlier turns) crosses into another person's conversation.

use serde_json::Value;

use super::rest::{DiscordRest, RestError};
use super::session::strip_bot_mention;

/// Messages followed up a chain.
pub const MAX_CHAIN_MESSAGES: usize = 8;
/// Characters of chain text kept (the newest messages win).
pub const MAX_CHAIN_CHARS: usize = 6000;

/// One message of a chain, as the channel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible {
    pub id: u64,
    pub channel: u64,
    pub author_id: u64,
    pub author: String,
    pub content: String,
    /// The message this one replies to.
    pub replies_to: Option<u64>,
}

impl Visible {
    /// From a message as the REST API and the gateway write it.
    pub fn from_json(v: &Value) -> Option<Self> {
        let id = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        Some(Self {
            id: id(&v["id"])?,
            channel: id(&v["channel_id"])?,
            author_id: id(&v["author"]["id"])?,
            author: v["author"]["username"]
                .as_str()
                .unwrap_or("someone")
                .to_string(),
            content: v["content"].as_str().unwrap_or("").to_string(),
            replies_to: id(&v["message_reference"]["message_id"]),
        })
    }
}

/// The chain ending at `last` (the message replied to), oldest first: followed up through the
/// messages' references while they exist and the limits allow. A message that cannot be read
/// (deleted, no access) ends the chain there.
pub async fn walk(rest: &DiscordRest, last: Visible) -> Vec<Visible> {
    let mut chain = vec![last];
    while chain.len() < MAX_CHAIN_MESSAGES {
        let Some(current) = chain.last() else { break };
        let Some(parent) = current.replies_to else {
            break;
        };
        let channel = current.channel;
        match fetch(rest, channel, parent).await {
            Ok(Some(m)) => chain.push(m),
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading a replied-to message failed; the chain ends here");
                break;
            }
        }
    }
    chain.reverse();
    chain
}

async fn fetch(rest: &DiscordRest, channel: u64, id: u64) -> Result<Option<Visible>, RestError> {
    Ok(Visible::from_json(&rest.get_message(channel, id).await?))
}

/// The question with the chain before it, for a turn in the replier's own session.
pub fn with_context(chain: &[Visible], bot: u64, asker: &str, question: &str) -> String {
    let mut lines: Vec<String> = chain
        .iter()
        .filter_map(|m| {
            let text = strip_bot_mention(&m.content, bot);
            if text.is_empty() {
                return None;
            }
            let who = if m.author_id == bot {
                "you".to_string()
            } else {
                m.author.clone()
            };
            Some(format!("{who}: {text}"))
        })
        .collect();
    // The newest messages matter most: drop from the oldest end.
    let mut total: usize = lines.iter().map(|l| l.chars().count()).sum();
    while total > MAX_CHAIN_CHARS && !lines.is_empty() {
        total -= lines.remove(0).chars().count();
    }
    if lines.is_empty() {
        return question.to_string();
    }
    format!(
        "[{asker} is replying to these messages in the channel, oldest first:]\n{}\n[{asker} writes:]\n{question}",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(id: u64, author: u64, name: &str, content: &str, to: Option<u64>) -> Visible {
        Visible {
            id,
            channel: 1,
            author_id: author,
            author: name.into(),
            content: content.into(),
            replies_to: to,
        }
    }

    #[test]
    fn context_names_who_said_what_oldest_first() {
        let chain = [
            msg(1, 7, "alice", "<@42> what is rust?", None),
            msg(2, 42, "bot", "A language.", Some(1)),
        ];
        let text = with_context(&chain, 42, "bob", "and go?");
        assert_eq!(
            text,
            "[bob is replying to these messages in the channel, oldest first:]\nalice: what is rust?\nyou: A language.\n[bob writes:]\nand go?"
        );
        assert_eq!(with_context(&[], 42, "bob", "hi"), "hi");
        let empty = [msg(1, 7, "alice", "<@42>", None)];
        assert_eq!(with_context(&empty, 42, "bob", "hi"), "hi");
    }

    #[test]
    fn long_chains_keep_the_newest_text() {
        let chain = [
            msg(1, 7, "alice", &"ancient ".repeat(1000), None),
            msg(2, 42, "bot", "newest", Some(1)),
        ];
        let text = with_context(&chain, 42, "bob", "q");
        assert!(
            !text.contains("ancient") && text.contains("you: newest"),
            "{text}"
        );
        assert!(text.chars().count() < MAX_CHAIN_CHARS + 200);
    }

    #[test]
    fn reads_messages_as_discord_writes_them() {
        let v = json!({
            "id": "5", "channel_id": "1", "content": "hi",
            "author": {"id": "7", "username": "alice"},
            "message_reference": {"message_id": "4"}
        });
        assert_eq!(
            Visible::from_json(&v),
            Some(msg(5, 7, "alice", "hi", Some(4)))
        );
        assert_eq!(Visible::from_json(&json!({"id": "x"})), None);
    }
}
