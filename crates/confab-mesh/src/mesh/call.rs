//! Call control's effects: the mesh hands `CallControl` (call_control.rs) the user's call
//! commands and the peers' call messages, and carries out what it answers: messages on
//! chat channels, events, and voice in the engine and the peer tasks.

use std::collections::BTreeSet;

use confab_proto::PeerMessage;

use super::MeshTask;
use crate::api::Event;
use crate::call_control::Action;
use crate::peer::PeerInput;

impl MeshTask {
    fn own_id(&self) -> String {
        self.session
            .as_ref()
            .and_then(|s| s.id.clone())
            .unwrap_or_default()
    }

    /// `call`: invite `peers`, or everyone whose channel is open.
    pub(super) fn start_call(&mut self, peers: Option<Vec<String>>) {
        let open: BTreeSet<String> = self
            .peers
            .keys()
            .filter(|id| self.outbox.is_open(id))
            .cloned()
            .collect();
        let me = self.own_id();
        let actions = self.calls.start(&me, peers, &open, super::new_message_id());
        self.carry_out(actions);
    }

    pub(super) fn on_call_message(&mut self, from: String, message: PeerMessage) {
        let me = self.own_id();
        let actions = self.calls.on_message(&me, &from, message);
        self.carry_out(actions);
    }

    /// Tells a member of the call how much of its voice was lost here lately.
    pub(super) fn report_voice_loss(&mut self, peer: &str, percent: u8) {
        let actions = self.calls.report_loss(peer, percent);
        self.carry_out(actions);
    }

    /// `accept-call`.
    pub(super) fn accept_call(&mut self, call: String) {
        let me = self.own_id();
        let actions = self.calls.accept(&me, &call);
        self.carry_out(actions);
    }

    /// `decline-call`.
    pub(super) fn decline_call(&mut self, call: String) {
        let actions = self.calls.decline(&call);
        self.carry_out(actions);
    }

    /// A member left the call (ended, declined, or gone from the mesh).
    pub(super) fn leave_call_of(&mut self, peer: &str) {
        let actions = self.calls.leave_of(peer);
        self.carry_out(actions);
    }

    /// `hangup`.
    pub(super) fn hang_up(&mut self) {
        let me = self.own_id();
        let actions = self.calls.hang_up(&me);
        self.carry_out(actions);
    }

    /// `mute`.
    pub(super) fn mute(&mut self, muted: bool) {
        let me = self.own_id();
        let actions = self.calls.mute(&me, muted);
        self.carry_out(actions);
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { peer, message } => {
                    self.send_to(&peer, PeerInput::Send(message.to_json()));
                }
                Action::State { call, peer, state } => {
                    self.emit(Event::CallState { call, peer, state });
                }
                Action::Incoming {
                    call,
                    from,
                    members,
                } => self.emit(Event::CallIncoming {
                    call,
                    from,
                    members,
                }),
                Action::StartVoice(peer) => {
                    self.engine.set_sending(true);
                    let packets = self.engine.packets_for(&peer);
                    self.send_to(&peer, PeerInput::StartAudio { packets });
                }
                Action::StopVoice(peer) => {
                    self.send_to(&peer, PeerInput::StopAudio);
                    self.engine.forget(&peer);
                }
                Action::Hush(peer) => self.engine.hush(&peer),
                Action::Muted { peer, muted } => self.emit(Event::Muted { peer, muted }),
                Action::ReportedLoss { peer, percent } => {
                    self.engine.set_reported_loss(&peer, percent);
                    self.send_to(&peer, PeerInput::VoiceLoss(percent));
                }
                Action::SetMuted(muted) => self.engine.set_muted(muted),
                Action::Ended => {
                    self.engine.set_sending(false);
                    self.engine.set_muted(false);
                }
                Action::Error {
                    code,
                    message,
                    peer,
                } => self.error(code, message, peer.as_deref()),
            }
        }
    }
}
