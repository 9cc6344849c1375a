//! What Confab's tests and benchmarks share, so each is written once.
//!
//! - [`loopback_pair`]: two peer connections built as the mesh builds them, negotiated by
//!   hand on loopback, for what a raw channel or track carries.
//! - [`netns`]: a network namespace of one's own, loopback only, whose nftables rules
//!   shape what arrives (random UDP loss, a port or an address cut off); deleted when
//!   dropped.
//! - [`coturn`]: Debian's coturn on a free loopback port with one long-term user, killed
//!   when dropped.
//! - [`cpu_hogs`]: busy loops on every core, as a parallel build keeps a machine busy.
//! - [`turn_client`]: a TURN client over UDP, as a relay meets one.

pub mod coturn;
pub mod cpu_hogs;
pub mod loopback_pair;
pub mod netns;
pub mod turn_client;
