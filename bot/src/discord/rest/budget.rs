//! Discord's global limit: 50 requests a second per bot over all routes (interaction callbacks
//! and webhooks with an interaction token do not count). The budget spends at most 40 a second
//! with bursts of 5, so that no one-second window holds more than 45 and the few requests
//! serenity makes itself (gateway, command registration) still fit; edits of streamed
//! replies and typing indicators may use only half of it, so that under pressure new replies
//! still go out at once and each streamed reply is simply edited less often.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

const PER_SECOND: NonZeroU32 = NonZeroU32::MIN.saturating_add(39);
const BURST: NonZeroU32 = NonZeroU32::MIN.saturating_add(4);
const EDITS_PER_SECOND: NonZeroU32 = NonZeroU32::MIN.saturating_add(19);
const EDIT_BURST: NonZeroU32 = NonZeroU32::MIN.saturating_add(4);

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// A new message, a read, anything someone waits for: as early as the budget allows.
    First,
    /// An edit of a posted message or a typing indicator: from the edits' share only.
    Edit,
}

/// A place in the budget, taken before the request's body is final (so that a streamed reply
/// sends the newest text once its turn comes).
#[derive(Debug)]
pub struct Paid(());

pub struct Budget {
    all: DefaultDirectRateLimiter,
    edits: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            all: RateLimiter::direct(Quota::per_second(PER_SECOND).allow_burst(BURST)),
            edits: RateLimiter::direct(Quota::per_second(EDITS_PER_SECOND).allow_burst(EDIT_BURST)),
            clock: DefaultClock::default(),
        }
    }
}

impl Budget {
    /// Waits for a place in the budget.
    pub async fn pay(&self, spend: Spend) -> Paid {
        if spend == Spend::Edit {
            self.wait(&self.edits).await;
        }
        self.wait(&self.all).await;
        Paid(())
    }

    async fn wait(&self, limiter: &DefaultDirectRateLimiter) {
        while let Err(not_until) = limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Spent as fast as it allows, the budget never puts more than 45 requests in a second.
    #[tokio::test]
    async fn no_second_holds_more_than_fifty() {
        let budget = Budget::default();
        let started = Instant::now();
        let mut at = Vec::new();
        while started.elapsed() < Duration::from_millis(2500) {
            budget.pay(Spend::First).await;
            at.push(Instant::now());
        }
        let busiest = at
            .iter()
            .map(|t| {
                at.iter()
                    .filter(|u| **u >= *t && **u < *t + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert!((40..=45).contains(&busiest), "{busiest}");
    }

    #[tokio::test]
    async fn edits_leave_room_for_new_messages() {
        let budget = Budget::default();
        let started = Instant::now();
        let mut edits = 0;
        while started.elapsed() < Duration::from_millis(1000) {
            budget.pay(Spend::Edit).await;
            edits += 1;
        }
        assert!(edits <= 26, "{edits} edits in a second");
        // New messages still go out without waiting for the edits' share.
        let t = Instant::now();
        for _ in 0..5 {
            budget.pay(Spend::First).await;
        }
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }
}
