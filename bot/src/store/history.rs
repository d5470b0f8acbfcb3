//! Conversation history: turns written whole, read newest first within a budget.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, StoredMessage, now_secs, sql};
use crate::llm::ChatMessage;
use crate::metrics::metrics;

// The statements every turn runs, prepared once per connection (`prepare_cached`).
//
// `CAST(?1 AS TEXT)`, not a bare `?1`: SQLite (3.54, built with STAT4 as rusqlite bundles it)
// makes a statement that filters `session = ?1` and orders by `id` depend on the value bound, so
// it prepared the statement again on every new session bound (`sqlite3_stmt_status` RePrepare),
// a third of the store's work per turn. A cast is not a bare parameter; the plan is the same
// index search (tests: `turn_statements_are_prepared_once`).

/// The newest row's turn (turns grow with ids; `MAX(turn)` would scan the whole session).
pub(super) const LAST_TURN: &str =
    "SELECT turn FROM messages WHERE session = CAST(?1 AS TEXT) ORDER BY id DESC LIMIT 1";
pub(super) const INSERT_MESSAGE: &str =
    "INSERT INTO messages (session, turn, body, tokens, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(super) const TOUCH_SESSION: &str = "INSERT INTO sessions (session, updated_at) VALUES (?1, ?2)
     ON CONFLICT(session) DO UPDATE SET updated_at = excluded.updated_at";
pub(super) const SESSION_MODEL: &str = "SELECT model FROM sessions WHERE session = ?1";
/// A session's rows older than an id, newest first.
pub(super) const READ_OLDER: &str = "SELECT id, turn, body, tokens FROM messages
     WHERE session = CAST(?1 AS TEXT) AND id < ?2 ORDER BY id DESC";
/// A session's rows strictly between two ids, newest first.
pub(super) const READ_BETWEEN: &str = "SELECT id, turn, body, tokens FROM messages
     WHERE session = CAST(?1 AS TEXT) AND id > ?2 AND id < ?3 ORDER BY id DESC";
pub(super) const STILL_THERE: &str = "SELECT 1 FROM messages WHERE id = ?1 AND session = ?2";

impl Store {
    /// The session's history, oldest first.
    pub async fn history(&self, session: &str) -> Result<Vec<StoredMessage>, StoreError> {
        // Whole sessions are not kept: only the bounded reads of turns are.
        self.read_recent(session, |_| true, false).await
    }

    /// The session's latest turns, oldest first, read newest first until `more_needed` (given
    /// each whole turn, newest first) says that no older turn could reach the prompt: the cost of
    /// a turn stays bounded by the prompt budget, not by the length of the session.
    ///
    /// The rows a read returned are kept per session, so the next read decodes only the rows
    /// written since (by this process or another one on the same file) and takes the rest from
    /// memory; it reads everything again when the kept rows do not reach as far back as
    /// `more_needed` now asks, or when the oldest of them is gone (a reset or retention, here or
    /// in another process: both delete a session's oldest rows first).
    pub async fn recent_history(
        &self,
        session: &str,
        more_needed: impl FnMut(&[StoredMessage]) -> bool + Clone + Send + 'static,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.read_recent(session, more_needed, true).await
    }

    async fn read_recent(
        &self,
        session: &str,
        more_needed: impl FnMut(&[StoredMessage]) -> bool + Clone + Send + 'static,
        keep: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let session = session.to_string();
        let recent = self.recent.clone();
        self.quick(move |c| {
            // A fresh count for each run (a quick call may run twice).
            let mut more_needed = more_needed.clone();
            let kept = if keep {
                Self::lock(&recent).remove(&session)
            } else {
                None
            };
            let kept = match kept {
                Some(kept) if kept.still_there(c, &session)? => Some(kept),
                _ => None,
            };
            let mut taker = Taker::default();
            // Rows newest first: those written since the kept ones, the kept ones, then older
            // ones from the file (only when the kept ones were not enough).
            let mut from_file_below = i64::MAX;
            if let Some(kept) = kept {
                let newest = kept.rows.first().map_or(i64::MIN, |r| r.0);
                let oldest = kept.rows.last().map_or(i64::MAX, |r| r.0);
                let newer = rows_between(c, &session, newest, i64::MAX)?;
                let mut open = true;
                for row in newer.into_iter().chain(kept.rows) {
                    open = taker.feed(row, &mut more_needed);
                    if !open {
                        break;
                    }
                }
                from_file_below = if open && !kept.complete {
                    oldest
                } else {
                    i64::MIN
                };
            }
            if from_file_below != i64::MIN {
                let mut stmt = c
                    .prepare_cached(READ_OLDER)
                    .map_err(sql("reading history"))?;
                let rows = stmt
                    .query_map(params![session, from_file_below], decode_row)
                    .map_err(sql("reading history"))?;
                for row in rows {
                    let row = row.map_err(sql("reading history"))??;
                    if !taker.feed(row, &mut more_needed) {
                        break;
                    }
                }
            }
            let read = taker.finish();
            if !keep {
                return Ok(read.rows.into_iter().rev().map(|r| r.1).collect());
            }
            let out: Vec<StoredMessage> = read.rows.iter().rev().map(|r| r.1.clone()).collect();
            let mut recent = Self::lock(&recent);
            if recent.len() >= MAX_KEPT_SESSIONS {
                recent.clear();
            }
            recent.insert(session.clone(), read);
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
            .quick(move |c| {
                // IMMEDIATE: the write lock first, so that another process's write waits (busy
                // timeout) instead of failing when this read turns into a write.
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql("starting the turn write"))?;
                let turn: i64 = tx
                    .prepare_cached(LAST_TURN)
                    .and_then(|mut stmt| stmt.query_row(params![session], |r| r.get::<_, i64>(0)))
                    .optional()
                    .map_err(sql("numbering the turn"))?
                    .map_or(1, |last| last + 1);
                let now = now_secs();
                {
                    let mut stmt = tx
                        .prepare_cached(INSERT_MESSAGE)
                        .map_err(sql("writing the turn"))?;
                    for (body, tokens) in &bodies {
                        stmt.execute(params![session, turn, body, tokens, now])
                            .map_err(sql("writing the turn"))?;
                    }
                }
                tx.prepare_cached(TOUCH_SESSION)
                    .and_then(|mut stmt| stmt.execute(params![session, now]))
                    .map_err(sql("touching the session"))?;
                tx.commit().map_err(sql("committing the turn"))
            })
            .await;
        if result.is_ok() {
            self.wrote();
        }
        metrics()
            .store_write_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Forgets a session's history (its model choice stays).
    pub async fn clear_history(&self, session: &str) -> Result<u64, StoreError> {
        self.forget_recent();
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
        self.quick(move |c| {
            c.prepare_cached(SESSION_MODEL)
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

/// Sessions whose last history read is kept; past it, all are forgotten at once (a bot in many
/// channels reads them again, as it always did).
const MAX_KEPT_SESSIONS: usize = 64;

/// The rows the last history read of a session returned, newest first, with their ids.
pub(super) struct Recent {
    rows: Vec<(i64, StoredMessage)>,
    /// They reach back to the session's first row.
    complete: bool,
}

impl Recent {
    /// Whether the oldest kept row is still stored (deletions take a session's oldest first).
    fn still_there(&self, c: &Connection, session: &str) -> Result<bool, StoreError> {
        let Some((oldest, _)) = self.rows.last() else {
            return Ok(true);
        };
        c.prepare_cached(STILL_THERE)
            .and_then(|mut stmt| stmt.exists(params![oldest, session]))
            .map_err(sql("reading history"))
    }
}

fn decode_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<(i64, StoredMessage), StoreError>> {
    let id: i64 = row.get(0)?;
    let turn: i64 = row.get(1)?;
    let body: String = row.get(2)?;
    let tokens: u32 = row.get(3)?;
    Ok(serde_json::from_str(&body)
        .map(|message| {
            (
                id,
                StoredMessage {
                    turn,
                    message,
                    tokens,
                },
            )
        })
        .map_err(StoreError::from))
}

/// The session's rows with ids strictly between `after` and `before`, newest first.
fn rows_between(
    c: &Connection,
    session: &str,
    after: i64,
    before: i64,
) -> Result<Vec<(i64, StoredMessage)>, StoreError> {
    let mut stmt = c
        .prepare_cached(READ_BETWEEN)
        .map_err(sql("reading history"))?;
    let rows = stmt
        .query_map(params![session, after, before], decode_row)
        .map_err(sql("reading history"))?;
    rows.map(|r| r.map_err(sql("reading history")).and_then(|r| r))
        .collect()
}

/// Takes rows (newest first) whole turn by whole turn until `more_needed` says stop.
#[derive(Default)]
struct Taker {
    ids: Vec<i64>,
    messages: Vec<StoredMessage>,
    turn_start: usize,
    stopped: bool,
}

impl Taker {
    /// Takes one row; false once `more_needed` said stop (the row is not taken).
    fn feed(
        &mut self,
        (id, message): (i64, StoredMessage),
        more_needed: &mut impl FnMut(&[StoredMessage]) -> bool,
    ) -> bool {
        if self.stopped {
            return false;
        }
        if self
            .messages
            .last()
            .is_some_and(|last| last.turn != message.turn)
        {
            if !more_needed(&self.messages[self.turn_start..]) {
                self.stopped = true;
                return false;
            }
            self.turn_start = self.messages.len();
        }
        self.ids.push(id);
        self.messages.push(message);
        true
    }

    fn finish(self) -> Recent {
        Recent {
            complete: !self.stopped,
            rows: self.ids.into_iter().zip(self.messages).collect(),
        }
    }
}
