//! Which room has the call, followed from the core's events as they pass to the window:
//! the talk shortcut's presses go from the shell straight to that room's peer, without
//! the round trip through the page (whose IPC under Xvfb took 7-240 ms).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use confab_mesh::Event;
use confab_mesh::api::CallState;

/// Per room, the peers ringing or in its call.
#[derive(Debug, Default)]
pub struct CallRooms {
    live: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl CallRooms {
    /// Takes note of a core event of `room`.
    pub fn follow(&self, room: &str, event: &Event) {
        let (peer, live) = match event {
            Event::CallState { peer, state, .. } => (
                peer,
                matches!(state, CallState::Ringing | CallState::Active),
            ),
            Event::PeerLeft { id } => (id, false),
            _ => return,
        };
        let mut rooms = self.lock();
        let peers = rooms.entry(room.to_owned()).or_default();
        if live {
            peers.insert(peer.clone());
        } else {
            peers.remove(peer);
        }
        if peers.is_empty() {
            rooms.remove(room);
        }
    }

    /// The room whose call rings or runs (the app has one call at a time).
    pub fn current(&self) -> Option<String> {
        self.lock().keys().next().cloned()
    }

    /// A poisoned lock only means a panic mid-update of a map that stays whole.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_state(peer: &str, state: CallState) -> Event {
        Event::CallState {
            call: "c1".to_owned(),
            peer: peer.to_owned(),
            state,
        }
    }

    #[test]
    fn the_call_room_is_the_one_with_a_peer_ringing_or_in_the_call() {
        let rooms = CallRooms::default();
        assert_eq!(rooms.current(), None);
        rooms.follow("team", &call_state("ada", CallState::Ringing));
        assert_eq!(rooms.current().as_deref(), Some("team"));
        rooms.follow("team", &call_state("ada", CallState::Active));
        rooms.follow("team", &call_state("cy", CallState::Active));
        rooms.follow("team", &call_state("ada", CallState::Ended));
        assert_eq!(
            rooms.current().as_deref(),
            Some("team"),
            "Cy is still in it"
        );
        rooms.follow("team", &call_state("cy", CallState::Declined));
        assert_eq!(rooms.current(), None);
        rooms.follow("lobby", &call_state("bo", CallState::Active));
        rooms.follow(
            "lobby",
            &Event::PeerLeft {
                id: "bo".to_owned(),
            },
        );
        assert_eq!(
            rooms.current(),
            None,
            "gone from the room, gone from the call"
        );
    }
}
