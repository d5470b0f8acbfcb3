//! Exponential backoff with jitter for requests to Ollama that failed before any answer arrived.

use std::time::Duration;

use rand::Rng;

/// `base × 2^attempt`, capped at `max`, then spread by ±`jitter` (a fraction) so that many bots
/// restarted together do not hit a recovering Ollama in lock step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
            jitter: 0.25,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(i32::try_from(attempt.min(30)).unwrap_or(30));
        let nominal = (self.base.as_secs_f64() * factor).min(self.max.as_secs_f64());
        let spread = self.jitter.clamp(0.0, 1.0);
        let scale = if spread > 0.0 {
            rand::rng().random_range(1.0 - spread..=1.0 + spread)
        } else {
            1.0
        };
        Duration::from_secs_f64((nominal * scale).max(0.0))
    }
}

/// The server's `Retry-After` (seconds form), if any; Ollama behind a proxy may send it with 429.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps() {
        let b = Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(2),
            jitter: 0.0,
        };
        assert_eq!(b.delay(0), Duration::from_millis(250));
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(3), Duration::from_secs(2));
        assert_eq!(b.delay(40), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let b = Backoff {
            base: Duration::from_millis(1000),
            max: Duration::from_secs(10),
            jitter: 0.25,
        };
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(0)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(750) && *d <= Duration::from_millis(1250))
        );
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "jitter must spread delays"
        );
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("3"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
