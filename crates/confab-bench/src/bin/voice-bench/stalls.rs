//! Stalls of the whole machine while a figure is measured. A real-time thread sleeps 1 ms at
//! a time and notes each wake-up that comes 50 ms or more late. Busy programs at normal
//! priority cannot delay it so; a host that takes a virtual machine's CPU away can (the
//! two-vCPU VM Confab is developed on does, for about 100 ms at a time, whenever both its
//! cores are busy). A figure measured across such stalls says as much about the host as
//! about Confab.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_audio::{SAMPLE_RATE, priority};

/// A wake-up this late is a stall.
const STALL: Duration = Duration::from_millis(50);
const NAP: Duration = Duration::from_millis(1);

/// What a watch saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stalls {
    pub count: u32,
    pub longest: Duration,
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.count {
            0 => f.write_str("no host stall"),
            n => write!(
                f,
                "{n} host stalls of {} ms or more, the longest {:.0} ms",
                STALL.as_millis(),
                self.longest.as_secs_f64() * 1000.0
            ),
        }
    }
}

/// Watches until stopped.
pub struct StallWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Stalls>,
}

impl StallWatch {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            // Its budget: one nap's worth of samples.
            priority::promote_current_thread("the bench's stall watch", SAMPLE_RATE / 1000);
            let mut stalls = Stalls::default();
            while !stopped.load(Ordering::Relaxed) {
                let before = Instant::now();
                std::thread::sleep(NAP);
                let late = before.elapsed().saturating_sub(NAP);
                if late >= STALL {
                    stalls.count += 1;
                    stalls.longest = stalls.longest.max(late);
                }
            }
            stalls
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
