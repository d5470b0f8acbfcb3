//! Conversation history: turns written whole, read newest first within a budget.

use std::time::Instant;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, StoredMessage, now_secs, sql};
use crate::llm::ChatMessage;
use crate::metrics::metrics;

impl Store {
    /// The session's history, oldest first.
    pub async fn history(&self, session: &str) -> Result<Vec<StoredMessage>, StoreError> {
        self.recent_history(session, |_| true).await
    }

    /// The session's latest turns, oldest first, read newest first until `more_needed` (given
    /// each whole turn, newest first) says that no older turn could reach the prompt: the cost of
    /// a turn stays bounded by the prompt budget, not by the length of the session.
    pub async fn recent_history(
        &self,
        session: &str,
        mut more_needed: impl FnMut(&[StoredMessage]) -> bool + Send + 'static,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let session = session.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT turn, body, tokens FROM messages WHERE session = ?1 ORDER BY id DESC",
                )
                .map_err(sql("reading history"))?;
            let mut rows = stmt
                .query(params![session])
                .map_err(sql("reading history"))?;
            let mut out: Vec<StoredMessage> = Vec::new();
            let mut turn_start = 0;
            while let Some(row) = rows.next().map_err(sql("reading history"))? {
                let turn: i64 = row.get(0).map_err(sql("reading history"))?;
                if out.last().is_some_and(|m| m.turn != turn) {
                    if !more_needed(&out[turn_start..]) {
                        break;
                    }
                    turn_start = out.len();
                }
                let body: String = row.get(1).map_err(sql("reading history"))?;
                out.push(StoredMessage {
                    turn,
                    message: serde_json::from_str(&body)?,
                    tokens: row.get(2).map_err(sql("reading history"))?,
                });
            }
            out.reverse();
            Ok(out)
        })
        .await
    }

    /// Appends one completed turn (user message, tool rounds, reply) in one transaction.
    pub async fn append_turn(
        &self,
        session: &str,
        messages: Vec<(ChatMessage, u32)>,
    ) -> Result<(), StoreError> {
        let session = session.to_string();
        let started = Instant::now();
        let bodies = messages
            .iter()
            .map(|(m, t)| Ok((serde_json::to_string(m)?, *t)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let result = self
            .with(move |c| {
                // IMMEDIATE: the write lock first, so that another process's write waits (busy
                // timeout) instead of failing when this read turns into a write.
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql("starting the turn write"))?;
                let turn: i64 = tx
                    .prepare_cached(
                        // Turns grow with ids: the newest row's turn, found through the index
                        // (MAX(turn) would scan the whole session).
                        "SELECT turn FROM messages WHERE session = ?1 ORDER BY id DESC LIMIT 1",
                    )
                    .and_then(|mut stmt| stmt.query_row(params![session], |r| r.get::<_, i64>(0)))
                    .optional()
                    .map_err(sql("numbering the turn"))?
                    .map_or(1, |last| last + 1);
                let now = now_secs();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO messages (session, turn, body, tokens, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .map_err(sql("writing the turn"))?;
                    for (body, tokens) in &bodies {
                        stmt.execute(params![session, turn, body, tokens, now]).map_err(sql("writing the turn"))?;
                    }
                }
                tx.prepare_cached(
                    "INSERT INTO sessions (session, updated_at) VALUES (?1, ?2)
                     ON CONFLICT(session) DO UPDATE SET updated_at = excluded.updated_at",
                )
                .and_then(|mut stmt| stmt.execute(params![session, now]))
                .map_err(sql("touching the session"))?;
                tx.commit().map_err(sql("committing the turn"))
            })
            .await;
        metrics()
            .store_write_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Forgets a session's history (its model choice stays).
    pub async fn clear_history(&self, session: &str) -> Result<u64, StoreError> {
        let session = session.to_string();
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM messages WHERE session = ?1", params![session])
                .map_err(sql("forgetting the session"))?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn session_model(&self, session: &str) -> Result<Option<String>, StoreError> {
        let session = session.to_string();
        self.with(move |c| {
            c.prepare_cached("SELECT model FROM sessions WHERE session = ?1")
                .and_then(|mut stmt| {
                    stmt.query_row(params![session], |r| r.get::<_, Option<String>>(0))
                })
                .optional()
                .map(Option::flatten)
                .map_err(sql("reading the session's model"))
        })
        .await
    }

    /// Sets (or with `None` clears) the session's model.
    pub async fn set_session_model(
        &self,
        session: &str,
        model: Option<&str>,
    ) -> Result<(), StoreError> {
        let session = session.to_string();
        let model = model.map(str::to_string);
        self.with(move |c| {
            c.execute(
                "INSERT INTO sessions (session, model, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(session) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
                params![session, model, now_secs()],
            )
            .map_err(sql("saving the session's model"))?;
            Ok(())
        })
        .await
    }
}
