//! How much a device ring keeps queued beyond what one request takes: the margin that
//! absorbs the jitter between two clocks (the engine's 20 ms tick and the sound server's
//! requests or deliveries). It grows by a step at each underrun, and only then; it gives a
//! step back after a long run in which the spare it kept was never needed. Counts, not time:
//! each request served is one observation.

/// Requests served with spare above one step, in a row, before the margin shrinks by a step
/// (about ten seconds at 20 ms requests).
const CLEAN_REQUESTS_TO_SHRINK: u32 = 500;

/// The margin of one ring, in samples.
#[derive(Debug, Clone)]
pub(crate) struct Cushion {
    margin: usize,
    floor: usize,
    ceiling: usize,
    step: usize,
    /// Requests served since the last change, and the least spare seen over them.
    clean: u32,
    least_spare: usize,
    underruns: u64,
}

impl Cushion {
    /// A margin starting at `floor`, growing by `step` up to `ceiling`.
    pub(crate) fn new(floor: usize, step: usize, ceiling: usize) -> Self {
        Self {
            margin: floor,
            floor,
            ceiling: ceiling.max(floor),
            step: step.max(1),
            clean: 0,
            least_spare: usize::MAX,
            underruns: 0,
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

    /// A request found less than it needed.
    pub(crate) fn underrun(&mut self) {
        self.underruns += 1;
        self.margin = (self.margin + self.step).min(self.ceiling);
        self.restart_watch();
    }

    /// A request was served in full, leaving `spare` samples queued.
    pub(crate) fn served(&mut self, spare: usize) {
        self.least_spare = self.least_spare.min(spare);
        self.clean += 1;
        if self.clean < CLEAN_REQUESTS_TO_SHRINK {
            return;
        }
        // The jitter has not come near the margin for a long while: one step back.
        if self.least_spare > self.step && self.margin > self.floor {
            self.margin = self.margin.saturating_sub(self.step).max(self.floor);
        }
        self.restart_watch();
    }

    fn restart_watch(&mut self) {
        self.clean = 0;
        self.least_spare = usize::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_underrun_grows_the_margin_a_step_up_to_the_ceiling() {
        let mut cushion = Cushion::new(240, 240, 1_000);
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
        let mut cushion = Cushion::new(240, 240, 2_400);
        cushion.underrun();
        cushion.underrun();
        assert_eq!(cushion.margin(), 720);
        for _ in 0..CLEAN_REQUESTS_TO_SHRINK - 1 {
            cushion.served(600);
        }
        assert_eq!(cushion.margin(), 720, "not before the whole run");
        cushion.served(600);
        assert_eq!(cushion.margin(), 480);
        for _ in 0..CLEAN_REQUESTS_TO_SHRINK * 4 {
            cushion.served(600);
        }
        assert_eq!(cushion.margin(), 240, "never below the floor");
    }

    #[test]
    fn a_margin_the_jitter_used_stays() {
        let mut cushion = Cushion::new(240, 240, 2_400);
        cushion.underrun();
        for i in 0..CLEAN_REQUESTS_TO_SHRINK * 3 {
            // Once in each run the spare came within a step of running dry.
            cushion.served(if i % 400 == 0 { 100 } else { 600 });
        }
        assert_eq!(cushion.margin(), 480);
        assert_eq!(cushion.underruns(), 1);
    }
}
