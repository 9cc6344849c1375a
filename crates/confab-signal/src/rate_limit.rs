//! A token bucket: `rate` tokens a second, holding at most `capacity`. Time is passed in.

use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, capacity: f64, now: Instant) -> Self {
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_up_to_capacity_then_refills_at_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 200.0, start);
        assert_eq!((0..300).filter(|_| bucket.try_take(start)).count(), 200);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..300).filter(|_| bucket.try_take(later)).count(), 50);
    }

    #[test]
    fn a_client_within_rate_and_burst_is_never_limited() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 200.0, start);
        // A burst of 200, then a steady 100 a second for ten seconds.
        assert!((0..200).all(|_| bucket.try_take(start)));
        for i in 1..=1000u64 {
            assert!(bucket.try_take(start + Duration::from_millis(i * 10)));
        }
    }
}
