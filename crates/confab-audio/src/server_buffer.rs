//! How much of a speaker's sound the sound server holds: the size of each request it makes,
//! of which it keeps two (cpal asks PulseAudio for a target of two requests). Small while
//! the machine keeps up, since it is delay; grown when the server ran dry, which no margin
//! on our side can prevent, since the samples waiting in our ring are no use to a server
//! that stopped asking for them (a busy machine, or a virtual one whose host takes its CPU
//! away for 100 ms at a time). Growing opens the stream again, which is a gap of its own and
//! delay from then on, so a lone click of a few milliseconds does not grow it: only a
//! frame's worth of silence within a few seconds does. Given back a step after a long quiet
//! spell. Time is passed in.

use std::time::{Duration, Instant};

/// The request sizes a stream may run at: the first is where every stream starts.
const STEPS_MS: [u32; 5] = [5, 10, 20, 40, 60];
/// A gap between requests this many requests long ran the server's two dry, with half a
/// request to spare for the jitter of its timer.
const DRY_AFTER_REQUESTS: f64 = 2.5;
/// How long the server must go without running dry before its buffer shrinks a step.
const SHRINK_AFTER: Duration = Duration::from_secs(30);
/// The silence that grows the buffer: a frame's worth...
const SILENCE_TO_GROW: Duration = Duration::from_millis(20);
/// ...within this long.
const SILENCE_WINDOW: Duration = Duration::from_secs(10);

/// The silence of the gaps since the first of them, and the longest gap.
#[derive(Debug, Clone, Copy)]
struct DrySpell {
    first: Instant,
    silence: Duration,
    longest_gap: Duration,
}

/// The request size of one playback stream, when it last ran dry, and the silence lately.
#[derive(Debug, Clone)]
pub(crate) struct ServerBuffer {
    step: usize,
    since: Instant,
    spell: Option<DrySpell>,
}

impl ServerBuffer {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            step: 0,
            since: now,
            spell: None,
        }
    }

    /// The request size a stream opened now should ask for.
    pub(crate) fn request_ms(&self) -> u32 {
        STEPS_MS[self.step]
    }

    /// Whether the callbacks of a stream asking for `request_ms` stopped long enough
    /// (`gap`) for the server to have run out of what it held.
    pub(crate) fn ran_dry(request_ms: u32, gap: Duration) -> bool {
        gap.as_secs_f64() * 1000.0 > f64::from(request_ms) * DRY_AFTER_REQUESTS
    }

    /// The server ran dry for want of `gap`. Once the gaps of the last few seconds add up
    /// to a frame of silence: the request size whose two cover the longest of them (as far
    /// as the steps go), when that is more than now. `None` otherwise.
    pub(crate) fn grow_for(&mut self, gap: Duration, now: Instant) -> Option<u32> {
        self.since = now;
        let held = Duration::from_millis(u64::from(self.request_ms()) * 2);
        let silence = gap.saturating_sub(held);
        let spell = match self.spell {
            Some(spell) if now.duration_since(spell.first) <= SILENCE_WINDOW => DrySpell {
                silence: spell.silence + silence,
                longest_gap: spell.longest_gap.max(gap),
                ..spell
            },
            _ => DrySpell {
                first: now,
                silence,
                longest_gap: gap,
            },
        };
        if spell.silence < SILENCE_TO_GROW {
            self.spell = Some(spell);
            return None;
        }
        self.spell = None;
        let needed_ms = spell.longest_gap.as_secs_f64() * 1000.0 / 2.0;
        let step = STEPS_MS
            .iter()
            .position(|&ms| f64::from(ms) >= needed_ms)
            .unwrap_or(STEPS_MS.len() - 1);
        (step > self.step).then(|| {
            self.step = step;
            self.request_ms()
        })
    }

    /// A step smaller, once the server has not run dry for a long while.
    pub(crate) fn shrink(&mut self, now: Instant) -> Option<u32> {
        if self.step == 0 || now.duration_since(self.since) < SHRINK_AFTER {
            return None;
        }
        self.step -= 1;
        self.since = now;
        Some(self.request_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_gap_longer_than_two_requests_and_a_half_ran_the_server_dry() {
        assert!(!ServerBuffer::ran_dry(5, ms(12)));
        assert!(ServerBuffer::ran_dry(5, ms(13)));
        assert!(!ServerBuffer::ran_dry(60, ms(150)));
        assert!(ServerBuffer::ran_dry(60, ms(151)));
    }

    #[test]
    fn a_long_gap_grows_the_buffer_at_once_to_cover_it_and_no_further_than_the_last_step() {
        let start = Instant::now();
        let mut buffer = ServerBuffer::new(start);
        assert_eq!(buffer.request_ms(), 5);
        // A host that took the CPU for 100 ms: two requests of 60 ms cover it.
        assert_eq!(buffer.grow_for(ms(101), start), Some(60));
        assert_eq!(buffer.grow_for(ms(130), start), None, "already covered");
        assert_eq!(
            buffer.grow_for(ms(900), start),
            None,
            "no step beyond the last"
        );
        assert_eq!(buffer.request_ms(), 60);
    }

    #[test]
    fn short_gaps_grow_the_buffer_only_once_they_add_up_to_a_frame_of_silence() {
        let start = Instant::now();
        let mut buffer = ServerBuffer::new(start);
        // 13 ms against the 10 ms held: 3 ms of silence each.
        for i in 0..6 {
            assert_eq!(buffer.grow_for(ms(13), start + ms(i * 1_000)), None);
        }
        assert_eq!(buffer.grow_for(ms(13), start + ms(6_000)), Some(10));
        // Spread further apart than the window, they never add up.
        let mut buffer = ServerBuffer::new(start);
        for i in 0..20 {
            assert_eq!(buffer.grow_for(ms(21), start + ms(i * 11_000)), None);
        }
        // Two close together do, and the longest decides the size.
        assert_eq!(buffer.grow_for(ms(21), start + ms(300_000)), None);
        assert_eq!(buffer.grow_for(ms(35), start + ms(301_000)), Some(20));
    }

    #[test]
    fn a_long_quiet_spell_gives_back_one_step_at_a_time() {
        let start = Instant::now();
        let mut buffer = ServerBuffer::new(start);
        assert_eq!(
            buffer.shrink(start + ms(60_000)),
            None,
            "the first step is the least"
        );
        buffer.grow_for(ms(70), start);
        assert_eq!(buffer.request_ms(), 40);
        assert_eq!(buffer.shrink(start + ms(29_000)), None);
        assert_eq!(buffer.shrink(start + ms(30_000)), Some(20));
        assert_eq!(
            buffer.shrink(start + ms(31_000)),
            None,
            "a new spell starts"
        );
        // Running dry again restarts the spell.
        assert_eq!(buffer.grow_for(ms(20), start + ms(50_000)), None);
        assert_eq!(buffer.shrink(start + ms(79_000)), None);
        assert_eq!(buffer.shrink(start + ms(80_000)), Some(10));
    }
}
