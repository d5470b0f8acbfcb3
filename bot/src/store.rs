//! Persistence in SQLite (WAL): conversation history by session, each session's model choice,
//! and small per-scope settings (trigger words, access lists, personas, guild models).
//!
//! A turn is written in one transaction when it completes, so a restart or `kill -9` loses no
//! completed turn. `synchronous = NORMAL` with WAL survives a process crash (not a power loss),
//! which is the trade-off most chat bots make for a fast commit.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};

use crate::llm::ChatMessage;
use crate::metrics::metrics;

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

fn sql(step: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { step, source }
}

/// A message as stored, with its token estimate (calibrated by Ollama's counts).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub turn: i64,
    pub message: ChatMessage,
    pub tokens: u32,
}

/// The store; cheap to clone. Calls run on the blocking pool, never holding the lock across an await.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

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
"#;

fn now_secs() -> i64 {
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
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        if path != ":memory:" {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut Self::lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

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
                let tx = c.transaction().map_err(sql("starting the turn write"))?;
                let turn: i64 = tx
                    .query_row(
                        // Turns grow with ids: the newest row's turn, found through the index
                        // (MAX(turn) would scan the whole session).
                        "SELECT turn FROM messages WHERE session = ?1 ORDER BY id DESC LIMIT 1",
                        params![session],
                        |r| r.get::<_, i64>(0),
                    )
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
                tx.execute(
                    "INSERT INTO sessions (session, updated_at) VALUES (?1, ?2)
                     ON CONFLICT(session) DO UPDATE SET updated_at = excluded.updated_at",
                    params![session, now],
                )
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
            c.query_row(
                "SELECT model FROM sessions WHERE session = ?1",
                params![session],
                |r| r.get::<_, Option<String>>(0),
            )
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

    pub async fn get_setting(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| {
            c.query_row(
                "SELECT value FROM settings WHERE scope = ?1 AND key = ?2",
                params![scope, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("reading a setting"))
        })
        .await
    }

    pub async fn set_setting(&self, scope: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let (scope, key, value) = (scope.to_string(), key.to_string(), value.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT INTO settings (scope, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value",
                params![scope, key, value],
            )
            .map_err(sql("saving a setting"))?;
            Ok(())
        })
        .await
    }

    /// Removes a setting; true if it existed.
    pub async fn delete_setting(&self, scope: &str, key: &str) -> Result<bool, StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM settings WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                )
                .map_err(sql("removing a setting"))?;
            Ok(n > 0)
        })
        .await
    }

    /// Every (key, value) of a scope, ordered by key.
    pub async fn list_settings(&self, scope: &str) -> Result<Vec<(String, String)>, StoreError> {
        let scope = scope.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT key, value FROM settings WHERE scope = ?1 ORDER BY key")
                .map_err(sql("listing settings"))?;
            let rows = stmt
                .query_map(params![scope], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql("listing settings"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("listing settings"))
        })
        .await
    }

    /// Reads `keys` of `scope`, lets `f` change their values (`None` deletes) and writes them back,
    /// all in one IMMEDIATE transaction, so that concurrent read-modify-writes (two admin commands,
    /// two processes) never lose an update. Returns what `f` returns.
    pub async fn update_settings<T: Send + 'static>(
        &self,
        scope: &str,
        keys: &[&str],
        f: impl FnOnce(&mut [Option<String>]) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let scope = scope.to_string();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql("starting a settings update"))?;
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                values.push(
                    tx.query_row(
                        "SELECT value FROM settings WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                        |r| r.get::<_, String>(0),
                    )
                    .optional()
                    .map_err(sql("reading a setting"))?,
                );
            }
            let out = f(&mut values);
            for (key, value) in keys.iter().zip(&values) {
                match value {
                    Some(v) => tx.execute(
                        "INSERT INTO settings (scope, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value",
                        params![scope, key, v],
                    ),
                    None => tx.execute(
                        "DELETE FROM settings WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                    ),
                }
                .map_err(sql("saving a setting"))?;
            }
            tx.commit().map_err(sql("saving settings"))?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recent_history_stops_where_told_and_keeps_turns_whole() {
        let s = Store::open(":memory:").expect("open");
        for t in 1..=5 {
            s.append_turn(
                "a",
                vec![
                    (ChatMessage::user(format!("q{t}")), 2),
                    (ChatMessage::assistant(format!("a{t}")), 2),
                ],
            )
            .await
            .expect("append");
        }
        s.append_turn("b", vec![(ChatMessage::user("other"), 2)])
            .await
            .expect("append");
        let mut seen = 0;
        let h = s
            .recent_history("a", move |turn| {
                assert_eq!(turn.len(), 2, "a whole turn at a time");
                seen += 1;
                seen < 2
            })
            .await
            .expect("history");
        let texts: Vec<_> = h.iter().map(|m| m.message.content.as_str()).collect();
        assert_eq!(
            texts,
            ["q4", "a4", "q5", "a5"],
            "the two newest turns, oldest first"
        );
        let all: Vec<String> = s
            .recent_history("a", |_| true)
            .await
            .expect("history")
            .into_iter()
            .map(|m| m.message.content)
            .collect();
        let expected: Vec<String> = (1..=5)
            .flat_map(|t| [format!("q{t}"), format!("a{t}")])
            .collect();
        assert_eq!(
            all, expected,
            "never told to stop: everything, oldest first"
        );
        assert!(
            s.recent_history("none", |_| true)
                .await
                .expect("history")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn turns_survive_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/s.db");
        let path = path.to_str().expect("utf8");
        {
            let s = Store::open(path).expect("open");
            s.append_turn(
                "a",
                vec![
                    (ChatMessage::user("hi"), 2),
                    (ChatMessage::assistant("hello"), 3),
                ],
            )
            .await
            .expect("append");
            s.append_turn(
                "a",
                vec![
                    (ChatMessage::user("again"), 2),
                    (ChatMessage::assistant("yes"), 1),
                ],
            )
            .await
            .expect("append");
            s.append_turn("b", vec![(ChatMessage::user("other"), 2)])
                .await
                .expect("append");
            s.set_session_model("a", Some("qwen3"))
                .await
                .expect("model");
        }
        let s = Store::open(path).expect("reopen");
        let h = s.history("a").await.expect("history");
        assert_eq!(h.len(), 4);
        assert_eq!(h[2].message.content, "again");
        assert_eq!((h[0].turn, h[3].turn), (1, 2));
        assert_eq!(h[1].tokens, 3);
        assert_eq!(
            s.session_model("a").await.expect("model").as_deref(),
            Some("qwen3")
        );
        assert_eq!(s.clear_history("a").await.expect("clear"), 4);
        assert!(s.history("a").await.expect("history").is_empty());
        assert_eq!(s.history("b").await.expect("history").len(), 1);
        // The model choice outlives a reset.
        assert_eq!(
            s.session_model("a").await.expect("model").as_deref(),
            Some("qwen3")
        );
    }

    #[tokio::test]
    async fn settings_by_scope() {
        let s = Store::open(":memory:").expect("open");
        s.set_setting("guild:1", "trigger:hey", "1")
            .await
            .expect("set");
        s.set_setting("guild:1", "persona", "pirate")
            .await
            .expect("set");
        s.set_setting("guild:2", "persona", "clerk")
            .await
            .expect("set");
        s.set_setting("guild:1", "persona", "poet")
            .await
            .expect("overwrite");
        assert_eq!(
            s.get_setting("guild:1", "persona")
                .await
                .expect("get")
                .as_deref(),
            Some("poet")
        );
        assert_eq!(s.list_settings("guild:1").await.expect("list").len(), 2);
        assert!(
            s.delete_setting("guild:1", "persona")
                .await
                .expect("delete")
        );
        assert!(
            !s.delete_setting("guild:1", "persona")
                .await
                .expect("delete again")
        );
        assert_eq!(
            s.get_setting("guild:2", "persona")
                .await
                .expect("get")
                .as_deref(),
            Some("clerk")
        );
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let e = Store::open("/proc/definitely/not/here.db")
            .err()
            .expect("must fail");
        assert!(e.to_string().contains("store.path"), "{e}");
    }
}
