//! What the benchmarks share.
//!
//! - [`loopback_pair`]: two peer connections built as the mesh builds them, negotiated by
//!   hand on loopback, for measuring what a raw channel or track carries.
//! - [`netns`]: a network namespace of a bench's own where nftables drops a share of
//!   arriving UDP, deleted when the bench ends.
//! - [`peers`]: finding the `confab` binary beside a bench, and waiting for a peer's event.

pub mod loopback_pair;
pub mod netns;
pub mod peers;
