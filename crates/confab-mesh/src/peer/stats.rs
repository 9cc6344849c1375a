//! `stats` for this peer, and what the selected path is.

use super::Peer;
use crate::api::{Event, LogLevel};
use crate::stats;

impl Peer {
    pub(super) async fn report_stats(&self) {
        let pair = stats::selected_pair(self.pc.as_ref()).await.map(|p| {
            p.with_signalled_types(&self.signalled)
                .through(&self.setup.tunnels)
        });
        self.emit(Event::Stats {
            peer: self.setup.remote_id.clone(),
            rtt_ms: pair.as_ref().map_or(0.0, |p| p.rtt_ms),
            bytes_sent: pair.as_ref().map_or(0, |p| p.bytes_sent),
            bytes_received: pair.as_ref().map_or(0, |p| p.bytes_received),
            candidate_type: pair.as_ref().map_or("host", |p| p.path_type()).to_owned(),
            local_candidate: pair.as_ref().map(|p| p.local.describe()),
            remote_candidate: pair.as_ref().map(|p| p.remote.describe()),
            transport: pair.as_ref().map(|p| p.transport().to_owned()),
        });
    }

    pub(super) async fn log_selected_pair(&self) {
        if let Some(pair) = stats::selected_pair(self.pc.as_ref()).await.map(|p| {
            p.with_signalled_types(&self.signalled)
                .through(&self.setup.tunnels)
        }) {
            self.log(
                LogLevel::Info,
                format!(
                    "selected pair: {} -> {} ({} path over {})",
                    pair.local.describe(),
                    pair.remote.describe(),
                    pair.path_type(),
                    pair.transport()
                ),
            );
        }
    }
}
