//! The relay's counters, rendered in the Prometheus text format beside the signaling
//! server's own in `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why the relay refused a request or dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A username that is malformed, expired, or over its peer's allocation quota was
    /// refused before its request was checked.
    Credentials,
    /// The relay holds as many allocations as it may.
    Capacity,
    /// A datagram to or from an address the relay does not reach (policy.rs).
    PeerAddress,
    /// A datagram over its allocation's bandwidth.
    Bandwidth,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::Credentials,
        Refusal::Capacity,
        Refusal::PeerAddress,
        Refusal::Bandwidth,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::Credentials => "credentials",
            Refusal::Capacity => "capacity",
            Refusal::PeerAddress => "peer-address",
            Refusal::Bandwidth => "bandwidth",
        }
    }
}

/// Counters shared by the relay's sockets.
#[derive(Debug, Default)]
pub struct RelayMetrics {
    pub(crate) allocations_open: AtomicU64,
    pub(crate) allocations_total: AtomicU64,
    pub(crate) bytes_to_peers: AtomicU64,
    pub(crate) bytes_from_peers: AtomicU64,
    refusals: [AtomicU64; 4],
}

impl RelayMetrics {
    pub(crate) fn refuse(&self, why: Refusal) {
        self.refusals[why as usize].fetch_add(1, Relaxed);
    }

    /// How many times the relay refused for `why`.
    pub fn refusals(&self, why: Refusal) -> u64 {
        self.refusals[why as usize].load(Relaxed)
    }

    /// Allocations open right now.
    pub fn allocations_open(&self) -> u64 {
        self.allocations_open.load(Relaxed)
    }

    /// Bytes relayed to peers and from them, since the relay started.
    pub fn relayed_bytes(&self) -> (u64, u64) {
        (
            self.bytes_to_peers.load(Relaxed),
            self.bytes_from_peers.load(Relaxed),
        )
    }

    /// Appends the counters to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let open = self.allocations_open();
        let total = self.allocations_total.load(Relaxed);
        let (to_peers, from_peers) = self.relayed_bytes();
        let _ = write!(
            out,
            "# HELP confab_relay_allocations TURN allocations open now.\n\
             # TYPE confab_relay_allocations gauge\n\
             confab_relay_allocations {open}\n\
             # HELP confab_relay_allocations_total TURN allocations made.\n\
             # TYPE confab_relay_allocations_total counter\n\
             confab_relay_allocations_total {total}\n\
             # HELP confab_relay_bytes_total Bytes relayed, by direction.\n\
             # TYPE confab_relay_bytes_total counter\n\
             confab_relay_bytes_total{{direction=\"to_peers\"}} {to_peers}\n\
             confab_relay_bytes_total{{direction=\"from_peers\"}} {from_peers}\n\
             # HELP confab_relay_refusals_total Requests refused and datagrams dropped, by reason.\n\
             # TYPE confab_relay_refusals_total counter\n"
        );
        for why in Refusal::ALL {
            let _ = writeln!(
                out,
                "confab_relay_refusals_total{{reason=\"{}\"}} {}",
                why.label(),
                self.refusals(why)
            );
        }
    }
}
