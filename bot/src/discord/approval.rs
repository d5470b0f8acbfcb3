//! Tool approval with buttons: a tool listed in a server's `tools.require_approval` runs only after
//! the person who asked presses Approve. Deny, or no answer within `approval_timeout_secs`, tells
//! the model the call was refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::rest::{DiscordRest, Posted, Target};

const PREFIX: &str = "ollama-mcp:";

struct Pending {
    user: u64,
    tool: String,
    tx: oneshot::Sender<bool>,
}

/// What a button press means.
#[derive(Debug, PartialEq, Eq)]
pub enum Press {
    /// Not one of our buttons.
    NotOurs,
    /// Ours, but the question was already answered or timed out.
    Expired,
    /// Someone other than the asker pressed it.
    WrongUser {
        owner: u64,
    },
    Decided {
        approved: bool,
        tool: String,
    },
}

pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
    timeout: Duration,
}

impl Approvals {
    pub fn new(timeout: Duration) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Asks `user` to approve `tool` with `arguments`; true only on Approve.
    pub async fn ask(
        &self,
        rest: &DiscordRest,
        target: &Target,
        user: u64,
        tool: &str,
        arguments: &Value,
    ) -> bool {
        let nonce = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            nonce.clone(),
            Pending {
                user,
                tool: tool.to_string(),
                tx,
            },
        );
        let components = buttons(&nonce);
        let text = question(user, tool, arguments);
        // In a channel the question replies to the asker's message, which notifies them; for a
        // slash command it is a follow-up of the interaction.
        let as_reply = matches!(target, Target::Channel { .. });
        let posted = match rest
            .post(target, as_reply, &text, Some(&components), None)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, tool, "could not post the approval question; refusing the call");
                self.lock().remove(&nonce);
                return false;
            }
        };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(approved)) => approved,
            _ => {
                self.lock().remove(&nonce);
                let text = format!(
                    "⌛ No answer within {} s: `{tool}` was not run.",
                    self.timeout.as_secs()
                );
                if let Err(e) = edit_posted(rest, target, posted, &text).await {
                    tracing::warn!(error = %e, "could not mark the approval as timed out");
                }
                false
            }
        }
    }

    /// Handles a button press by `presser` on `custom_id`.
    pub fn press(&self, custom_id: &str, presser: u64) -> Press {
        let Some(rest) = custom_id.strip_prefix(PREFIX) else {
            return Press::NotOurs;
        };
        let (approved, nonce) = match rest.split_once(':') {
            Some(("approve", n)) => (true, n),
            Some(("deny", n)) => (false, n),
            _ => return Press::NotOurs,
        };
        let mut pending = self.lock();
        let Some(p) = pending.get(nonce) else {
            return Press::Expired;
        };
        if p.user != presser {
            return Press::WrongUser { owner: p.user };
        }
        let Some(p) = pending.remove(nonce) else {
            return Press::Expired;
        };
        drop(pending);
        let tool = p.tool.clone();
        if p.tx.send(approved).is_err() {
            return Press::Expired;
        }
        Press::Decided { approved, tool }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn edit_posted(
    rest: &DiscordRest,
    target: &Target,
    posted: Posted,
    text: &str,
) -> Result<(), super::rest::RestError> {
    rest.edit(target, posted, text, Some(&json!([])), None)
        .await
}

fn buttons(nonce: &str) -> Value {
    json!([{
        "type": 1,
        "components": [
            {"type": 2, "style": 3, "label": "Approve", "custom_id": format!("{PREFIX}approve:{nonce}")},
            {"type": 2, "style": 4, "label": "Deny", "custom_id": format!("{PREFIX}deny:{nonce}")},
        ]
    }])
}

fn question(user: u64, tool: &str, arguments: &Value) -> String {
    let mut args = arguments.to_string();
    if args.chars().count() > 600 {
        args = args.chars().take(600).collect::<String>() + "…";
    }
    // The mention names the person; allowed_mentions keeps it from pinging anyone.
    format!(
        "🔐 <@{user}>, the model wants to run `{tool}` with:\n```json\n{}\n```\nApprove?",
        args.replace("```", "'''")
    )
}

/// The message that replaces the question once answered.
pub fn answered(approved: bool, tool: &str, by: u64) -> String {
    if approved {
        format!("✅ <@{by}> approved `{tool}`.")
    } else {
        format!("🚫 <@{by}> denied `{tool}`.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(a: &Approvals, nonce: &str, user: u64) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        a.lock().insert(
            nonce.into(),
            Pending {
                user,
                tool: "memory__delete".into(),
                tx,
            },
        );
        rx
    }

    #[test]
    fn only_the_asker_decides_once() {
        let a = Approvals::new(Duration::from_secs(60));
        let mut rx = register(&a, "n1", 5);
        assert_eq!(a.press("other:thing", 5), Press::NotOurs);
        assert_eq!(
            a.press("ollama-mcp:approve:n1", 6),
            Press::WrongUser { owner: 5 }
        );
        assert_eq!(
            a.press("ollama-mcp:approve:n1", 5),
            Press::Decided {
                approved: true,
                tool: "memory__delete".into()
            }
        );
        assert_eq!(rx.try_recv(), Ok(true));
        assert_eq!(a.press("ollama-mcp:deny:n1", 5), Press::Expired);
        let mut rx = register(&a, "n2", 5);
        assert_eq!(
            a.press("ollama-mcp:deny:n2", 5),
            Press::Decided {
                approved: false,
                tool: "memory__delete".into()
            }
        );
        assert_eq!(rx.try_recv(), Ok(false));
    }

    #[test]
    fn buttons_have_distinct_short_ids() {
        let b = buttons("0123456789abcdef");
        let ids: Vec<&str> = b[0]["components"]
            .as_array()
            .expect("row")
            .iter()
            .filter_map(|c| c["custom_id"].as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(ids.iter().all(|i| i.len() <= 100));
    }

    #[test]
    fn question_shows_arguments_safely() {
        let q = question(1, "memory__delete", &json!({"x": "```"}));
        assert_eq!(q.matches("```").count(), 2, "{q}");
    }
}
