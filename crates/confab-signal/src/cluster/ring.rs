//! Which servers of a cluster are alive, and which one owns each room, as plain data: no
//! IO and no clock (the caller passes `now`), so its rules are tested in microseconds.
//!
//! A room is owned by one live server. It is chosen when the room is created, or when
//! its owner dies, by rendezvous hashing over the servers alive then; after that it stays
//! where it is while its owner lives. Moving a live room to a server that comes up later
//! would gain nothing (rooms are small) and would open a window in which two servers
//! both think they hold it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::registry::RoomSnapshot;

/// A server that has not been heard from for this long is dead.
pub(crate) const DEATH_AFTER: Duration = Duration::from_secs(2);

/// What this server knows of a room another server owns.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) owner: String,
    pub(crate) snapshot: RoomSnapshot,
}

/// Where a room lives, as this server sees it.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// This server; the snapshot is the room to take over first, when its owner died.
    Here(Option<RoomSnapshot>),
    There(String),
}

#[derive(Debug)]
pub(crate) struct Ring {
    me: String,
    /// Every other server heard from, with when it was last heard.
    heard: HashMap<String, Instant>,
    /// When this server's own link to the bus came (back) up; `None` while it is down.
    /// Silence proves nothing while the link is down, nor until a heartbeat could
    /// have crossed it since.
    link_up: Option<Instant>,
    /// Rooms owned by other servers, as their owners last told.
    claims: HashMap<String, Claim>,
    /// Servers found dead or gone. Their rooms have moved: one heard from again (a
    /// process stalled too long, or cut off from the bus) must not act for them.
    buried: HashSet<String>,
}

impl Ring {
    pub(crate) fn new(me: String, now: Instant) -> Self {
        Self {
            me,
            heard: HashMap::new(),
            link_up: Some(now),
            claims: HashMap::new(),
            buried: HashSet::new(),
        }
    }

    /// A heartbeat from `node`. Returns false when `node` was found dead before: it is
    /// not alive again, and should be told so.
    pub(crate) fn heard_from(&mut self, node: &str, now: Instant) -> bool {
        if node == self.me {
            return true;
        }
        if self.buried.contains(node) {
            return false;
        }
        match self.heard.get_mut(node) {
            Some(at) => *at = now,
            None => {
                self.heard.insert(node.to_owned(), now);
            }
        }
        true
    }

    /// `node` said goodbye: it owns nothing from now on.
    pub(crate) fn forget(&mut self, node: &str) -> bool {
        self.buried.insert(node.to_owned());
        self.heard.remove(node).is_some()
    }

    pub(crate) fn link_down(&mut self) {
        self.link_up = None;
    }

    pub(crate) fn link_back(&mut self, now: Instant) {
        self.link_up = Some(now);
    }

    /// The servers silent for [`DEATH_AFTER`], removed from the living.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<String> {
        let Some(link_up) = self.link_up else {
            return Vec::new();
        };
        let dead: Vec<String> = self
            .heard
            .iter()
            .filter(|(_, at)| now.saturating_duration_since((**at).max(link_up)) >= DEATH_AFTER)
            .map(|(node, _)| node.clone())
            .collect();
        for node in &dead {
            self.heard.remove(node);
            self.buried.insert(node.clone());
        }
        dead
    }

    /// The other servers alive.
    pub(crate) fn alive(&self) -> impl Iterator<Item = &str> {
        self.heard.keys().map(String::as_str)
    }

    pub(crate) fn is_alive(&self, node: &str) -> bool {
        node == self.me || self.heard.contains_key(node)
    }

    /// What `owner` says of `room`: its members now, or `None` when it emptied.
    pub(crate) fn claim(&mut self, room: &str, owner: &str, snapshot: Option<RoomSnapshot>) {
        if owner == self.me {
            return;
        }
        match snapshot {
            Some(snapshot) => {
                self.claims.insert(
                    room.to_owned(),
                    Claim {
                        owner: owner.to_owned(),
                        snapshot,
                    },
                );
            }
            // Only the owner the claim names may withdraw it: a stale withdrawal from
            // an owner the room has since left must not erase the new owner's claim.
            None => {
                if self.claims.get(room).is_some_and(|c| c.owner == owner) {
                    self.claims.remove(room);
                }
            }
        }
    }

    /// Every claim known, for a server that has just come up.
    pub(crate) fn claims(&self) -> impl Iterator<Item = (&str, &Claim)> {
        self.claims
            .iter()
            .map(|(room, claim)| (room.as_str(), claim))
    }

    /// Where `room` lives when this server does not hold it. A room claimed by a live
    /// server is there; any other goes to the rendezvous winner among the living, and
    /// when that is this server, it takes the claim's snapshot (if any) over.
    pub(crate) fn owner_of(&mut self, room: &str) -> Owner {
        if let Some(claim) = self.claims.get(room)
            && self.is_alive(&claim.owner)
        {
            return Owner::There(claim.owner.clone());
        }
        let winner = rendezvous(room, self.alive().chain([self.me.as_str()]));
        if winner == self.me {
            Owner::Here(self.claims.remove(room).map(|c| c.snapshot))
        } else {
            Owner::There(winner.to_owned())
        }
    }

    /// The rooms whose owner is dead and which this server wins: to take over now.
    pub(crate) fn orphans(&mut self) -> Vec<RoomSnapshot> {
        let rooms: Vec<String> = self
            .claims
            .iter()
            .filter(|(_, claim)| !self.is_alive(&claim.owner))
            .map(|(room, _)| room.clone())
            .collect();
        rooms
            .into_iter()
            .filter_map(|room| match self.owner_of(&room) {
                Owner::Here(snapshot) => snapshot,
                Owner::There(_) => None,
            })
            .collect()
    }
}

/// The node with the highest hash of (node, room): every server that sees the same
/// living set picks the same one, and a server's death moves only its own rooms.
fn rendezvous<'a>(room: &str, nodes: impl Iterator<Item = &'a str>) -> &'a str {
    nodes
        .map(|node| (score(node, room), node))
        .max()
        .map_or("", |(_, node)| node)
}

fn score(node: &str, room: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update([0]);
    hasher.update(room.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MemberSnapshot;

    fn snapshot(room: &str) -> RoomSnapshot {
        RoomSnapshot {
            room: room.into(),
            password: None,
            members: vec![MemberSnapshot {
                id: "p1".into(),
                name: "A".into(),
                token: "t".into(),
                socket: None,
            }],
        }
    }

    /// A room that `winner` wins among `nodes`.
    fn room_won_by(winner: &str, nodes: &[&str]) -> String {
        (0..)
            .map(|i| format!("room{i}"))
            .find(|room| rendezvous(room, nodes.iter().copied()) == winner)
            .unwrap_or_default()
    }

    #[test]
    fn every_server_picks_the_same_owner_for_a_new_room() {
        let t = Instant::now();
        let mut a = Ring::new("a".into(), t);
        let mut b = Ring::new("b".into(), t);
        a.heard_from("b", t);
        b.heard_from("a", t);
        for i in 0..50 {
            let room = format!("r{i}");
            let seen_by_a = match a.owner_of(&room) {
                Owner::Here(_) => "a".to_owned(),
                Owner::There(node) => node,
            };
            let seen_by_b = match b.owner_of(&room) {
                Owner::Here(_) => "b".to_owned(),
                Owner::There(node) => node,
            };
            assert_eq!(seen_by_a, seen_by_b, "{room}");
        }
    }

    #[test]
    fn a_claimed_room_stays_with_its_live_owner_whoever_would_win_it() {
        let t = Instant::now();
        let mut a = Ring::new("a".into(), t);
        a.heard_from("b", t);
        let room = room_won_by("a", &["a", "b"]);
        a.claim(&room, "b", Some(snapshot(&room)));
        assert!(matches!(a.owner_of(&room), Owner::There(n) if n == "b"));
    }

    #[test]
    fn a_dead_owners_rooms_go_to_the_winner_with_their_members() {
        let t = Instant::now();
        let mut a = Ring::new("a".into(), t);
        a.heard_from("b", t);
        a.heard_from("c", t);
        let mine = room_won_by("a", &["a", "c"]);
        let theirs = room_won_by("c", &["a", "c"]);
        a.claim(&mine, "b", Some(snapshot(&mine)));
        a.claim(&theirs, "b", Some(snapshot(&theirs)));

        a.heard_from("c", t + Duration::from_secs(1));
        assert!(a.expire(t + Duration::from_millis(1900)).is_empty());
        assert_eq!(a.expire(t + DEATH_AFTER), vec!["b".to_owned()]);

        let orphans = a.orphans();
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].room, mine);
        assert_eq!(orphans[0].members[0].token, "t");
        assert!(matches!(a.owner_of(&theirs), Owner::There(n) if n == "c"));
        assert!(a.orphans().is_empty(), "taken over once");
    }

    #[test]
    fn silence_while_the_link_is_down_kills_nobody() {
        let t = Instant::now();
        let mut a = Ring::new("a".into(), t);
        a.heard_from("b", t);
        a.link_down();
        assert!(a.expire(t + Duration::from_secs(10)).is_empty());
        a.link_back(t + Duration::from_secs(10));
        assert!(a.expire(t + Duration::from_secs(11)).is_empty());
        assert_eq!(a.expire(t + Duration::from_secs(12)), vec!["b".to_owned()]);
    }

    #[test]
    fn a_server_found_dead_stays_dead_when_heard_again() {
        let t = Instant::now();
        let mut a = Ring::new("a".into(), t);
        assert!(a.heard_from("b", t));
        assert_eq!(a.expire(t + DEATH_AFTER), vec!["b".to_owned()]);
        assert!(!a.heard_from("b", t + DEATH_AFTER), "told it is dead");
        assert_eq!(a.alive().count(), 0);
    }

    #[test]
    fn only_the_claims_owner_withdraws_it() {
        let t = Instant::now();
        let mut a = Ring::new("a".into(), t);
        a.heard_from("b", t);
        a.heard_from("c", t);
        a.claim("r", "c", Some(snapshot("r")));
        a.claim("r", "b", None);
        assert!(matches!(a.owner_of("r"), Owner::There(n) if n == "c"));
        a.claim("r", "c", None);
        assert_eq!(a.claims().count(), 0);
    }
}
