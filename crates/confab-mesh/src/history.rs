//! A room's history, passed on between peers: a latecomer gets what was said before it
//! came from whoever holds it, and peers that were apart get each other's messages.
//!
//! - [`signed`]: every room message carries its author's signature, made with the key of
//!   the DTLS certificate its fingerprint names, so a peer that passes it on cannot forge,
//!   alter or re-date it.
//! - [`reconcile`]: which messages each side lacks, found by comparing summaries of
//!   ranges and splitting only those that differ (cheap when nothing is missing).
//!
//! The exchange on a chat channel is driven by `mesh/history.rs`; docs/protocol.md
//! describes its messages.

pub(crate) mod reconcile;
pub(crate) mod signed;
