//! How much a device ring keeps queued beyond what one request takes: the margin that
//! absorbs the jitter between two clocks (the engine's 10 ms tick and the sound server's
//! requests or deliveries). It grows by a step at each underrun, and only then; it gives a
//! step back after a long run (five watches) in which the spare it kept was never needed.
//! A ring holding more than its margin is not this module's matter: the device's clock is
//! followed (`drift`), which brings the level to its target without a cut. Counts, not
//! time: each request served is one observation.

/// Watches without a need for the margin before it shrinks a step.
const WATCHES_TO_SHRINK: u32 = 5;

/// The least spare seen over a run of requests served.
#[derive(Debug, Clone, Copy)]
struct Watch {
    served: u32,
    least_spare: usize,
}

impl Watch {
    const FRESH: Self = Self {
        served: 0,
        least_spare: usize::MAX,
    };

    fn note(&mut self, spare: usize) {
        self.served += 1;
        self.least_spare = self.least_spare.min(spare);
    }
}

/// The margin of one ring, in samples.
#[derive(Debug, Clone)]
pub(crate) struct Cushion {
    margin: usize,
    floor: usize,
    ceiling: usize,
    step: usize,
    /// Requests in one watch.
    window: u32,
    /// Since the margin last changed: for shrinking it.
    long: Watch,
    underruns: u64,
    /// Requests left to serve before underruns grow the margin: the stream's start.
    starting: u32,
}

impl Cushion {
    /// A margin starting at `floor`, growing by `step` up to `ceiling`, watched over runs of
    /// `window` requests.
    pub(crate) fn new(floor: usize, step: usize, ceiling: usize, window: u32) -> Self {
        Self {
            margin: floor,
            floor,
            ceiling: ceiling.max(floor),
            step: step.max(1),
            window: window.max(1),
            long: Watch::FRESH,
            underruns: 0,
            starting: window.max(1),
        }
    }

    /// What to keep queued beyond one request before serving starts again.
    pub(crate) fn margin(&self) -> usize {
        self.margin
    }

    /// Underruns so far.
    pub(crate) fn underruns(&self) -> u64 {
        self.underruns
    }

    /// A request found less than it needed. In the stream's first watch it is counted but
    /// leaves the margin as it is: a sound server starting a device stalls and then catches
    /// up (an idle PulseAudio null sink for a second or two), which says nothing of the
    /// jitter to come, and a margin grown for it would stay for the shrinking's long runs.
    pub(crate) fn underrun(&mut self) {
        self.underruns += 1;
        if self.starting > 0 {
            return;
        }
        self.margin = (self.margin + self.step).min(self.ceiling);
        self.long = Watch::FRESH;
    }

    /// A request was served in full, leaving `spare` samples queued.
    pub(crate) fn served(&mut self, spare: usize) {
        self.starting = self.starting.saturating_sub(1);
        self.long.note(spare);
        if self.long.served >= self.window * WATCHES_TO_SHRINK {
            // The jitter has not come near the margin for a long while: one step back.
            if self.long.least_spare > self.step && self.margin > self.floor {
                self.margin = self.margin.saturating_sub(self.step).max(self.floor);
            }
            self.long = Watch::FRESH;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u32 = 100;
    /// Requests before the margin may shrink.
    const SHRINK: u32 = WINDOW * WATCHES_TO_SHRINK;

    /// A cushion past its stream's start: a watch served at its margin.
    fn started(floor: usize, step: usize, ceiling: usize) -> Cushion {
        let mut cushion = Cushion::new(floor, step, ceiling, WINDOW);
        for _ in 0..WINDOW {
            cushion.served(floor);
        }
        cushion
    }

    #[test]
    fn gaps_while_a_stream_starts_are_counted_but_grow_nothing() {
        let mut cushion = Cushion::new(240, 240, 2_400, WINDOW);
        for _ in 0..3 {
            cushion.underrun();
        }
        for _ in 0..WINDOW - 1 {
            cushion.served(240);
        }
        cushion.underrun();
        assert_eq!(cushion.margin(), 240);
        assert_eq!(cushion.underruns(), 4);
        cushion.served(240);
        cushion.underrun();
        assert_eq!(
            cushion.margin(),
            480,
            "past the start, a gap grows the margin"
        );
    }

    #[test]
    fn each_underrun_grows_the_margin_a_step_up_to_the_ceiling() {
        let mut cushion = started(240, 240, 1_000);
        assert_eq!(cushion.margin(), 240);
        cushion.underrun();
        assert_eq!(cushion.margin(), 480);
        for _ in 0..5 {
            cushion.underrun();
        }
        assert_eq!(cushion.margin(), 1_000);
        assert_eq!(cushion.underruns(), 6);
    }

    #[test]
    fn a_margin_never_needed_is_given_back_a_step_at_a_time() {
        let mut cushion = started(240, 240, 2_400);
        cushion.underrun();
        cushion.underrun();
        assert_eq!(cushion.margin(), 720);
        for _ in 0..SHRINK - 1 {
            cushion.served(600);
        }
        assert_eq!(cushion.margin(), 720, "not before the whole run");
        cushion.served(600);
        assert_eq!(cushion.margin(), 480);
        for _ in 0..SHRINK * 4 {
            cushion.served(600);
        }
        assert_eq!(cushion.margin(), 240, "never below the floor");
    }

    #[test]
    fn a_margin_the_jitter_used_stays() {
        let mut cushion = started(240, 240, 2_400);
        cushion.underrun();
        for i in 0..SHRINK * 3 {
            // Once in each run the spare came within a step of running dry.
            cushion.served(if i % 400 == 0 { 100 } else { 600 });
        }
        assert_eq!(cushion.margin(), 480);
        assert_eq!(cushion.underruns(), 1);
    }
}
