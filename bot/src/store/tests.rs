//! The store against a real SQLite file.

use std::time::Duration;

use super::retention::Pruned;
use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// `run` and `chat` on one database file: two connections writing turns at once must both
/// succeed (a deferred transaction fails with SQLITE_BUSY when its read becomes a write).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_on_one_file_both_succeed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("shared.db");
    let path = path.to_str().expect("utf8").to_string();
    let a = Store::open(&path).expect("open a");
    let b = Store::open(&path).expect("open b");
    let mut writers = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        writers.push(tokio::spawn(async move {
            for t in 0..60 {
                store
                    .append_turn(
                        "shared",
                        vec![
                            (ChatMessage::user(format!("w{i} q{t}")), 2),
                            (ChatMessage::assistant(format!("w{i} a{t}")), 2),
                        ],
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for w in writers {
        w.await
            .expect("writer task")
            .expect("every turn is written");
    }
    let s = Store::open(&path).expect("reopen");
    let h = s.history("shared").await.expect("history");
    assert_eq!(h.len(), 4 * 60 * 2);
    let turns: std::collections::BTreeSet<i64> = h.iter().map(|m| m.turn).collect();
    assert_eq!(turns.len(), 4 * 60, "each turn has its own number");
}

#[tokio::test]
async fn reply_links_have_their_own_table_and_age_out() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    let path = path.to_str().expect("utf8");
    {
        // A store written before reply links had a table: they were settings rows.
        let s = Store::open(path).expect("open");
        s.set_setting("discord:replies", "1234", "guild:1:user:2")
            .await
            .expect("old row");
    }
    let s = Store::open(path).expect("reopen migrates");
    assert_eq!(
        s.reply_session(1234).await.expect("read").as_deref(),
        Some("guild:1:user:2")
    );
    assert!(
        s.list_settings("discord:replies")
            .await
            .expect("list")
            .is_empty()
    );
    s.link_reply(99, "dm:7").await.expect("link");
    let keep = Retention {
        max_age: None,
        max_turns_per_session: None,
        reply_link_max_age: Duration::from_secs(3600),
    };
    assert_eq!(s.prune(keep).await.expect("prune").reply_links, 0);
    s.with(|c| {
        c.execute(
            "UPDATE reply_links SET created_at = created_at - 7200 WHERE message = 99",
            [],
        )
        .map_err(sql("ageing"))
    })
    .await
    .expect("age a link");
    assert_eq!(s.prune(keep).await.expect("prune").reply_links, 1);
    assert_eq!(s.reply_session(99).await.expect("read"), None);
    assert!(s.reply_session(1234).await.expect("read").is_some());
}

#[tokio::test]
async fn retention_keeps_the_latest_turns_and_forget_deletes_everything() {
    let s = Store::open(":memory:").expect("open");
    for t in 1..=5 {
        s.append_turn("a", vec![(ChatMessage::user(format!("q{t}")), 2)])
            .await
            .expect("append");
    }
    s.append_turn("b", vec![(ChatMessage::user("b1"), 2)])
        .await
        .expect("append");
    s.set_session_model("a", Some("qwen3"))
        .await
        .expect("model");
    s.link_reply(5, "a").await.expect("link");
    let off = Retention {
        max_age: None,
        max_turns_per_session: None,
        reply_link_max_age: Duration::from_secs(86_400),
    };
    assert_eq!(s.prune(off).await.expect("prune"), Pruned::default());
    let two = Retention {
        max_turns_per_session: Some(2),
        ..off
    };
    assert_eq!(s.prune(two).await.expect("prune").messages, 3);
    let left: Vec<_> = s
        .history("a")
        .await
        .expect("history")
        .into_iter()
        .map(|m| m.message.content)
        .collect();
    assert_eq!(left, ["q4", "q5"]);
    assert_eq!(s.history("b").await.expect("history").len(), 1);
    // Old turns go by age too.
    s.with(|c| {
        c.execute(
            "UPDATE messages SET created_at = created_at - 10 * 86400 WHERE session = 'b'",
            [],
        )
        .map_err(sql("ageing"))
    })
    .await
    .expect("age b");
    let week = Retention {
        max_age: Some(Duration::from_secs(7 * 86_400)),
        ..off
    };
    assert_eq!(s.prune(week).await.expect("prune").messages, 1);
    assert!(s.history("b").await.expect("history").is_empty());

    assert_eq!(s.forget_session("a").await.expect("forget"), 2);
    assert!(s.history("a").await.expect("history").is_empty());
    assert_eq!(s.session_model("a").await.expect("model"), None);
    assert_eq!(s.reply_session(5).await.expect("link"), None);
}

mod kept_history {
    //! The kept rows of the last history read must never change what a read returns.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A turn of this many messages, written by the store that reads (`true`) or by another
        /// process on the same file.
        Append(usize, bool),
        /// A read that stops once the turns seen so far cost more than this many tokens.
        Read(u64),
        Clear(bool),
        /// Retention in another process: only this many latest turns stay.
        Prune(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1usize..5, any::<bool>()).prop_map(|(n, ours)| Op::Append(n, ours)),
            6 => (0u64..60).prop_map(Op::Read),
            1 => any::<bool>().prop_map(Op::Clear),
            1 => (1u32..6).prop_map(Op::Prune),
        ]
    }

    fn cut(limit: u64) -> impl FnMut(&[StoredMessage]) -> bool + Clone + Send + 'static {
        let mut spent = 0u64;
        move |turn| {
            spent += turn.iter().map(|m| u64::from(m.tokens)).sum::<u64>();
            spent <= limit
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn reads_with_kept_rows_equal_fresh_reads(ops in prop::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("h.db").display().to_string();
                let ours = Store::open(&path).expect("open");
                let other = Store::open(&path).expect("open other");
                let mut n = 0;
                for op in ops {
                    match op {
                        Op::Append(len, by_us) => {
                            n += 1;
                            let messages = (0..len)
                                .map(|i| (ChatMessage::user(format!("m{n}.{i}")), (n * 7 + i) as u32 % 9 + 1))
                                .collect();
                            let store = if by_us { &ours } else { &other };
                            store.append_turn("s", messages).await.expect("append");
                        }
                        Op::Read(limit) => {
                            let kept = ours.recent_history("s", cut(limit)).await.expect("read");
                            let fresh = Store::open(&path)
                                .expect("open fresh")
                                .recent_history("s", cut(limit))
                                .await
                                .expect("fresh read");
                            assert_eq!(kept, fresh, "limit {limit}");
                        }
                        Op::Clear(by_us) => {
                            let store = if by_us { &ours } else { &other };
                            store.clear_history("s").await.expect("clear");
                        }
                        Op::Prune(turns) => {
                            other
                                .prune(retention::Retention {
                                    max_age: None,
                                    max_turns_per_session: Some(turns),
                                    reply_link_max_age: Duration::from_secs(86_400),
                                })
                                .await
                                .expect("prune");
                        }
                    }
                }
            });
        }
    }
}

/// What a turn asks of the store, over many sessions as a bot in many channels does: every
/// statement is prepared once and then only run (a statement prepared again on every call was a
/// third of the store's work per turn, docs/BENCHMARKS.md).
#[tokio::test]
async fn turn_statements_are_prepared_once() {
    use super::history::{
        INSERT_MESSAGE, LAST_TURN, READ_BETWEEN, READ_OLDER, SESSION_MODEL, STILL_THERE,
        TOUCH_SESSION,
    };
    use super::retention::{LINK_REPLY, REPLY_SESSION};
    use rusqlite::StatementStatus;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let s = Store::open(path.to_str().expect("utf-8")).expect("open");
    for i in 0..30u64 {
        let session = format!("discord:channel:{}:user:{i}", i % 5);
        s.session_model(&session).await.expect("model");
        s.recent_history(&session, |_| true).await.expect("history");
        s.append_turn(
            &session,
            vec![
                (ChatMessage::user(format!("q{i}")), 2),
                (ChatMessage::assistant(format!("a{i}")), 2),
            ],
        )
        .await
        .expect("append");
        s.link_reply(1000 + i, &session).await.expect("link");
        s.reply_session(1000 + i).await.expect("reply session");
        // The same session again: the rows kept from the last read, and those written since.
        s.recent_history(&session, |_| true).await.expect("history");
    }
    // Rows older than the kept ones: a read that asks further back than the last one did.
    s.recent_history("discord:channel:0:user:0", |_| false)
        .await
        .expect("history");
    s.recent_history("discord:channel:0:user:0", |_| true)
        .await
        .expect("history");

    let c = Store::lock(&s.conn);
    for statement in [
        LAST_TURN,
        INSERT_MESSAGE,
        TOUCH_SESSION,
        SESSION_MODEL,
        READ_OLDER,
        READ_BETWEEN,
        STILL_THERE,
        LINK_REPLY,
        REPLY_SESSION,
    ] {
        let cached = c.prepare_cached(statement).expect("prepare");
        let runs = cached.get_status(StatementStatus::Run);
        let again = cached.get_status(StatementStatus::RePrepare);
        assert!(runs > 0, "not run from the statement cache: {statement}");
        assert_eq!(
            again, 0,
            "prepared again {again} times in {runs} runs: {statement}"
        );
        drop(cached);
        // And each finds its rows through an index, never by scanning a table.
        let mut explain = c
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .expect("explain");
        let params: Vec<rusqlite::types::Value> = (0..explain.parameter_count())
            .map(|_| rusqlite::types::Value::Integer(1))
            .collect();
        let plan: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{statement}: {plan:?}"
        );
    }
}

/// The small statements of a turn run on the caller's thread (trips to a blocking thread and back
/// were an eighth of a Discord message's CPU); when another process holds the write lock they wait
/// on the blocking pool instead, so the runtime's thread keeps running meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn turn_calls_run_here_unless_they_would_wait() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("shared.db");
    let path = path.to_str().expect("utf8").to_string();
    let s = Store::open(&path).expect("open");
    let here = std::thread::current().id();
    let ran_on = s
        .quick(|_| Ok(std::thread::current().id()))
        .await
        .expect("quick");
    assert_eq!(
        ran_on, here,
        "an uncontended quick call runs on the caller's thread"
    );
    let ran_on = s
        .with(|_| Ok(std::thread::current().id()))
        .await
        .expect("with");
    assert_ne!(ran_on, here, "other calls run on the blocking pool");

    // Another process (a raw connection on its own thread) holds the write lock for 300 ms.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let other = std::thread::spawn({
        let path = path.clone();
        move || {
            let c = rusqlite::Connection::open(&path).expect("open other");
            c.execute_batch("BEGIN IMMEDIATE").expect("lock");
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(300));
            c.execute_batch("COMMIT").expect("unlock");
        }
    });
    locked_rx.recv().expect("locked");
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    s.append_turn("waits", vec![(ChatMessage::user("q"), 1)])
        .await
        .expect("the write waits for the lock, then succeeds");
    ticker.abort();
    other.join().expect("other thread");
    assert!(
        ticks.load(Ordering::Relaxed) >= 5,
        "the runtime's only thread kept running while the write waited ({} ticks)",
        ticks.load(Ordering::Relaxed)
    );
    assert_eq!(s.history("waits").await.expect("history").len(), 1);
}

/// SQLite's automatic checkpoint (which syncs) is off, since it would run on the caller's thread:
/// the store checkpoints the log itself, on the blocking pool, so the log stays bounded.
#[tokio::test(flavor = "current_thread")]
async fn the_log_is_checkpointed_and_stays_bounded() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log.db");
    let s = Store::open(path.to_str().expect("utf8")).expect("open");
    let wal = dir.path().join("log.db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let write = |i: u64| {
        let s = s.clone();
        async move {
            s.append_turn(
                &format!("s{}", i % 7),
                vec![(ChatMessage::user(format!("q{i}")), 1)],
            )
            .await
            .expect("append");
            s.link_reply(i, &format!("s{}", i % 7)).await.expect("link");
            // Lets the checkpoint task run when one is due.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let per_round = u64::from(CHECKPOINT_EVERY) / 2;
    for i in 0..per_round / 2 {
        write(i).await;
    }
    let quarter = wal_size();
    assert!(quarter > 0, "the writes went to the log");
    for i in per_round / 2..per_round * 8 {
        write(i).await;
    }
    let after = wal_size();
    // Without checkpoints the log would hold all 16 quarters' pages.
    assert!(
        after < quarter * 8,
        "the log grew from {quarter} to {after} bytes: it is not being checkpointed"
    );
}
