//! Priority for the threads that keep a call's sound flowing. Another program keeping every
//! core busy would otherwise delay them past their deadlines, and each miss is a gap heard.
//!
//! - The device callbacks and the engine's 10 ms tick get real-time scheduling, through
//!   `audio_thread_priority` (Firefox's): `SCHED_FIFO`, granted to root, to a process with
//!   `CAP_SYS_NICE`, or under an `RLIMIT_RTPRIO` limit (the `audio` group's limits.d entry
//!   most distributions ship). With PulseAudio a callback runs on the sound server
//!   client's reactor thread, which moves samples between the server's socket and the
//!   callback, so all the reactor does runs real-time too: work there takes a core from
//!   everything at normal priority, the sound server's own main thread included (the
//!   client zeroed a megabyte per read until `patches/pulseaudio`).
//! - The threads that carry a call's sound but also do work of any length get a raised
//!   nice level, as PulseAudio gives its own main thread: not real-time, but no longer an
//!   equal share beside every busy program. They are the async runtime's (the WebRTC stack
//!   and the peers' tasks, between the engine and the network; also a file's hashing) and
//!   each device stream's (its threads start from there and inherit it). At normal
//!   priority, two debug `confab peer`s under `stress-ng --cpu 4` on two cores had packets
//!   held back for 100-600 ms at a time (stretched, skipped and concealed frames, holes of
//!   silence at the speaker).
//!
//! Where the system denies either, the thread runs as before and one log line says so and
//! how to allow it.

use std::sync::Once;

use crate::SAMPLE_RATE;

static DENIAL_LOGGED: Once = Once::new();
static NICE_DENIAL_LOGGED: Once = Once::new();

/// The raised nice level (PulseAudio's main thread runs at -11).
const RAISED_NICE: i32 = -10;

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

/// Raises the calling thread's nice level (see the module doc); threads it starts from
/// then on inherit it. Returns whether the system allowed it.
pub fn raise_current_thread() -> bool {
    // On Linux, PRIO_PROCESS with no pid is the calling thread alone.
    match rustix::process::setpriority_process(None, RAISED_NICE) {
        Ok(()) => true,
        Err(e) => {
            NICE_DENIAL_LOGGED.call_once(|| {
                tracing::info!(
                    "network and sound server threads run at normal priority, so a busy \
                     machine may delay a call's sound ({e}); allow a raised priority with an \
                     RLIMIT_NICE limit or CAP_SYS_NICE"
                );
            });
            false
        }
    }
}
