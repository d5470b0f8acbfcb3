//! Discord-style rate-limit buckets: a fixed window per route class and major parameter (channel,
//! webhook), a global per-second limit, `X-RateLimit-*` headers on every answer and 429s with
//! `retry_after` when a client goes over. Tests can also force 429s.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `limit` requests per `window`, per bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub limit: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    remaining: u32,
    reset_at: Instant,
}

/// Rate-limit headers of one answer.
#[derive(Debug, Clone)]
pub(crate) struct Headers {
    pub limit: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    pub bucket: String,
}

impl Headers {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let reset_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + self.reset_after;
        vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            (
                "x-ratelimit-reset",
                format!("{:.3}", reset_at.as_secs_f64()),
            ),
            (
                "x-ratelimit-reset-after",
                format!("{:.3}", self.reset_after.as_secs_f64()),
            ),
            ("x-ratelimit-bucket", self.bucket.clone()),
        ]
    }
}

pub(crate) enum Verdict {
    Allowed(Headers),
    Limited {
        headers: Option<Headers>,
        retry_after: Duration,
        global: bool,
        forced: bool,
    },
}

/// A forced 429 waiting for the next request of its route class.
#[derive(Debug, Clone, Copy)]
struct Forced {
    retry_after: Duration,
    global: bool,
}

#[derive(Debug)]
pub(crate) struct Buckets {
    rules: BTreeMap<&'static str, Limit>,
    windows: BTreeMap<String, Window>,
    global_limit: Limit,
    global: Option<Window>,
    forced: BTreeMap<&'static str, VecDeque<Forced>>,
}

impl Buckets {
    pub(crate) fn new(rules: BTreeMap<&'static str, Limit>, global_limit: Limit) -> Self {
        Self {
            rules,
            windows: BTreeMap::new(),
            global_limit,
            global: None,
            forced: BTreeMap::new(),
        }
    }

    pub(crate) fn set_rule(&mut self, route: &'static str, limit: Limit) {
        self.rules.insert(route, limit);
        self.windows
            .retain(|k, _| !k.starts_with(&format!("{route}:")));
    }

    pub(crate) fn force(
        &mut self,
        route: &'static str,
        count: u32,
        retry_after: Duration,
        global: bool,
    ) {
        let q = self.forced.entry(route).or_default();
        for _ in 0..count {
            q.push_back(Forced {
                retry_after,
                global,
            });
        }
    }

    /// Counts one request of `route` on `major` (a channel id, a webhook token, ...) and says
    /// whether it may pass. Routes without a rule pass unlimited (but still count globally).
    pub(crate) fn check(&mut self, route: &'static str, major: &str, now: Instant) -> Verdict {
        if let Some(f) = self.forced.get_mut(route).and_then(VecDeque::pop_front) {
            return Verdict::Limited {
                headers: None,
                retry_after: f.retry_after,
                global: f.global,
                forced: true,
            };
        }
        // Global limit first: Discord counts every request against it.
        let g = self.global.get_or_insert(Window {
            remaining: self.global_limit.limit,
            reset_at: now + self.global_limit.window,
        });
        if now >= g.reset_at {
            *g = Window {
                remaining: self.global_limit.limit,
                reset_at: now + self.global_limit.window,
            };
        }
        if g.remaining == 0 {
            return Verdict::Limited {
                headers: None,
                retry_after: g.reset_at - now,
                global: true,
                forced: false,
            };
        }
        g.remaining -= 1;

        let Some(rule) = self.rules.get(route).copied() else {
            return Verdict::Allowed(Headers {
                limit: 50,
                remaining: 49,
                reset_after: Duration::from_secs(1),
                bucket: bucket_hash(route),
            });
        };
        let key = format!("{route}:{major}");
        let w = self.windows.entry(key).or_insert(Window {
            remaining: rule.limit,
            reset_at: now + rule.window,
        });
        if now >= w.reset_at {
            *w = Window {
                remaining: rule.limit,
                reset_at: now + rule.window,
            };
        }
        let headers = |remaining: u32, w: &Window| Headers {
            limit: rule.limit,
            remaining,
            reset_after: w.reset_at.saturating_duration_since(now),
            bucket: bucket_hash(route),
        };
        if w.remaining == 0 {
            let h = headers(0, w);
            return Verdict::Limited {
                retry_after: h.reset_after,
                headers: Some(h),
                global: false,
                forced: false,
            };
        }
        w.remaining -= 1;
        Verdict::Allowed(headers(w.remaining, w))
    }
}

/// Discord's bucket ids are opaque hashes shared by every major parameter of a route.
fn bucket_hash(route: &str) -> String {
    // FNV-1a: stable and dependency-free.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in route.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets() -> Buckets {
        let mut rules = BTreeMap::new();
        rules.insert("create_message", Limit::new(2, Duration::from_secs(5)));
        Buckets::new(rules, Limit::new(50, Duration::from_secs(1)))
    }

    #[test]
    fn window_per_major_parameter() {
        let mut b = buckets();
        let t = Instant::now();
        assert!(matches!(
            b.check("create_message", "1", t),
            Verdict::Allowed(Headers { remaining: 1, .. })
        ));
        assert!(matches!(
            b.check("create_message", "1", t),
            Verdict::Allowed(Headers { remaining: 0, .. })
        ));
        assert!(matches!(
            b.check("create_message", "1", t),
            Verdict::Limited {
                forced: false,
                global: false,
                ..
            }
        ));
        // Another channel has its own window.
        assert!(matches!(
            b.check("create_message", "2", t),
            Verdict::Allowed(_)
        ));
        // After the window resets, requests pass again.
        assert!(matches!(
            b.check("create_message", "1", t + Duration::from_secs(5)),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn forced_limits_come_first_and_run_out() {
        let mut b = buckets();
        b.force("typing", 1, Duration::from_millis(300), false);
        let t = Instant::now();
        assert!(matches!(
            b.check("typing", "1", t),
            Verdict::Limited { forced: true, .. }
        ));
        assert!(matches!(b.check("typing", "1", t), Verdict::Allowed(_)));
    }

    #[test]
    fn global_limit() {
        let mut b = Buckets::new(BTreeMap::new(), Limit::new(3, Duration::from_secs(1)));
        let t = Instant::now();
        for _ in 0..3 {
            assert!(matches!(b.check("other", "", t), Verdict::Allowed(_)));
        }
        assert!(matches!(
            b.check("other", "", t),
            Verdict::Limited { global: true, .. }
        ));
    }
}
