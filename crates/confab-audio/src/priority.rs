//! Real-time scheduling for the threads that keep a call's sound flowing: the device
//! callbacks and the engine's 20 ms tick. Another program keeping every core busy would
//! otherwise delay them past the sound server's deadlines, and each miss is a gap heard.
//!
//! Through `audio_thread_priority` (Firefox's): `SCHED_FIFO`, granted to root, to a process
//! with `CAP_SYS_NICE`, or under an `RLIMIT_RTPRIO` limit (the `audio` group's limits.d
//! entry most distributions ship). Where it is denied, the thread runs as before and one
//! log line says so and how to allow it.

use std::sync::Once;

use crate::SAMPLE_RATE;

static DENIAL_LOGGED: Once = Once::new();

/// Moves the calling thread to real-time scheduling, for work done in pieces of
/// `buffer_frames` at 48 kHz. Returns whether the system allowed it.
pub fn promote_current_thread(what: &str, buffer_frames: u32) -> bool {
    match audio_thread_priority::promote_current_thread_to_real_time(buffer_frames, SAMPLE_RATE) {
        // The handle serves only to demote, which we never do: the thread ends with the
        // stream it serves.
        Ok(_) => {
            tracing::debug!("{what} runs at real-time priority");
            true
        }
        Err(e) => {
            DENIAL_LOGGED.call_once(|| {
                tracing::warn!(
                    "sound threads run at normal priority, so a busy machine may make gaps \
                     in calls ({e}); allow real-time scheduling with an RLIMIT_RTPRIO limit \
                     (e.g. membership of the `audio` group) or CAP_SYS_NICE"
                );
            });
            false
        }
    }
}
