//! Perfect negotiation and trickle ICE on one connection: descriptions and candidates
//! in and out, ICE restarts, and what the connection's states mean for the peer.

use confab_proto::{IceCandidate, SdpType, SessionDescription, SignalData};
use tokio::time::Instant;
use webrtc::peer_connection::{
    RTCIceCandidateInit, RTCIceConnectionState, RTCPeerConnectionState, RTCSdpType,
    RTCSessionDescription,
};

use super::{Peer, PeerOutput, RESTART_OFFER_AGAIN};
use crate::api::{Event, LogLevel, PeerState};
use crate::error::ErrorCode;
use crate::negotiation::Step;
use crate::safety::sdp_fingerprint;
use crate::stats;
use crate::transport::FAILED_AFTER;
use crate::voice;

impl Peer {
    pub(super) async fn on_signal(&mut self, data: serde_json::Value) {
        match SignalData::from_value(data) {
            Ok(SignalData::Description { description }) => self.on_description(description).await,
            Ok(SignalData::Candidate { candidate }) => self.on_candidate(candidate).await,
            Err(e) => {
                let message = format!("bad signal: {e}");
                self.log(LogLevel::Warn, message.clone());
                self.emit(Event::error(
                    ErrorCode::BadSignal,
                    message,
                    Some(&self.setup.remote_id),
                ));
            }
        }
    }

    pub(super) async fn on_description(&mut self, description: SessionDescription) {
        let kind = description.kind;
        self.log(
            LogLevel::Debug,
            format!("SDP {} received:\n{}", sdp_kind(kind), description.sdp),
        );
        if kind == SdpType::Answer && !self.negotiation.awaiting_answer() {
            // The answer to a repeat of an offer already answered (see offer_again).
            return self.log(
                LogLevel::Debug,
                "an answer to no outstanding offer: ignored",
            );
        }
        let step = self.negotiation.on_remote(kind);
        let fingerprint = sdp_fingerprint(&description.sdp);
        let sdp_has_audio = voice::sdp_sends_audio(&description.sdp);
        let Step::Apply { rollback, answer } = step else {
            self.log(
                LogLevel::Info,
                "glare: ignoring the colliding offer (impolite side)",
            );
            return;
        };
        if rollback {
            self.log(
                LogLevel::Info,
                "glare: rolling back our offer (polite side)",
            );
            let mut rollback = RTCSessionDescription::default();
            rollback.sdp_type = RTCSdpType::Rollback;
            if let Err(e) = self.pc.set_local_description(rollback).await {
                self.fail_negotiation(format!("rollback failed: {e}"));
                return;
            }
        }
        let remote = match kind {
            SdpType::Offer => RTCSessionDescription::offer(description.sdp),
            SdpType::Answer => RTCSessionDescription::answer(description.sdp),
        };
        let applied = match remote {
            Ok(remote) => self.pc.set_remote_description(remote).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            self.fail_negotiation(format!("remote {} refused: {e}", sdp_kind(kind)));
            return;
        }
        self.negotiation.remote_applied(kind);
        self.has_remote_description = true;
        if let Some(fingerprint) = fingerprint
            && self.remote_fingerprint.as_ref() != Some(&fingerprint)
        {
            self.out(PeerOutput::Identity {
                fingerprint: fingerprint.clone(),
            });
            self.remote_fingerprint = Some(fingerprint);
        }
        for candidate in std::mem::take(&mut self.early_candidates) {
            self.add_candidate(candidate).await;
        }
        if answer {
            self.remote_offered_audio = sdp_has_audio;
            // The polite side adds its own track before answering, so one exchange sets up
            // audio both ways.
            if self.voice_packets.is_some() && self.voice_sender.is_none() {
                self.add_voice_track().await;
            }
            self.answer().await;
        } else if self.negotiation.stable_with_offer_wanted() {
            self.offer().await;
        }
    }

    pub(super) async fn answer(&mut self) {
        let answer = match self.pc.create_answer(None).await {
            Ok(answer) => answer,
            Err(e) => return self.fail_negotiation(format!("cannot create an answer: {e}")),
        };
        if let Err(e) = self.pc.set_local_description(answer.clone()).await {
            return self.fail_negotiation(format!("cannot set our answer: {e}"));
        }
        self.send_description(SdpType::Answer, answer.sdp);
        if self.negotiation.local_answer_set() {
            self.offer().await;
        }
    }

    /// Sends our restart offer again if it is still unanswered (see
    /// [`RESTART_OFFER_AGAIN`]); the remote answers a repeat as any offer.
    pub(super) fn offer_again(&mut self) {
        let unanswered = self.restart_gives_up.is_some() && self.negotiation.awaiting_answer();
        match (&self.last_offer, unanswered) {
            (Some(sdp), true) => {
                self.log(LogLevel::Info, "restart offer unanswered: sending it again");
                self.send_description(SdpType::Offer, sdp.clone());
                self.offer_again_at = Some(Instant::now() + RESTART_OFFER_AGAIN);
            }
            _ => self.offer_again_at = None,
        }
    }

    pub(super) async fn offer(&mut self) {
        if !self.negotiation.may_offer() {
            return;
        }
        let offer = match self.pc.create_offer(None).await {
            Ok(offer) => offer,
            Err(e) => return self.fail_negotiation(format!("cannot create an offer: {e}")),
        };
        if let Err(e) = self.pc.set_local_description(offer.clone()).await {
            return self.fail_negotiation(format!("cannot set our offer: {e}"));
        }
        self.negotiation.local_offer_set();
        self.last_offer = Some(offer.sdp.clone());
        self.send_description(SdpType::Offer, offer.sdp);
    }

    pub(super) fn send_description(&self, kind: SdpType, sdp: String) {
        self.log(
            LogLevel::Debug,
            format!("SDP {} sent:\n{sdp}", sdp_kind(kind)),
        );
        let data = SignalData::Description {
            description: SessionDescription { kind, sdp },
        };
        self.out(PeerOutput::Signal(data.to_value()));
    }

    pub(super) fn fail_negotiation(&self, message: String) {
        self.log(LogLevel::Error, message.clone());
        self.emit(Event::error(
            ErrorCode::Negotiation,
            message,
            Some(&self.setup.remote_id),
        ));
    }

    pub(super) async fn on_candidate(&mut self, candidate: Option<IceCandidate>) {
        let Some(candidate) = candidate.filter(|c| !c.is_end_of_candidates()) else {
            self.log(LogLevel::Debug, "remote end of candidates");
            return;
        };
        if let Some((addr, kind)) = stats::address_and_type(&candidate.candidate) {
            stats::remember_signalled(&mut self.signalled, addr, kind);
        }
        self.log(
            LogLevel::Debug,
            format!("remote candidate {}", candidate.candidate),
        );
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate
                .extra
                .get("usernameFragment")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            ..Default::default()
        };
        if self.has_remote_description {
            self.add_candidate(init).await;
        } else {
            // Candidates may overtake the description they belong to: keep them for it.
            self.early_candidates.push(init);
        }
    }

    pub(super) async fn add_candidate(&mut self, init: RTCIceCandidateInit) {
        if let Err(e) = self.pc.add_ice_candidate(init).await
            && !self.negotiation.ignoring_offer()
        {
            self.log(LogLevel::Warn, format!("remote candidate refused: {e}"));
        }
    }

    /// A connection that was up and lost its path (ICE `disconnected`: nothing heard for
    /// 5 s) is restarted: new ICE credentials, and candidates gathered afresh on rebound
    /// sockets (a laptop on another network, a NAT mapping that expired), with DTLS and
    /// SCTP kept, so chat, transfers and a call carry on over the new path. Both sides
    /// restart and offer, since either may be the one whose network changed; perfect
    /// negotiation settles the two offers. If no path comes back by the time the connection
    /// would have failed without a restart, it fails, and the mesh tries a fresh
    /// connection (mesh/retry.rs).
    pub(super) async fn on_ice_state(&mut self, state: RTCIceConnectionState) {
        self.log(LogLevel::Info, format!("ICE connection {state}"));
        match state {
            RTCIceConnectionState::Disconnected if self.set_up => {
                self.log(LogLevel::Info, "path lost: restarting ICE");
                if let Err(e) = self.pc.restart_ice().await {
                    return self.log(LogLevel::Warn, format!("cannot restart ICE: {e}"));
                }
                // A restart resets the library's silence timers; the connection must still
                // fail when it would have without one (a killed peer, no path at all), so
                // the mesh cleans up and tries afresh on time.
                self.restart_gives_up
                    .get_or_insert(Instant::now() + FAILED_AFTER);
                self.offer().await;
                self.offer_again_at = Some(Instant::now() + RESTART_OFFER_AGAIN);
            }
            RTCIceConnectionState::Connected if self.restart_gives_up.is_some() => {
                self.restart_gives_up = None;
                self.offer_again_at = None;
                self.log(LogLevel::Info, "ICE restart found a path");
                self.log_selected_pair().await;
            }
            _ => {}
        }
    }

    pub(super) async fn on_state(&mut self, state: RTCPeerConnectionState) -> bool {
        self.log(LogLevel::Info, format!("connection {state}"));
        let state = match state {
            RTCPeerConnectionState::New => PeerState::New,
            RTCPeerConnectionState::Connecting => PeerState::Connecting,
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => return false,
        };
        self.emit_state(state);
        if state == PeerState::Connected {
            self.log_selected_pair().await;
        }
        if matches!(state, PeerState::Failed | PeerState::Closed) {
            self.out(PeerOutput::Gone(state));
            return true;
        }
        false
    }
}

pub(super) fn sdp_kind(kind: SdpType) -> &'static str {
    match kind {
        SdpType::Offer => "offer",
        SdpType::Answer => "answer",
    }
}
