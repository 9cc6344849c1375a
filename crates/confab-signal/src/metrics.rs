//! Counters for `/metrics`, in the Prometheus text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use confab_proto::ErrorCode;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) frames_relayed: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
}

impl Metrics {
    pub(crate) fn count_error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// The exposition text; `rooms` and `peers` come from the registry.
    pub(crate) fn render(&self, rooms: usize, peers: usize) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "confab_connections",
            "gauge",
            "Open TCP connections.",
            self.connections_open.load(Relaxed),
        );
        metric(
            "confab_connections_total",
            "counter",
            "TCP connections accepted since start.",
            self.connections_total.load(Relaxed),
        );
        metric("confab_rooms", "gauge", "Rooms with members.", rooms as u64);
        metric(
            "confab_peers",
            "gauge",
            "Members of rooms, including those in their resume grace period.",
            peers as u64,
        );
        metric(
            "confab_frames_relayed_total",
            "counter",
            "Signal frames relayed between peers.",
            self.frames_relayed.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP confab_errors_total Error frames sent to clients, by code.\n# TYPE confab_errors_total counter"
        );
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "confab_errors_total{{code=\"{code}\"}} {}",
                count.load(Relaxed)
            );
        }
        out
    }
}
