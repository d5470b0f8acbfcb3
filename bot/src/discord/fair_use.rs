//! Fair use: a per-user rate limit (governor, GCRA), a per-guild cap on concurrent turns, a
//! bound on turns waiting or running across the bot so that a flood cannot exhaust memory, and
//! one turn at a time per conversation.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::RateLimitConfig;
use crate::metrics::metrics;

/// `messages` per `per_seconds` per user, with bursts up to `messages`.
pub struct UserLimiter {
    limiter: DefaultKeyedRateLimiter<u64>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl UserLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        let messages = NonZeroU32::new(config.messages).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(config.per_seconds.max(1)) / messages.get();
        let quota = Quota::with_period(period.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_second(messages))
            .allow_burst(messages);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one message of `user`; `Err(wait)` when over the limit, with the time until the next
    /// message is allowed.
    pub fn check(&self, user: u64) -> Result<(), Duration> {
        // Forget users who have been quiet long enough to be back at a full burst.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&user)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Per-guild concurrency and the global bound on pending turns.
pub struct Gate {
    per_guild: usize,
    max_pending: usize,
    guilds: Mutex<HashMap<u64, Arc<Semaphore>>>,
    pending: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
}

/// A place among the pending turns; freed on drop.
pub struct Ticket {
    pending: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(per_guild: usize, max_pending: usize) -> Self {
        Self {
            per_guild: per_guild.max(1),
            max_pending: max_pending.max(1),
            guilds: Mutex::new(HashMap::new()),
            pending: Arc::new(AtomicUsize::new(0)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes a place among the pending turns, or `None` when `max_queue` are already pending.
    pub fn enter(&self) -> Option<Ticket> {
        let mut current = self.pending.load(Ordering::Acquire);
        loop {
            if current >= self.max_pending {
                return None;
            }
            match self.pending.compare_exchange(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Ticket {
                        pending: self.pending.clone(),
                    });
                }
                Err(now) => current = now,
            }
        }
    }

    /// Waits for one of the guild's concurrent slots (`guild` 0 = direct messages). The slot is
    /// held until the permit drops. (`None` only if the semaphore were closed, which never happens.)
    pub async fn slot(&self, _ticket: &Ticket, guild: u64) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut guilds = self.guilds.lock().unwrap_or_else(|p| p.into_inner());
            guilds
                .entry(guild)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_guild)))
                .clone()
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        metrics()
            .queue_depth
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        let permit = semaphore.acquire_owned().await;
        let waiting = self.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics()
            .queue_depth
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        permit.ok()
    }

    /// Turns waiting for a guild slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Turns waiting or running.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub fn max_pending(&self) -> usize {
        self.max_pending
    }
}

/// One turn at a time per conversation (a thread is shared: two people may ask at once). A
/// second turn waits for the first, up to a bound.
pub struct SessionLocks {
    wait: Duration,
    locks: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl SessionLocks {
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `session` to be free and holds it until the permit drops; `None` when another
    /// turn held it for longer than the wait.
    pub async fn lock(&self, session: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() > 1024 {
                // Only holders and waiters keep a clone: the others are idle conversations.
                locks.retain(|_, s| Arc::strong_count(s) > 1);
            }
            locks
                .entry(session.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        tokio::time::timeout(self.wait, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// "12 s", "1 min 5 s": a retry-after for people.
pub fn human_wait(d: Duration) -> String {
    let secs = d.as_secs_f64().ceil() as u64;
    let secs = secs.max(1);
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_wait() {
        let l = UserLimiter::new(&RateLimitConfig {
            messages: 2,
            per_seconds: 60,
            max_concurrent_per_guild: 1,
        });
        assert!(l.check(1).is_ok());
        assert!(l.check(1).is_ok());
        let wait = l.check(1).expect_err("third message is over the limit");
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(l.check(2).is_ok(), "other users are not affected");
    }

    #[test]
    fn pending_is_bounded() {
        let g = Gate::new(1, 2);
        let a = g.enter().expect("first");
        let _b = g.enter().expect("second");
        assert!(g.enter().is_none());
        drop(a);
        assert!(g.enter().is_some());
    }

    #[tokio::test]
    async fn one_slot_per_guild_at_a_time() {
        let g = Arc::new(Gate::new(1, 10));
        let t1 = g.enter().expect("ticket");
        let first = g.slot(&t1, 7).await;
        let g2 = g.clone();
        let waiter = tokio::spawn(async move {
            let t2 = g2.enter().expect("ticket");
            let _p = g2.slot(&t2, 7).await;
        });
        // Another guild is not blocked.
        let t3 = g.enter().expect("ticket");
        let _other = g.slot(&t3, 8).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while g.waiting() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the second turn should wait"
            );
            tokio::task::yield_now().await;
        }
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("runs after the first")
            .expect("no panic");
        assert_eq!(g.waiting(), 0);
    }

    #[tokio::test]
    async fn one_turn_per_session_and_the_wait_is_bounded() {
        let locks = Arc::new(SessionLocks::new(Duration::from_millis(300)));
        let first = locks.lock("s").await.expect("free");
        let _other = locks
            .lock("t")
            .await
            .expect("another session is not blocked");
        let started = std::time::Instant::now();
        assert!(locks.lock("s").await.is_none(), "held longer than the wait");
        assert!(started.elapsed() >= Duration::from_millis(300));
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move { l2.lock("s").await.is_some() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert!(
            waiter.await.expect("no panic"),
            "runs once the first is done"
        );
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(human_wait(Duration::from_millis(200)), "1 s");
        assert_eq!(human_wait(Duration::from_secs(65)), "1 min 5 s");
    }
}
