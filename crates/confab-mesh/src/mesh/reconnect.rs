//! The signaling link's reconnect as plain data: when to join, when to try again and
//! when to give up. No IO, and no clock or randomness but what the caller passes in, so
//! the rules are tested in microseconds with simulated time.
//!
//! A first join that fails is an error for the user to see (a wrong address, a refused
//! password). Once joined, a lost link or a failed rejoin is tried again after a pause
//! that doubles from a quarter second to ten seconds, with ±20 % jitter so that a room
//! full of peers does not hammer a restarted server in step.

use std::time::Duration;

// The mesh task's clock, which tests can pause.
use tokio::time::Instant;

/// Reconnect delays: from a quarter second, doubling, to ten seconds at most.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Joining { attempt: u32 },
    Up,
    Waiting { until: Instant, attempt: u32 },
}

/// What follows a failed join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterFailure {
    /// Stop: the failure is the user's to see.
    GiveUp,
    /// Join again after this pause.
    RetryIn(Duration),
}

#[derive(Debug)]
pub(super) struct Reconnect {
    phase: Phase,
}

impl Reconnect {
    pub(super) fn new() -> Self {
        Self { phase: Phase::Idle }
    }

    /// Neither joined nor trying to be.
    pub(super) fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// A join starts: the first, or the retry whose time has come.
    pub(super) fn joining(&mut self) {
        let attempt = match self.phase {
            Phase::Waiting { attempt, .. } => attempt,
            _ => 0,
        };
        self.phase = Phase::Joining { attempt };
    }

    pub(super) fn joined(&mut self) {
        self.phase = Phase::Up;
    }

    /// A join failed. `refused`: the server said no (a password, a full room), which
    /// trying again will not change. `rejoining`: this peer was in the room before.
    /// `jitter` is uniform in [0, 1).
    pub(super) fn join_failed(
        &mut self,
        now: Instant,
        refused: bool,
        rejoining: bool,
        jitter: f64,
    ) -> AfterFailure {
        let attempt = match self.phase {
            Phase::Joining { attempt } => attempt,
            _ => 0,
        };
        if refused || !rejoining {
            self.phase = Phase::Idle;
            return AfterFailure::GiveUp;
        }
        let delay = backoff(attempt, jitter);
        self.phase = Phase::Waiting {
            until: now + delay,
            attempt: attempt + 1,
        };
        AfterFailure::RetryIn(delay)
    }

    /// The joined link broke: rejoin at once (a server restart is the usual cause, and
    /// the grace period for a resume is running).
    pub(super) fn lost(&mut self, now: Instant) {
        self.phase = Phase::Waiting {
            until: now,
            attempt: 0,
        };
    }

    /// When [`Reconnect::handle_timeout`] has something to do next.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Time passed: whether a join should start now.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> bool {
        matches!(self.phase, Phase::Waiting { until, .. } if now >= until)
    }

    /// Left or disconnected: nothing more is tried.
    pub(super) fn stop(&mut self) {
        self.phase = Phase::Idle;
    }
}

/// The pause before retry `attempt` (0 first), for `jitter` uniform in [0, 1).
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_MAX);
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_from_a_quarter_second_to_ten_within_the_jitter() {
        let bounds: Vec<(Duration, Duration)> = [0, 1, 2, 5, 6, 30]
            .iter()
            .map(|&a| (backoff(a, 0.0), backoff(a, 0.999_999)))
            .collect();
        assert_eq!(bounds[0].0, ms(200));
        assert!(bounds[0].1 <= ms(300));
        assert_eq!(bounds[1].0, ms(400));
        assert_eq!(bounds[2].0, ms(800));
        assert_eq!(bounds[4].0, Duration::from_secs(8), "10 s cap at attempt 6");
        assert_eq!(bounds[5].0, Duration::from_secs(8));
        assert!(bounds[5].1 <= Duration::from_secs(12));
    }

    #[test]
    fn a_failed_first_join_or_a_refusal_gives_up() {
        let t = Instant::now();
        let mut link = Reconnect::new();
        link.joining();
        assert_eq!(link.join_failed(t, false, false, 0.5), AfterFailure::GiveUp);
        assert!(link.is_idle());
        link.joining();
        assert_eq!(link.join_failed(t, true, true, 0.5), AfterFailure::GiveUp);
        assert!(link.is_idle());
        assert_eq!(link.poll_timeout(), None);
    }

    #[test]
    fn a_lost_link_rejoins_at_once_then_backs_off_until_it_is_back() {
        let t = Instant::now();
        let mut link = Reconnect::new();
        link.joining();
        link.joined();
        link.lost(t);
        assert_eq!(link.poll_timeout(), Some(t));
        assert!(link.handle_timeout(t));

        // The server is still down: each failed rejoin waits twice as long.
        let mut now = t;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            link.joining();
            let AfterFailure::RetryIn(pause) = link.join_failed(now, false, true, 0.0) else {
                panic!("a rejoin gives up");
            };
            assert!(
                !link.handle_timeout(now + pause - ms(1)),
                "not before its time"
            );
            now += pause;
            assert!(link.handle_timeout(now));
            pauses.push(pause.as_millis());
        }
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 6400, 8000, 8000]);

        // Back: the next loss starts from the shortest pause again.
        link.joining();
        link.joined();
        assert_eq!(link.poll_timeout(), None);
        link.lost(now);
        link.joining();
        assert_eq!(
            link.join_failed(now, false, true, 0.0),
            AfterFailure::RetryIn(ms(200))
        );
    }

    #[test]
    fn stopping_ends_the_retries() {
        let t = Instant::now();
        let mut link = Reconnect::new();
        link.joining();
        link.joined();
        link.lost(t);
        link.stop();
        assert!(link.is_idle());
        assert!(!link.handle_timeout(t + Duration::from_secs(60)));
    }
}
