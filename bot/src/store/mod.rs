//! Persistence in SQLite (WAL): conversation history by session, each session's model choice,
//! small per-scope settings (trigger words, access lists, personas, guild models) and which
//! session each bot message on Discord belongs to (reply links), with retention.
//!
//! Every write that reads first (a turn's number) starts `IMMEDIATE`: two processes on one file
//! (`run` and `chat` on the default `ollama-mcp.db`) then wait for each other within the busy
//! timeout, instead of one failing with SQLITE_BUSY when its read turns into a write.
//!
//! A turn is written in one transaction when it completes, so a restart or `kill -9` loses no
//! completed turn. `synchronous = NORMAL` with WAL survives a process crash (not a power loss),
//! which is the trade-off most chat bots make for a fast commit.
//!
//! Most calls run on tokio's blocking pool. The few small statements of every turn (a session's
//! model, its latest history, the turn's write, reply links) run on the caller's thread instead
//! when nothing makes them wait ([`Store::quick`]): their four trips to a blocking thread and
//! back were an eighth of a Discord message's CPU (docs/BENCHMARKS.md, Discord → Session 17).
//! A commit in WAL mode with `synchronous = NORMAL` does not sync, so the one slow step left is
//! the log's checkpoint, which therefore runs on the blocking pool ([`Store::wrote`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::Connection;

use crate::llm::ChatMessage;

mod history;
mod retention;
mod settings;
#[cfg(test)]
mod tests;

pub use retention::Retention;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "opening the conversation store {path}: {source}; check store.path and that its folder is writable"
    )]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("conversation store {step}: {source}")]
    Sql {
        step: &'static str,
        source: rusqlite::Error,
    },
    #[error("conversation store: a stored message is unreadable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("conversation store: background task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// SQLite would have had to wait for another connection's lock.
    fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Sql {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        )
    }
}

pub(crate) fn sql(step: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { step, source }
}

/// A message as stored, with its token estimate (calibrated by Ollama's counts).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub turn: i64,
    pub message: ChatMessage,
    pub tokens: u32,
}

/// The store; cheap to clone. Calls never hold the lock across an await.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Per session, the rows the last history read returned (see `history::Recent`).
    recent: Arc<Mutex<HashMap<String, history::Recent>>>,
    /// Quick writes so far (wrapping): every [`CHECKPOINT_EVERY`]th checkpoints the log.
    writes: Arc<AtomicU32>,
}

/// How long a call on the blocking pool waits for another process's lock (`run` and `chat` on one
/// file) before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes between two checkpoints of the log: about SQLite's own default of every 1000 pages, as
/// a turn's write or a reply link adds about four pages to the log.
const CHECKPOINT_EVERY: u32 = 250;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    turn INTEGER NOT NULL,
    body TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages(session, id);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    model TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages(created_at);
CREATE TABLE IF NOT EXISTS reply_links (
    message INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reply_links_by_age ON reply_links(created_at);
CREATE INDEX IF NOT EXISTS reply_links_by_session ON reply_links(session);
-- Reply links were settings rows once: move them (idempotent; nothing to move afterwards).
BEGIN IMMEDIATE;
INSERT OR IGNORE INTO reply_links (message, session, created_at)
    SELECT CAST(key AS INTEGER), value, CAST(strftime('%s', 'now') AS INTEGER)
    FROM settings WHERE scope = 'discord:replies';
DELETE FROM settings WHERE scope = 'discord:replies';
COMMIT;
"#;

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database at `path`; ":memory:" for a throwaway store.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_string(),
            source,
        };
        let conn = if path == ":memory:" {
            Connection::open_in_memory().map_err(open_err)?
        } else {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                // A missing folder is the usual first-run problem; create it rather than fail.
                let _ = std::fs::create_dir_all(dir);
            }
            Connection::open(path).map_err(open_err)?
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        if path != ":memory:" {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        // Quick calls must never wait on the caller's thread: SQLite's own checkpoint would (it
        // syncs), and so would a busy wait for another process's lock. `with` sets the timeout
        // for its calls; checkpoints run from `wrote`.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(open_err)?;
        conn.busy_timeout(Duration::ZERO).map_err(open_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            recent: Arc::default(),
            writes: Arc::default(),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), nor the history cache (it is only ever replaced whole), so a poisoned lock is
        // still usable.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the cached history reads (after this process deleted messages).
    fn forget_recent(&self) {
        Self::lock(&self.recent).clear();
    }

    /// Runs `f` on the blocking pool, waiting up to [`BUSY_TIMEOUT`] for other processes' locks.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = Self::lock(&conn);
            // Setting the timeout is a field in SQLite's handle, no I/O.
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
            let result = f(&mut conn);
            let _ = conn.busy_timeout(Duration::ZERO);
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f`, a few statements on indexed rows, on the caller's thread when the connection is
    /// free and SQLite need not wait for another process; on the blocking pool (as [`Store::with`])
    /// otherwise. `f` then runs a second time, so each run must start afresh.
    async fn quick<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let here = match self.conn.try_lock() {
            Ok(mut conn) => Some(f(&mut conn)),
            Err(TryLockError::Poisoned(p)) => Some(f(&mut p.into_inner())),
            // Held by a call on the blocking pool (a prune, a checkpoint): not worth waiting for.
            Err(TryLockError::WouldBlock) => None,
        };
        match here {
            Some(Err(e)) if e.is_busy() => self.with(f).await,
            Some(result) => result,
            None => self.with(f).await,
        }
    }

    /// Counts a quick write; every [`CHECKPOINT_EVERY`] of them, checkpoints the log on the
    /// blocking pool (PASSIVE, as SQLite's automatic one: it never waits for readers).
    fn wrote(&self) {
        let written = self.writes.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if !written.is_multiple_of(CHECKPOINT_EVERY) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let result = store
                .with(|c| {
                    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        .map_err(sql("checkpointing the log"))
                })
                .await;
            if let Err(e) = result {
                // The next checkpoint tries again; a checkpoint that could not run loses nothing.
                tracing::warn!(error = %e, "checkpointing the conversation store's log failed");
            }
        });
    }
}
