//! Reply links (which session a bot message on Discord belongs to) and retention: what is
//! deleted, when, and `forget`, which deletes everything of one session.

use std::time::Duration;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, now_secs, sql};
use crate::config::StoreConfig;

/// What the background pruning keeps. `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Messages older than this go (whole turns: a turn's rows share their time).
    pub max_age: Option<Duration>,
    /// Only this many latest turns of each session stay.
    pub max_turns_per_session: Option<u32>,
    /// Reply links older than this go (a reply to an older bot message starts afresh).
    pub reply_link_max_age: Duration,
}

impl Retention {
    pub fn from_config(c: &StoreConfig) -> Self {
        let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
        Self {
            max_age: c.max_age_days.map(days),
            max_turns_per_session: c.max_turns_per_session,
            reply_link_max_age: days(c.reply_link_days),
        }
    }
}

/// How many rows one pruning pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub messages: u64,
    pub reply_links: u64,
}

/// How often the background task prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn cutoff(age: Duration) -> i64 {
    now_secs().saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
}

fn message_id(message: u64) -> i64 {
    // Discord ids are below 2^63; anything else cannot be a message we posted.
    i64::try_from(message).unwrap_or(-1)
}

// Every answered message records its reply (cached statements: see history.rs).
pub(super) const LINK_REPLY: &str =
    "INSERT INTO reply_links (message, session, created_at) VALUES (?1, ?2, ?3)
     ON CONFLICT(message) DO UPDATE SET session = excluded.session";
pub(super) const REPLY_SESSION: &str = "SELECT session FROM reply_links WHERE message = ?1";

impl Store {
    /// The session a bot message belongs to, if the bot recorded one.
    pub async fn reply_session(&self, message: u64) -> Result<Option<String>, StoreError> {
        self.quick(move |c| {
            c.prepare_cached(REPLY_SESSION)
                .and_then(|mut stmt| stmt.query_row(params![message_id(message)], |r| r.get(0)))
                .optional()
                .map_err(sql("reading a reply link"))
        })
        .await
    }

    /// Records that a bot message belongs to `session`.
    pub async fn link_reply(&self, message: u64, session: &str) -> Result<(), StoreError> {
        let session = session.to_string();
        self.quick(move |c| {
            c.prepare_cached(LINK_REPLY)
                .and_then(|mut stmt| {
                    stmt.execute(params![message_id(message), session, now_secs()])
                })
                .map_err(sql("saving a reply link"))?;
            Ok(())
        })
        .await?;
        self.wrote();
        Ok(())
    }

    /// Deletes everything of a session: its messages, its model choice and the reply links
    /// into it. Returns the number of messages deleted.
    pub async fn forget_session(&self, session: &str) -> Result<u64, StoreError> {
        let session = session.to_string();
        self.forget_recent();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("starting to forget a session"))?;
            let n = tx
                .execute("DELETE FROM messages WHERE session = ?1", params![session])
                .map_err(sql("forgetting the session's messages"))?;
            tx.execute("DELETE FROM sessions WHERE session = ?1", params![session])
                .map_err(sql("forgetting the session"))?;
            tx.execute(
                "DELETE FROM reply_links WHERE session = ?1",
                params![session],
            )
            .map_err(sql("forgetting the session's reply links"))?;
            tx.commit().map_err(sql("committing a forget"))?;
            Ok(n as u64)
        })
        .await
    }

    /// One pruning pass.
    pub async fn prune(&self, retention: Retention) -> Result<Pruned, StoreError> {
        self.forget_recent();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("starting to prune"))?;
            let mut messages = 0;
            if let Some(age) = retention.max_age {
                let before = cutoff(age);
                messages += tx
                    .execute("DELETE FROM messages WHERE created_at < ?1", params![before])
                    .map_err(sql("pruning old messages"))?;
                tx.execute(
                    "DELETE FROM sessions WHERE updated_at < ?1
                     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session = sessions.session)",
                    params![before],
                )
                .map_err(sql("pruning old sessions"))?;
            }
            if let Some(turns) = retention.max_turns_per_session {
                messages += tx
                    .execute(
                        "DELETE FROM messages WHERE id IN (
                            SELECT m.id FROM messages m
                            JOIN (SELECT session, MAX(turn) AS last FROM messages GROUP BY session) t
                              ON m.session = t.session
                            WHERE m.turn <= t.last - ?1)",
                        params![turns],
                    )
                    .map_err(sql("pruning turns beyond the limit"))?;
            }
            let reply_links = tx
                .execute(
                    "DELETE FROM reply_links WHERE created_at < ?1",
                    params![cutoff(retention.reply_link_max_age)],
                )
                .map_err(sql("pruning old reply links"))?;
            tx.commit().map_err(sql("committing the pruning"))?;
            Ok(Pruned {
                messages: messages as u64,
                reply_links: reply_links as u64,
            })
        })
        .await
    }

    /// Prunes now and then every [`PRUNE_EVERY`] until the task is aborted.
    pub fn spawn_pruning(&self, retention: Retention) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                match store.prune(retention).await {
                    Ok(p) if p != Pruned::default() => tracing::info!(
                        messages = p.messages,
                        reply_links = p.reply_links,
                        "pruned the store"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning the store failed"),
                }
            }
        })
    }
}
