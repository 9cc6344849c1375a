//! Call control (PROTOCOL.md sections 2 and 3) as plain data: invitations, who has joined,
//! and which peers our voice goes to. One call at a time.
//!
//! No IO: each input (a command, a peer's message, a peer gone) returns the [`Action`]s
//! that follow, in order, and the mesh carries them out. So crossing calls, ringing and
//! newcomers are tested here in microseconds, two or three of these passing messages.

use std::collections::{BTreeSet, HashMap};

use confab_proto::PeerMessage;

use crate::api::CallState;
use crate::error::ErrorCode;

/// What follows from an input, for the mesh to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Send {
        peer: String,
        message: PeerMessage,
    },
    /// A `call-state` event.
    State {
        call: String,
        peer: String,
        state: CallState,
    },
    /// A `call-incoming` event; `members` are the others in or invited to the call
    /// besides its inviter.
    Incoming {
        call: String,
        from: String,
        members: Vec<String>,
    },
    /// Our voice starts going to `peer`, and its voice is played.
    StartVoice(String),
    /// Voice with `peer` stops both ways.
    StopVoice(String),
    /// `peer` muted itself: what is still buffered of it goes unheard.
    Hush(String),
    /// A `muted` event; `peer` is `None` for ourselves.
    Muted {
        peer: Option<String>,
        muted: bool,
    },
    /// `peer` hears `percent` of our voice lost: our encoder protects accordingly.
    ReportedLoss {
        peer: String,
        percent: u8,
    },
    /// Our microphone is muted or not.
    SetMuted(bool),
    /// The call is over: nothing is sent any more, and the next call starts unmuted.
    Ended,
    Error {
        code: ErrorCode,
        message: String,
        peer: Option<String>,
    },
}

/// The call this peer is in, or is invited to.
#[derive(Debug)]
struct Call {
    id: String,
    /// Everyone in or invited to the call, ourselves included.
    members: BTreeSet<String>,
    /// Who has joined (the inviter counts as joined).
    joined: BTreeSet<String>,
    /// Whether we have joined (an invitation not yet answered: false).
    in_call: bool,
}

#[derive(Debug, Default)]
pub(crate) struct CallControl {
    call: Option<Call>,
    /// Accepts of calls whose invitation has not arrived yet.
    early_accepts: HashMap<String, BTreeSet<String>>,
    auto_accept: bool,
}

/// Everyone in `set` but `me`.
fn others(set: &BTreeSet<String>, me: &str) -> Vec<String> {
    set.iter().filter(|m| *m != me).cloned().collect()
}

fn error(code: ErrorCode, message: impl Into<String>, peer: Option<&str>) -> Vec<Action> {
    vec![Action::Error {
        code,
        message: message.into(),
        peer: peer.map(str::to_owned),
    }]
}

impl CallControl {
    /// `auto_accept`: every invitation is accepted at once (a headless peer's flag).
    pub(crate) fn new(auto_accept: bool) -> Self {
        Self {
            auto_accept,
            ..Self::default()
        }
    }

    /// `call`: invite `peers`, or everyone in `open` (the peers whose chat channel is
    /// open). In a call already, those not in it yet are invited into it (a newcomer to
    /// the room, say). `me` is our own id; `new_id` names a new call.
    pub(crate) fn start(
        &mut self,
        me: &str,
        peers: Option<Vec<String>>,
        open: &BTreeSet<String>,
        new_id: String,
    ) -> Vec<Action> {
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
            return self.accept(me, &id);
        }
        let current = self.call.as_ref().filter(|c| c.in_call);
        let invited: Vec<String> = peers
            .unwrap_or_else(|| open.iter().cloned().collect())
            .into_iter()
            .filter(|id| !current.is_some_and(|c| c.members.contains(id)))
            .collect();
        if current.is_some() && invited.is_empty() {
            return error(
                ErrorCode::Busy,
                "everyone named is in the call already",
                None,
            );
        }
        if let Some(missing) = invited.iter().find(|id| !open.contains(*id)) {
            return error(
                ErrorCode::NotConnected,
                format!("no open channel to {missing}"),
                Some(missing),
            );
        }
        if invited.is_empty() {
            return error(ErrorCode::NotConnected, "nobody to call", None);
        }
        let call = match self.call.take().filter(|c| c.in_call) {
            Some(mut call) => {
                call.members.extend(invited.iter().cloned());
                call
            }
            None => Call {
                id: new_id,
                members: invited.iter().cloned().chain([me.to_owned()]).collect(),
                joined: BTreeSet::from([me.to_owned()]),
                in_call: true,
            },
        };
        // The current members: the invited learn whom to expect, and tell each their
        // accept, which is how those already in learn of them.
        let invite = PeerMessage::CallInvite {
            call: call.id.clone(),
            members: call.members.iter().cloned().collect(),
        };
        let mut actions = Vec::new();
        for peer in invited {
            actions.push(Action::Send {
                peer: peer.clone(),
                message: invite.clone(),
            });
            actions.push(Action::State {
                call: call.id.clone(),
                peer,
                state: CallState::Ringing,
            });
        }
        self.call = Some(call);
        actions
    }

    /// A call message from `from`.
    pub(crate) fn on_message(&mut self, me: &str, from: &str, message: PeerMessage) -> Vec<Action> {
        match message {
            PeerMessage::CallInvite { call, members } => self.on_invite(me, from, call, members),
            PeerMessage::CallAccept { call } if self.is_current(&call) => self.on_joined(from),
            PeerMessage::CallDecline { call } if self.is_current(&call) => {
                let mut actions = vec![state(call, from, CallState::Declined)];
                actions.extend(self.leave_of(from));
                actions
            }
            PeerMessage::CallEnd { call } if self.is_current(&call) => {
                let mut actions = vec![state(call, from, CallState::Ended)];
                actions.extend(self.leave_of(from));
                actions
            }
            PeerMessage::Mute { call, muted } if self.is_current(&call) => {
                let mut actions = Vec::new();
                if muted {
                    actions.push(Action::Hush(from.to_owned()));
                }
                actions.push(Action::Muted {
                    peer: Some(from.to_owned()),
                    muted,
                });
                actions
            }
            PeerMessage::VoiceLoss { call, percent } if self.is_current(&call) => {
                vec![Action::ReportedLoss {
                    peer: from.to_owned(),
                    percent,
                }]
            }
            // A member's accept can overtake the invitation it answers: keep it for then.
            PeerMessage::CallAccept { call } => {
                self.early_accepts
                    .entry(call)
                    .or_default()
                    .insert(from.to_owned());
                Vec::new()
            }
            // About a call we are not in: ignored, as the protocol says for mute.
            _ => Vec::new(),
        }
    }

    /// Tells a member of the call how much of its voice was lost here lately.
    pub(crate) fn report_loss(&self, peer: &str, percent: u8) -> Vec<Action> {
        match self.call.as_ref().filter(|c| c.in_call) {
            Some(call) if call.joined.contains(peer) => vec![Action::Send {
                peer: peer.to_owned(),
                message: PeerMessage::VoiceLoss {
                    call: call.id.clone(),
                    percent,
                },
            }],
            _ => Vec::new(),
        }
    }

    fn is_current(&self, call: &str) -> bool {
        self.call.as_ref().is_some_and(|c| c.id == call)
    }

    fn on_invite(
        &mut self,
        me: &str,
        from: &str,
        call: String,
        members: Vec<String>,
    ) -> Vec<Action> {
        let crossed = self.call.as_ref().filter(|c| {
            c.in_call && c.id != call && c.members.contains(from) && c.joined.len() == 1
        });
        // We called each other at the same moment. Both sides keep the call whose id sorts
        // first: the one holding the other call drops it and joins, which is what its user
        // wanted; the one holding the kept call waits for the accept.
        let mut actions = Vec::new();
        let join_at_once = match crossed {
            Some(ours) if ours.id < call => return actions,
            Some(_) => {
                actions.extend(self.withdraw(me));
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
            actions.push(Action::Send {
                peer: from.to_owned(),
                message: PeerMessage::CallDecline { call: call.clone() },
            });
            actions.push(state(call, from, CallState::Busy));
            return actions;
        }
        let mut members: BTreeSet<String> = members.into_iter().collect();
        members.insert(me.to_owned());
        members.insert(from.to_owned());
        let mut joined = self.early_accepts.remove(&call).unwrap_or_default();
        self.early_accepts.clear();
        joined.insert(from.to_owned());
        let others = members
            .iter()
            .filter(|m| *m != me && *m != from)
            .cloned()
            .collect();
        self.call = Some(Call {
            id: call.clone(),
            members,
            joined,
            in_call: false,
        });
        actions.push(Action::Incoming {
            call: call.clone(),
            from: from.to_owned(),
            members: others,
        });
        if self.auto_accept || join_at_once {
            actions.extend(self.accept(me, &call));
        }
        actions
    }

    /// `accept-call`: join, tell every member, and start voice with those already in.
    pub(crate) fn accept(&mut self, me: &str, call: &str) -> Vec<Action> {
        let Some(current) = self.call.as_mut().filter(|c| c.id == call) else {
            return error(
                ErrorCode::UnknownCall,
                format!("no invitation to {call}"),
                None,
            );
        };
        current.in_call = true;
        current.joined.insert(me.to_owned());
        let accept = PeerMessage::CallAccept {
            call: call.to_owned(),
        };
        let mut actions: Vec<Action> = others(&current.members, me)
            .into_iter()
            .map(|peer| Action::Send {
                peer,
                message: accept.clone(),
            })
            .collect();
        for peer in others(&current.joined, me) {
            actions.push(state(call.to_owned(), &peer, CallState::Active));
            actions.push(Action::StartVoice(peer));
        }
        actions
    }

    /// `decline-call`.
    pub(crate) fn decline(&mut self, call: &str) -> Vec<Action> {
        let Some(current) = self.call.take_if(|c| c.id == call && !c.in_call) else {
            return error(
                ErrorCode::UnknownCall,
                format!("no invitation to {call}"),
                None,
            );
        };
        current
            .joined
            .iter()
            .next()
            .map(|inviter| Action::Send {
                peer: inviter.clone(),
                message: PeerMessage::CallDecline {
                    call: call.to_owned(),
                },
            })
            .into_iter()
            .collect()
    }

    fn on_joined(&mut self, peer: &str) -> Vec<Action> {
        let Some(current) = self.call.as_mut() else {
            return Vec::new();
        };
        current.members.insert(peer.to_owned());
        if !current.joined.insert(peer.to_owned()) || !current.in_call {
            return Vec::new();
        }
        // A newcomer invited into a running call counts only its inviter as joined: answer
        // its accept with ours, so that it sets up voice with us too. An accept from
        // someone already counted is ignored, so this never goes back and forth.
        let call = current.id.clone();
        vec![
            Action::Send {
                peer: peer.to_owned(),
                message: PeerMessage::CallAccept { call: call.clone() },
            },
            state(call, peer, CallState::Active),
            Action::StartVoice(peer.to_owned()),
        ]
    }

    /// A member left the call (ended, declined, or gone from the mesh).
    pub(crate) fn leave_of(&mut self, peer: &str) -> Vec<Action> {
        let Some(current) = self.call.as_mut() else {
            return Vec::new();
        };
        let was_member = current.members.remove(peer);
        current.joined.remove(peer);
        let mut actions = Vec::new();
        if was_member {
            actions.push(Action::StopVoice(peer.to_owned()));
        }
        if current.members.len() <= 1 {
            actions.extend(self.end());
        }
        actions
    }

    /// Ends our own call that nobody has joined yet: those still ringing are told. (Not
    /// `hang_up`: no voice to stop, and a mute set before the call stays.)
    fn withdraw(&mut self, me: &str) -> Vec<Action> {
        match self.call.take() {
            Some(current) => ended(&current, me, false),
            None => Vec::new(),
        }
    }

    /// `hangup`: tell every member, stop all voice.
    pub(crate) fn hang_up(&mut self, me: &str) -> Vec<Action> {
        let Some(current) = self.call.as_ref() else {
            return error(ErrorCode::NotInCall, "no call to hang up", None);
        };
        let mut actions = ended(current, me, true);
        actions.extend(self.end());
        actions
    }

    fn end(&mut self) -> Vec<Action> {
        self.call = None;
        vec![Action::Ended]
    }

    /// `mute`: stop or resume sending; the members are told.
    pub(crate) fn mute(&self, me: &str, muted: bool) -> Vec<Action> {
        let mut actions = vec![Action::SetMuted(muted)];
        if let Some(current) = &self.call {
            let message = PeerMessage::Mute {
                call: current.id.clone(),
                muted,
            };
            for peer in others(&current.members, me) {
                actions.push(Action::Send {
                    peer,
                    message: message.clone(),
                });
            }
        }
        actions.push(Action::Muted { peer: None, muted });
        actions
    }
}

/// Every other member of `call` is told it ended and shown as ended; with `stop_voice`,
/// the voice with each stops too.
fn ended(call: &Call, me: &str, stop_voice: bool) -> Vec<Action> {
    let end = PeerMessage::CallEnd {
        call: call.id.clone(),
    };
    let mut actions = Vec::new();
    for member in others(&call.members, me) {
        actions.push(Action::Send {
            peer: member.clone(),
            message: end.clone(),
        });
        if stop_voice {
            actions.push(Action::StopVoice(member.clone()));
        }
        actions.push(state(call.id.clone(), &member, CallState::Ended));
    }
    actions
}

fn state(call: String, peer: &str, state: CallState) -> Action {
    Action::State {
        call,
        peer: peer.to_owned(),
        state,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::{BTreeMap, VecDeque};

    use super::*;

    /// Peers' call control passing messages, with everything each one was told to do.
    struct Net {
        nodes: BTreeMap<String, CallControl>,
        wire: VecDeque<(String, String, PeerMessage)>,
        done: BTreeMap<String, Vec<Action>>,
    }

    impl Net {
        fn new(ids: &[&str]) -> Net {
            Net {
                nodes: ids
                    .iter()
                    .map(|id| (id.to_string(), CallControl::new(false)))
                    .collect(),
                wire: VecDeque::new(),
                done: ids.iter().map(|id| (id.to_string(), Vec::new())).collect(),
            }
        }

        fn apply(&mut self, who: &str, actions: Vec<Action>) {
            for action in actions {
                if let Action::Send { peer, message } = &action {
                    self.wire
                        .push_back((who.to_owned(), peer.clone(), message.clone()));
                }
                self.done.get_mut(who).unwrap().push(action);
            }
        }

        fn open_to(&self, who: &str) -> BTreeSet<String> {
            self.nodes.keys().filter(|k| *k != who).cloned().collect()
        }

        fn call(&mut self, who: &str, peers: &[&str], id: &str) {
            let open = self.open_to(who);
            let peers = Some(peers.iter().map(|p| p.to_string()).collect());
            let actions = self
                .nodes
                .get_mut(who)
                .unwrap()
                .start(who, peers, &open, id.into());
            self.apply(who, actions);
        }

        fn accept(&mut self, who: &str, call: &str) {
            let actions = self.nodes.get_mut(who).unwrap().accept(who, call);
            self.apply(who, actions);
        }

        /// `a` calls `b` in call `c1`, and `b` accepts.
        fn a_calls_b_who_accepts(&mut self) {
            self.call("a", &["b"], "c1");
            self.deliver_all();
            self.accept("b", "c1");
            self.deliver_all();
        }

        fn deliver_all(&mut self) {
            while let Some((from, to, message)) = self.wire.pop_front() {
                let actions = self
                    .nodes
                    .get_mut(&to)
                    .unwrap()
                    .on_message(&to, &from, message);
                self.apply(&to, actions);
            }
        }

        /// Whom `who` sends voice to now (started and not stopped since).
        fn voice(&self, who: &str) -> BTreeSet<String> {
            let mut with = BTreeSet::new();
            for action in &self.done[who] {
                match action {
                    Action::StartVoice(peer) => {
                        assert!(with.insert(peer.clone()), "{who} started {peer} twice");
                    }
                    Action::StopVoice(peer) => {
                        with.remove(peer);
                    }
                    _ => {}
                }
            }
            with
        }

        fn incoming(&self, who: &str) -> Vec<String> {
            self.done[who]
                .iter()
                .filter_map(|a| match a {
                    Action::Incoming { call, .. } => Some(call.clone()),
                    _ => None,
                })
                .collect()
        }

        fn set(ids: &[&str]) -> BTreeSet<String> {
            ids.iter().map(|s| s.to_string()).collect()
        }
    }

    #[test]
    fn a_call_rings_and_once_accepted_voice_goes_both_ways() {
        let mut net = Net::new(&["a", "b"]);
        net.call("a", &["b"], "c1");
        assert!(net.done["a"].contains(&Action::State {
            call: "c1".into(),
            peer: "b".into(),
            state: CallState::Ringing
        }));
        net.deliver_all();
        assert_eq!(net.incoming("b"), ["c1"]);
        assert!(net.voice("b").is_empty(), "nothing before the accept");
        net.accept("b", "c1");
        net.deliver_all();
        assert_eq!(net.voice("a"), Net::set(&["b"]));
        assert_eq!(net.voice("b"), Net::set(&["a"]));
    }

    #[test]
    fn calls_that_cross_become_one_with_voice_both_ways() {
        for (first, second) in [("c1", "c2"), ("c2", "c1")] {
            let mut net = Net::new(&["a", "b"]);
            net.call("a", &["b"], first);
            net.call("b", &["a"], second);
            net.deliver_all();
            assert_eq!(net.voice("a"), Net::set(&["b"]), "{first} vs {second}");
            assert_eq!(net.voice("b"), Net::set(&["a"]), "{first} vs {second}");
        }
    }

    #[test]
    fn calling_back_someone_whose_call_rings_answers_it() {
        let mut net = Net::new(&["a", "b"]);
        net.call("a", &["b"], "c1");
        net.deliver_all();
        net.call("b", &["a"], "c2");
        net.deliver_all();
        assert_eq!(net.voice("a"), Net::set(&["b"]));
        assert_eq!(net.voice("b"), Net::set(&["a"]));
        assert!(net.incoming("a").is_empty(), "no second call rang");
    }

    #[test]
    fn a_newcomer_added_to_a_running_call_gets_voice_with_every_member() {
        let mut net = Net::new(&["a", "b", "c"]);
        net.a_calls_b_who_accepts();
        net.call("a", &["c"], "ignored");
        net.deliver_all();
        assert_eq!(net.incoming("c"), ["c1"], "into the running call");
        // The newcomer's prompt can say who is in the call besides its inviter; a plain
        // two-way call names nobody else.
        assert!(net.done["c"].contains(&Action::Incoming {
            call: "c1".into(),
            from: "a".into(),
            members: vec!["b".into()],
        }));
        assert!(net.done["b"].contains(&Action::Incoming {
            call: "c1".into(),
            from: "a".into(),
            members: vec![],
        }));
        net.accept("c", "c1");
        net.deliver_all();
        assert_eq!(net.voice("a"), Net::set(&["b", "c"]));
        assert_eq!(net.voice("b"), Net::set(&["a", "c"]));
        assert_eq!(net.voice("c"), Net::set(&["a", "b"]));
    }

    #[test]
    fn an_accept_that_overtakes_its_invitation_is_kept() {
        let mut net = Net::new(&["a", "b", "c"]);
        net.call("a", &["b", "c"], "c1");
        // b's invitation arrives and b accepts; its accept reaches c before a's invitation.
        let to_c = net.wire.iter().position(|(_, to, _)| to == "c").unwrap();
        let invite_c = net.wire.remove(to_c).unwrap();
        net.deliver_all();
        net.accept("b", "c1");
        net.deliver_all();
        net.wire.push_back(invite_c);
        net.deliver_all();
        net.accept("c", "c1");
        net.deliver_all();
        assert_eq!(net.voice("c"), Net::set(&["a", "b"]));
        assert_eq!(net.voice("b"), Net::set(&["a", "c"]));
    }

    #[test]
    fn someone_in_a_call_declines_another_as_busy() {
        let mut net = Net::new(&["a", "b", "c"]);
        net.a_calls_b_who_accepts();
        net.call("c", &["a"], "c2");
        net.deliver_all();
        assert!(net.done["a"].contains(&Action::State {
            call: "c2".into(),
            peer: "c".into(),
            state: CallState::Busy
        }));
        assert!(net.done["c"].contains(&Action::State {
            call: "c2".into(),
            peer: "a".into(),
            state: CallState::Declined
        }));
        assert!(net.done["c"].contains(&Action::Ended));
        assert_eq!(net.voice("a"), Net::set(&["b"]), "the running call goes on");
    }

    #[test]
    fn hanging_up_ends_the_call_for_the_last_other_member() {
        let mut net = Net::new(&["a", "b"]);
        net.a_calls_b_who_accepts();
        let actions = net.nodes.get_mut("b").unwrap().hang_up("b");
        net.apply("b", actions);
        net.deliver_all();
        assert!(net.voice("a").is_empty());
        assert!(net.voice("b").is_empty());
        assert!(net.done["a"].contains(&Action::Ended));
        let again = net.nodes.get_mut("a").unwrap().hang_up("a");
        assert!(matches!(
            again[..],
            [Action::Error {
                code: ErrorCode::NotInCall,
                ..
            }]
        ));
    }

    #[test]
    fn calling_nobody_or_a_peer_without_a_channel_is_an_error() {
        let mut control = CallControl::new(false);
        let open = BTreeSet::new();
        let none = control.start("a", None, &open, "c1".into());
        assert!(matches!(
            none[..],
            [Action::Error {
                code: ErrorCode::NotConnected,
                ..
            }]
        ));
        let closed = control.start("a", Some(vec!["b".into()]), &open, "c1".into());
        assert!(matches!(&closed[..], [Action::Error { peer: Some(p), .. }] if p == "b"));
    }

    #[test]
    fn declining_a_call_not_ringing_keeps_the_one_that_is() {
        let mut net = Net::new(&["a", "b"]);
        net.call("a", &["b"], "c1");
        net.deliver_all();
        let wrong = net.nodes.get_mut("b").unwrap().decline("c9");
        assert!(matches!(
            wrong[..],
            [Action::Error {
                code: ErrorCode::UnknownCall,
                ..
            }]
        ));
        net.accept("b", "c1");
        net.deliver_all();
        assert_eq!(net.voice("b"), Net::set(&["a"]));
    }
}
