//! Call control (PROTOCOL.md sections 2 and 3): invitations, who has joined, and which
//! peers our voice goes to. One call at a time.

use std::collections::BTreeSet;

use confab_proto::PeerMessage;

use super::MeshTask;
use crate::api::{CallState, Event};
use crate::error::ErrorCode;
use crate::peer::PeerInput;

/// The call this peer is in, or is invited to.
#[derive(Debug)]
pub(super) struct Call {
    id: String,
    /// Everyone in or invited to the call, ourselves included.
    members: BTreeSet<String>,
    /// Who has joined (the inviter counts as joined).
    joined: BTreeSet<String>,
    /// Whether we have joined (an invitation not yet answered: false).
    in_call: bool,
}

/// Everyone in `set` but `me`.
fn others(set: &BTreeSet<String>, me: &str) -> Vec<String> {
    set.iter().filter(|m| *m != me).cloned().collect()
}

impl MeshTask {
    fn own_id(&self) -> String {
        self.session
            .as_ref()
            .and_then(|s| s.id.clone())
            .unwrap_or_default()
    }

    /// `call`: invite `peers`, or everyone whose channel is open. In a call already, those
    /// not in it yet are invited into it (a newcomer to the room, say).
    pub(super) fn start_call(&mut self, peers: Option<Vec<String>>) {
        // Calling someone whose call to us is ringing answers it: the two calls would
        // otherwise cross, each side waiting for the other's accept.
        let ringing = self.call.as_ref().filter(|c| {
            !c.in_call
                && peers
                    .as_ref()
                    .is_none_or(|peers| peers.iter().any(|p| c.joined.contains(p)))
        });
        if let Some(ringing) = ringing {
            let id = ringing.id.clone();
            return self.accept_call(id);
        }
        let current = self.call.as_ref().filter(|c| c.in_call);
        let invited: Vec<String> = match peers {
            Some(peers) => peers,
            None => self
                .peers
                .iter()
                .filter(|(_, p)| p.chat_open)
                .map(|(id, _)| id.clone())
                .collect(),
        };
        let invited: Vec<String> = invited
            .into_iter()
            .filter(|id| !current.is_some_and(|c| c.members.contains(id)))
            .collect();
        if current.is_some() && invited.is_empty() {
            return self.error(
                ErrorCode::Busy,
                "everyone named is in the call already",
                None,
            );
        }
        if let Some(missing) = invited
            .iter()
            .find(|id| !self.peers.get(*id).is_some_and(|p| p.chat_open))
        {
            return self.error(
                ErrorCode::NotConnected,
                format!("no open channel to {missing}"),
                Some(missing),
            );
        }
        if invited.is_empty() {
            return self.error(ErrorCode::NotConnected, "nobody to call", None);
        }
        let me = self.own_id();
        let call = match self.call.take().filter(|c| c.in_call) {
            Some(mut call) => {
                call.members.extend(invited.iter().cloned());
                call
            }
            None => Call {
                id: super::new_message_id(),
                members: invited.iter().cloned().chain([me.clone()]).collect(),
                joined: BTreeSet::from([me]),
                in_call: true,
            },
        };
        // The current members: the invited learn whom to expect, and tell each their
        // accept, which is how those already in learn of them.
        let invite = PeerMessage::CallInvite {
            call: call.id.clone(),
            members: call.members.iter().cloned().collect(),
        };
        for peer in &invited {
            self.send_message(peer, &invite);
            self.call_state(call.id.clone(), peer.clone(), CallState::Ringing);
        }
        self.call = Some(call);
    }

    pub(super) fn on_call_message(&mut self, from: String, message: PeerMessage) {
        match message {
            PeerMessage::CallInvite { call, members } => self.on_invite(from, call, members),
            PeerMessage::CallAccept { call } if self.is_current(&call) => self.on_joined(from),
            PeerMessage::CallDecline { call } if self.is_current(&call) => {
                self.call_state(call, from.clone(), CallState::Declined);
                self.leave_call_of(&from);
            }
            PeerMessage::CallEnd { call } if self.is_current(&call) => {
                self.call_state(call, from.clone(), CallState::Ended);
                self.leave_call_of(&from);
            }
            PeerMessage::Mute { call, muted } if self.is_current(&call) => {
                if muted {
                    self.engine.hush(&from);
                }
                self.emit(Event::Muted {
                    peer: Some(from),
                    muted,
                });
            }
            PeerMessage::VoiceLoss { call, percent } if self.is_current(&call) => {
                self.engine.set_reported_loss(&from, percent);
            }
            // A member's accept can overtake the invitation it answers: keep it for then.
            PeerMessage::CallAccept { call } => {
                self.early_accepts.entry(call).or_default().insert(from);
            }
            // About a call we are not in: ignored, as the protocol says for mute.
            _ => {}
        }
    }

    /// Tells a member of the call how much of its voice was lost here lately.
    pub(super) fn report_voice_loss(&self, peer: &str, percent: u8) {
        let Some(call) = self.call.as_ref().filter(|c| c.in_call) else {
            return;
        };
        if call.joined.contains(peer) {
            let message = PeerMessage::VoiceLoss {
                call: call.id.clone(),
                percent,
            };
            self.send_message(peer, &message);
        }
    }

    fn is_current(&self, call: &str) -> bool {
        self.call.as_ref().is_some_and(|c| c.id == call)
    }

    fn on_invite(&mut self, from: String, call: String, members: Vec<String>) {
        let crossed = self.call.as_ref().filter(|c| {
            c.in_call && c.id != call && c.members.contains(&from) && c.joined.len() == 1
        });
        // We called each other at the same moment. Both sides keep the call whose id sorts
        // first: the one holding the other call drops it and joins, which is what its user
        // wanted; the one holding the kept call waits for the accept.
        let join_at_once = match crossed {
            Some(ours) if ours.id < call => return,
            Some(_) => {
                self.withdraw_invitation();
                true
            }
            None => false,
        };
        if self
            .call
            .as_ref()
            .is_some_and(|c| c.in_call && c.id != call)
        {
            // Already in another call: decline, and say why here.
            self.send_message(&from, &PeerMessage::CallDecline { call: call.clone() });
            return self.call_state(call, from, CallState::Busy);
        }
        let mut members: BTreeSet<String> = members.into_iter().collect();
        members.insert(self.own_id());
        members.insert(from.clone());
        let mut joined = self.early_accepts.remove(&call).unwrap_or_default();
        self.early_accepts.clear();
        joined.insert(from.clone());
        self.call = Some(Call {
            id: call.clone(),
            members,
            joined,
            in_call: false,
        });
        self.emit(Event::CallIncoming {
            call: call.clone(),
            from,
        });
        if self.auto_accept_calls || join_at_once {
            self.accept_call(call);
        }
    }

    /// `accept-call`: join, tell every member, and start voice with those already in.
    pub(super) fn accept_call(&mut self, call: String) {
        let me = self.own_id();
        let Some(current) = self.call.as_mut().filter(|c| c.id == call) else {
            return self.error(
                ErrorCode::UnknownCall,
                format!("no invitation to {call}"),
                None,
            );
        };
        current.in_call = true;
        current.joined.insert(me.clone());
        let members = others(&current.members, &me);
        let joined = others(&current.joined, &me);
        let accept = PeerMessage::CallAccept { call: call.clone() };
        for member in &members {
            self.send_message(member, &accept);
        }
        for peer in joined {
            self.call_state(call.clone(), peer.clone(), CallState::Active);
            self.start_voice_with(&peer);
        }
    }

    /// `decline-call`.
    pub(super) fn decline_call(&mut self, call: String) {
        let Some(current) = self.call.take().filter(|c| c.id == call && !c.in_call) else {
            return self.error(
                ErrorCode::UnknownCall,
                format!("no invitation to {call}"),
                None,
            );
        };
        if let Some(inviter) = current.joined.iter().next() {
            self.send_message(inviter, &PeerMessage::CallDecline { call });
        }
    }

    fn on_joined(&mut self, peer: String) {
        let Some(current) = self.call.as_mut() else {
            return;
        };
        current.members.insert(peer.clone());
        if !current.joined.insert(peer.clone()) {
            return;
        }
        let (call, in_call) = (current.id.clone(), current.in_call);
        if in_call {
            // A newcomer invited into a running call counts only its inviter as joined:
            // answer its accept with ours, so that it sets up voice with us too. An accept
            // from someone already counted is ignored, so this never goes back and forth.
            self.send_message(&peer, &PeerMessage::CallAccept { call: call.clone() });
            self.call_state(call, peer.clone(), CallState::Active);
            self.start_voice_with(&peer);
        }
    }

    fn start_voice_with(&mut self, peer: &str) {
        self.engine.set_sending(true);
        let packets = self.engine.packets();
        self.send_to(peer, PeerInput::StartAudio { packets });
    }

    /// A member left the call (ended, declined, or gone from the mesh).
    pub(super) fn leave_call_of(&mut self, peer: &str) {
        let Some(current) = self.call.as_mut() else {
            return;
        };
        let was_member = current.members.remove(peer);
        current.joined.remove(peer);
        let nobody_left = current.members.len() <= 1;
        if was_member {
            self.send_to(peer, PeerInput::StopAudio);
            self.engine.forget(peer);
        }
        if nobody_left {
            self.end_call();
        }
    }

    /// Ends our own call that nobody has joined yet: those still ringing are told. (Not
    /// `hang_up`: no voice to stop, and a mute set before the call stays.)
    fn withdraw_invitation(&mut self) {
        let Some(current) = self.call.take() else {
            return;
        };
        let end = PeerMessage::CallEnd {
            call: current.id.clone(),
        };
        for member in others(&current.members, &self.own_id()) {
            self.send_message(&member, &end);
            self.call_state(current.id.clone(), member, CallState::Ended);
        }
    }

    /// `hangup`: tell every member, stop all voice.
    pub(super) fn hang_up(&mut self) {
        let Some(current) = self.call.as_ref() else {
            return self.error(ErrorCode::NotInCall, "no call to hang up", None);
        };
        let me = self.own_id();
        let end = PeerMessage::CallEnd {
            call: current.id.clone(),
        };
        let members = others(&current.members, &me);
        let call = current.id.clone();
        for member in &members {
            self.send_message(member, &end);
            self.send_to(member, PeerInput::StopAudio);
            self.engine.forget(member);
            self.call_state(call.clone(), member.clone(), CallState::Ended);
        }
        self.end_call();
    }

    fn end_call(&mut self) {
        self.call = None;
        self.engine.set_sending(false);
        self.engine.set_muted(false);
    }

    /// `mute`: stop or resume sending; the members are told.
    pub(super) fn mute(&mut self, muted: bool) {
        self.engine.set_muted(muted);
        if let Some(current) = &self.call {
            let message = PeerMessage::Mute {
                call: current.id.clone(),
                muted,
            };
            let me = self.own_id();
            let members = others(&current.members, &me);
            for member in &members {
                self.send_message(member, &message);
            }
        }
        self.emit(Event::Muted { peer: None, muted });
    }

    fn call_state(&self, call: String, peer: String, state: CallState) {
        self.emit(Event::CallState { call, peer, state });
    }

    fn send_message(&self, peer: &str, message: &PeerMessage) {
        self.send_to(peer, PeerInput::Send(message.to_json()));
    }
}
