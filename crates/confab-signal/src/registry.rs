//! Room membership as plain data: who is in which room, room passwords, resume tokens
//! and the grace period of dropped sockets.
//!
//! No IO and no clock: the caller passes `now` and fresh secrets in, and delivers the
//! frames each call returns. The server calls it under one lock and delivers before
//! releasing it, which is what makes "every two members learn of each other exactly
//! once" hold even when they join at the same moment.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use confab_proto::{ErrorCode, Join, PeerInfo, ServerFrame};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::password::PasswordHash;

/// Signals kept for a member in its grace period, delivered if it resumes.
pub(crate) const PENDING_SIGNALS: usize = 64;

/// Identifies one socket, so that a socket replaced by a resume cannot act for its id.
pub(crate) type ConnId = u64;

/// What the registry keeps of a socket: something that frames can be delivered to.
pub(crate) trait Conn: Clone {
    fn conn_id(&self) -> ConnId;

    /// The server of a cluster that holds the socket; `None` for this server's own.
    fn node(&self) -> Option<&str> {
        None
    }
}

/// Where a member sits: the room and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberKey {
    pub(crate) room: String,
    pub(crate) id: String,
}

/// A frame for one socket.
#[derive(Debug)]
pub(crate) struct Delivery<C> {
    pub(crate) to: C,
    pub(crate) frame: ServerFrame,
}

/// Secrets for one join, drawn by the caller so this module stays deterministic.
#[derive(Debug)]
pub(crate) struct Secrets {
    pub(crate) token: String,
    pub(crate) salt: [u8; 16],
}

/// A successful join.
#[derive(Debug)]
pub(crate) struct Joined<C> {
    pub(crate) key: MemberKey,
    /// `welcome`, then the signals kept during a grace period: send these first, in order.
    pub(crate) replies: Vec<ServerFrame>,
    /// The old socket of a resumed id that was still open: close it.
    pub(crate) replaced: Option<C>,
    /// `peer-joined` for the other members.
    pub(crate) notify: Vec<Delivery<C>>,
}

/// A refused join or relay: the error frame to send back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: std::borrow::Cow<'static, str>,
}

impl Refusal {
    const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self {
            code,
            message: std::borrow::Cow::Borrowed(message),
        }
    }
}

/// A room as another server needs it to take the room over: who is in it under which
/// token and on which server's socket, and its password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomSnapshot {
    pub(crate) room: String,
    pub(crate) password: Option<PasswordHash>,
    pub(crate) members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MemberSnapshot {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) token: String,
    /// The member's socket; `None` in its grace period.
    pub(crate) socket: Option<SocketRef>,
}

/// A socket anywhere in a cluster: the server that holds it, and its number there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SocketRef {
    pub(crate) node: String,
    pub(crate) conn: ConnId,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_rooms: usize,
    pub(crate) max_room_peers: usize,
    pub(crate) resume_grace: Duration,
}

#[derive(Debug)]
pub(crate) struct Registry<C> {
    limits: Limits,
    rooms: HashMap<String, Room<C>>,
    tokens: HashMap<String, MemberKey>,
    /// Grace deadlines in the order they fall: the grace period is the same for all.
    expiries: VecDeque<Expiry>,
    /// Ids are this prefix and a counter. In a cluster the prefix is unique to the
    /// process, so that ids stay unique when rooms move between servers.
    id_prefix: String,
    next_id: u64,
    /// Rooms whose members or tokens changed since [`Registry::take_changed`].
    changed: BTreeSet<String>,
}

#[derive(Debug)]
struct Room<C> {
    password: Option<PasswordHash>,
    members: BTreeMap<String, Member<C>>,
}

#[derive(Debug)]
struct Member<C> {
    name: String,
    token: String,
    link: Link<C>,
}

#[derive(Debug)]
enum Link<C> {
    Attached(C),
    /// The socket dropped without a close; the id waits for a resume.
    Detached {
        conn: ConnId,
        pending: VecDeque<ServerFrame>,
    },
}

#[derive(Debug)]
struct Expiry {
    at: Instant,
    key: MemberKey,
    conn: ConnId,
}

impl<C: Conn> Registry<C> {
    pub(crate) fn new(limits: Limits, id_prefix: String) -> Self {
        Self {
            limits,
            rooms: HashMap::new(),
            tokens: HashMap::new(),
            expiries: VecDeque::new(),
            id_prefix,
            next_id: 1,
            changed: BTreeSet::new(),
        }
    }

    /// Joins `conn` to a room, or resumes a dropped member when `join.resume` is its token.
    pub(crate) fn join(
        &mut self,
        join: &Join,
        conn: C,
        secrets: Secrets,
    ) -> Result<Joined<C>, Refusal> {
        if let Some(key) = self.resumable(join) {
            return self.resume(join, key, conn, secrets.token);
        }
        // An empty password field means "no password", as a blank settings field would.
        let password = join.password.as_deref().filter(|p| !p.is_empty());
        match self.rooms.get(&join.room) {
            Some(room) => {
                if let Some(hash) = &room.password
                    && !password.is_some_and(|p| hash.matches(p))
                {
                    return Err(Refusal::new(
                        ErrorCode::BadPassword,
                        "wrong or missing password for this room",
                    ));
                }
                if room.members.len() >= self.limits.max_room_peers {
                    return Err(Refusal::new(ErrorCode::RoomFull, "the room is full"));
                }
            }
            None if self.rooms.len() >= self.limits.max_rooms => {
                return Err(Refusal::new(
                    ErrorCode::RoomFull,
                    "the server holds its maximum of rooms",
                ));
            }
            None => {
                let room = Room {
                    password: password.map(|p| PasswordHash::new(p, secrets.salt)),
                    members: BTreeMap::new(),
                };
                self.rooms.insert(join.room.clone(), room);
            }
        }
        let id = format!("{}{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        let key = MemberKey {
            room: join.room.clone(),
            id: id.clone(),
        };
        let room = self.rooms.get_mut(&join.room).ok_or(Refusal::new(
            ErrorCode::RoomFull,
            "the room vanished while joining",
        ))?;
        let newcomer = PeerInfo {
            id: id.clone(),
            name: join.name.clone(),
        };
        let notify = room
            .members
            .values()
            .filter_map(|m| match &m.link {
                Link::Attached(c) => Some(Delivery {
                    to: c.clone(),
                    frame: ServerFrame::PeerJoined {
                        peer: newcomer.clone(),
                    },
                }),
                Link::Detached { .. } => None,
            })
            .collect();
        let welcome = ServerFrame::Welcome {
            id: id.clone(),
            token: secrets.token.clone(),
            room: join.room.clone(),
            peers: peer_infos(room, &id),
            ice_servers: Vec::new(),
        };
        room.members.insert(
            id,
            Member {
                name: join.name.clone(),
                token: secrets.token.clone(),
                link: Link::Attached(conn),
            },
        );
        self.tokens.insert(secrets.token, key.clone());
        self.changed.insert(key.room.clone());
        Ok(Joined {
            key,
            replies: vec![welcome],
            replaced: None,
            notify,
        })
    }

    /// The member a `resume` token names, if it is valid for this join's room.
    fn resumable(&self, join: &Join) -> Option<MemberKey> {
        let key = self.tokens.get(join.resume.as_deref()?)?;
        (key.room == join.room).then(|| key.clone())
    }

    fn resume(
        &mut self,
        join: &Join,
        key: MemberKey,
        conn: C,
        token: String,
    ) -> Result<Joined<C>, Refusal> {
        let missing = Refusal::new(ErrorCode::NotJoined, "resume token has no member");
        let room = self.rooms.get_mut(&key.room).ok_or(missing.clone())?;
        if let Some(hash) = &room.password
            && !join.password.as_deref().is_some_and(|p| hash.matches(p))
        {
            return Err(Refusal::new(
                ErrorCode::BadPassword,
                "wrong or missing password for this room",
            ));
        }
        let peers = peer_infos(room, &key.id);
        let member = room.members.get_mut(&key.id).ok_or(missing)?;
        let old_token = std::mem::replace(&mut member.token, token.clone());
        let (replaced, pending) = match std::mem::replace(&mut member.link, Link::Attached(conn)) {
            Link::Attached(old) => (Some(old), VecDeque::new()),
            Link::Detached { pending, .. } => (None, pending),
        };
        self.tokens.remove(&old_token);
        self.tokens.insert(token.clone(), key.clone());
        self.changed.insert(key.room.clone());
        let mut replies = vec![ServerFrame::Welcome {
            id: key.id.clone(),
            token,
            room: key.room.clone(),
            peers,
            ice_servers: Vec::new(),
        }];
        replies.extend(pending);
        Ok(Joined {
            key,
            replies,
            replaced,
            notify: Vec::new(),
        })
    }

    /// Relays `data` from `from` to the member `to`. Returns the delivery, or `None` when
    /// the target is in its grace period (the frame is kept for its resume).
    pub(crate) fn relay(
        &mut self,
        from: &MemberKey,
        to: &str,
        data: Value,
    ) -> Result<Option<Delivery<C>>, Refusal> {
        let unknown = Refusal::new(ErrorCode::UnknownPeer, "no other member has that id");
        if to == from.id {
            return Err(unknown);
        }
        let room = self.rooms.get_mut(&from.room).ok_or(unknown.clone())?;
        let target = room.members.get_mut(to).ok_or(unknown)?;
        let frame = ServerFrame::Signal {
            from: from.id.clone(),
            data,
        };
        match &mut target.link {
            Link::Attached(c) => Ok(Some(Delivery {
                to: c.clone(),
                frame,
            })),
            Link::Detached { pending, .. } => {
                if pending.len() < PENDING_SIGNALS {
                    pending.push_back(frame);
                }
                Ok(None)
            }
        }
    }

    /// Everyone in the member's room but itself.
    pub(crate) fn peers(&self, key: &MemberKey) -> Vec<PeerInfo> {
        self.rooms
            .get(&key.room)
            .map(|room| peer_infos(room, &key.id))
            .unwrap_or_default()
    }

    /// Whether `conn` still holds the member's id (a resume elsewhere takes it away).
    pub(crate) fn holds(&self, key: &MemberKey, conn: ConnId) -> bool {
        self.member(key)
            .is_some_and(|m| matches!(&m.link, Link::Attached(c) if c.conn_id() == conn))
    }

    /// The member left (or closed cleanly): it is gone for everyone at once.
    pub(crate) fn leave(&mut self, key: &MemberKey, conn: ConnId) -> Vec<Delivery<C>> {
        if self.holds(key, conn) {
            self.remove(key)
        } else {
            Vec::new()
        }
    }

    /// The member's socket dropped without a close: keep its id for the grace period.
    /// Returns whether a grace period started.
    pub(crate) fn detach(&mut self, key: &MemberKey, conn: ConnId, now: Instant) -> bool {
        if !self.holds(key, conn) {
            return false;
        }
        let grace = self.limits.resume_grace;
        let Some(member) = self.member_mut(key) else {
            return false;
        };
        member.link = Link::Detached {
            conn,
            pending: VecDeque::new(),
        };
        self.changed.insert(key.room.clone());
        self.expiries.push_back(Expiry {
            at: now + grace,
            key: key.clone(),
            conn,
        });
        true
    }

    /// Removes every member whose grace period ended by `now`.
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<Delivery<C>> {
        let mut out = Vec::new();
        while let Some(expiry) = self.expiries.front() {
            if expiry.at > now {
                break;
            }
            let Some(expiry) = self.expiries.pop_front() else {
                break;
            };
            let still_detached = self.member(&expiry.key).is_some_and(
                |m| matches!(m.link, Link::Detached { conn, .. } if conn == expiry.conn),
            );
            if still_detached {
                out.extend(self.remove(&expiry.key));
            }
        }
        out
    }

    /// When the next grace period ends, if any is running.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.front().map(|e| e.at)
    }

    /// Rooms, and members in them (including those in their grace period).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let members = self.rooms.values().map(|r| r.members.len()).sum();
        (self.rooms.len(), members)
    }

    /// The rooms without a password, largest first, with their member counts.
    pub(crate) fn open_rooms(&self) -> Vec<(String, usize)> {
        let mut rooms: Vec<(String, usize)> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.password.is_none())
            .map(|(name, room)| (name.clone(), room.members.len()))
            .collect();
        rooms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rooms
    }

    /// The rooms changed since the last call: what a cluster tells the other servers.
    pub(crate) fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    /// Whether this registry holds the room.
    pub(crate) fn has_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// The room as another server would take it over; `None` once it is empty. `me` names
    /// this server, which holds the sockets with no node of their own.
    pub(crate) fn snapshot(&self, room: &str, me: &str) -> Option<RoomSnapshot> {
        let held = self.rooms.get(room)?;
        Some(RoomSnapshot {
            room: room.to_owned(),
            password: held.password.clone(),
            members: held
                .members
                .iter()
                .map(|(id, m)| MemberSnapshot {
                    id: id.clone(),
                    name: m.name.clone(),
                    token: m.token.clone(),
                    socket: match &m.link {
                        Link::Attached(c) => Some(SocketRef {
                            node: c.node().unwrap_or(me).to_owned(),
                            conn: c.conn_id(),
                        }),
                        Link::Detached { .. } => None,
                    },
                })
                .collect(),
        })
    }

    /// The names of every room held.
    pub(crate) fn room_names(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }

    /// Takes over a room from a server that is gone. A member whose socket `attach` still
    /// finds (held by a server alive) stays attached; every other starts a grace period,
    /// as if its socket had dropped: it keeps its id and token for a resume, and the room
    /// hears of it only if it never comes back. A room already held is left as it is.
    pub(crate) fn restore(
        &mut self,
        snapshot: RoomSnapshot,
        now: Instant,
        conn: ConnId,
        attach: impl Fn(&SocketRef) -> Option<C>,
    ) {
        if self.rooms.contains_key(&snapshot.room) {
            return;
        }
        self.changed.insert(snapshot.room.clone());
        let mut members = BTreeMap::new();
        for m in snapshot.members {
            let key = MemberKey {
                room: snapshot.room.clone(),
                id: m.id.clone(),
            };
            self.tokens.insert(m.token.clone(), key.clone());
            let link = match m.socket.as_ref().and_then(&attach) {
                Some(c) => Link::Attached(c),
                None => {
                    self.expiries.push_back(Expiry {
                        at: now + self.limits.resume_grace,
                        key,
                        conn,
                    });
                    Link::Detached {
                        conn,
                        pending: VecDeque::new(),
                    }
                }
            };
            members.insert(
                m.id,
                Member {
                    name: m.name,
                    token: m.token,
                    link,
                },
            );
        }
        let room = Room {
            password: snapshot.password,
            members,
        };
        self.rooms.insert(snapshot.room, room);
    }

    /// Gives a member in its grace period a socket again without a new `welcome`: its
    /// room moved to this server while its socket stayed open on another. Returns the
    /// signals kept meanwhile, to deliver in order.
    pub(crate) fn reattach(
        &mut self,
        key: &MemberKey,
        token: &str,
        conn: C,
    ) -> Result<Vec<ServerFrame>, Refusal> {
        let missing = Refusal::new(ErrorCode::NotJoined, "no such member to reattach");
        if self.tokens.get(token) != Some(key) {
            return Err(missing);
        }
        let member = self.member_mut(key).ok_or(missing)?;
        let link = std::mem::replace(&mut member.link, Link::Attached(conn));
        self.changed.insert(key.room.clone());
        match link {
            Link::Detached { pending, .. } => Ok(pending.into()),
            Link::Attached(_) => Ok(Vec::new()),
        }
    }

    /// Starts a grace period for every attached member whose socket `lost` says is gone
    /// (a server of the cluster that died, with all its sockets). Returns how many.
    pub(crate) fn detach_where(&mut self, lost: impl Fn(&C) -> bool, now: Instant) -> usize {
        let keys: Vec<(MemberKey, ConnId)> = self
            .rooms
            .iter()
            .flat_map(|(room, held)| {
                held.members.iter().filter_map(|(id, m)| match &m.link {
                    Link::Attached(c) if lost(c) => Some((
                        MemberKey {
                            room: room.clone(),
                            id: id.clone(),
                        },
                        c.conn_id(),
                    )),
                    _ => None,
                })
            })
            .collect();
        keys.iter()
            .filter(|(key, conn)| self.detach(key, *conn, now))
            .count()
    }

    fn member(&self, key: &MemberKey) -> Option<&Member<C>> {
        self.rooms.get(&key.room)?.members.get(&key.id)
    }

    fn member_mut(&mut self, key: &MemberKey) -> Option<&mut Member<C>> {
        self.rooms.get_mut(&key.room)?.members.get_mut(&key.id)
    }

    fn remove(&mut self, key: &MemberKey) -> Vec<Delivery<C>> {
        let Some(room) = self.rooms.get_mut(&key.room) else {
            return Vec::new();
        };
        let Some(member) = room.members.remove(&key.id) else {
            return Vec::new();
        };
        self.tokens.remove(&member.token);
        self.changed.insert(key.room.clone());
        let notify = room
            .members
            .values()
            .filter_map(|m| match &m.link {
                Link::Attached(c) => Some(Delivery {
                    to: c.clone(),
                    frame: ServerFrame::PeerLeft { id: key.id.clone() },
                }),
                Link::Detached { .. } => None,
            })
            .collect();
        if room.members.is_empty() {
            self.rooms.remove(&key.room);
        }
        notify
    }
}

fn peer_infos<C>(room: &Room<C>, except: &str) -> Vec<PeerInfo> {
    room.members
        .iter()
        .filter(|(id, _)| id.as_str() != except)
        .map(|(id, m)| PeerInfo {
            id: id.clone(),
            name: m.name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq)]
    struct TestConn(ConnId);

    impl Conn for TestConn {
        fn conn_id(&self) -> ConnId {
            self.0
        }
    }

    fn registry(max_room_peers: usize) -> Registry<TestConn> {
        Registry::new(
            Limits {
                max_rooms: 2,
                max_room_peers,
                resume_grace: Duration::from_secs(30),
            },
            "p".into(),
        )
    }

    fn join_req(room: &str, name: &str, password: Option<&str>, resume: Option<&str>) -> Join {
        Join {
            room: room.into(),
            name: name.into(),
            version: 1,
            password: password.map(Into::into),
            resume: resume.map(Into::into),
        }
    }

    fn secrets(token: &str) -> Secrets {
        Secrets {
            token: token.into(),
            salt: [0; 16],
        }
    }

    /// A (socket 1, token `ta`) and B (socket 2, token `tb`) in room `r`.
    fn a_and_b(reg: &mut Registry<TestConn>) -> (Joined<TestConn>, Joined<TestConn>) {
        let a = reg
            .join(&join_req("r", "A", None, None), TestConn(1), secrets("ta"))
            .unwrap();
        let b = reg
            .join(&join_req("r", "B", None, None), TestConn(2), secrets("tb"))
            .unwrap();
        (a, b)
    }

    fn welcome_peers(joined: &Joined<TestConn>) -> Vec<String> {
        match &joined.replies[0] {
            ServerFrame::Welcome { peers, .. } => peers.iter().map(|p| p.id.clone()).collect(),
            other => panic!("not a welcome: {other:?}"),
        }
    }

    #[test]
    fn the_earlier_member_hears_of_the_later_and_the_later_finds_the_earlier() {
        let mut reg = registry(16);
        let a = reg
            .join(&join_req("r", "A", None, None), TestConn(1), secrets("ta"))
            .unwrap();
        assert!(a.notify.is_empty());
        assert!(welcome_peers(&a).is_empty());
        let b = reg
            .join(&join_req("r", "B", None, None), TestConn(2), secrets("tb"))
            .unwrap();
        assert_eq!(welcome_peers(&b), vec![a.key.id.clone()]);
        assert_eq!(b.notify.len(), 1);
        assert_eq!(b.notify[0].to, TestConn(1));
        assert!(
            matches!(&b.notify[0].frame, ServerFrame::PeerJoined { peer } if peer.id == b.key.id)
        );
    }

    #[test]
    fn relay_stamps_the_sender_and_refuses_self_and_strangers() {
        let mut reg = registry(16);
        let (a, b) = a_and_b(&mut reg);
        let other = reg
            .join(&join_req("s", "C", None, None), TestConn(3), secrets("tc"))
            .unwrap();
        let d = reg
            .relay(&a.key, &b.key.id, json!({"x":1}))
            .unwrap()
            .unwrap();
        assert_eq!(d.to, TestConn(2));
        assert_eq!(
            d.frame,
            ServerFrame::Signal {
                from: a.key.id.clone(),
                data: json!({"x":1})
            }
        );
        assert_eq!(
            reg.relay(&a.key, &a.key.id, json!(1)).unwrap_err().code,
            ErrorCode::UnknownPeer
        );
        assert_eq!(
            reg.relay(&a.key, &other.key.id, json!(1)).unwrap_err().code,
            ErrorCode::UnknownPeer
        );
    }

    #[test]
    fn passwords_are_set_by_the_first_joiner() {
        let mut reg = registry(16);
        reg.join(
            &join_req("r", "A", Some("pw"), None),
            TestConn(1),
            secrets("ta"),
        )
        .unwrap();
        let wrong = reg.join(
            &join_req("r", "B", Some("nope"), None),
            TestConn(2),
            secrets("tb"),
        );
        assert_eq!(wrong.unwrap_err().code, ErrorCode::BadPassword);
        let missing = reg.join(&join_req("r", "B", None, None), TestConn(2), secrets("tb"));
        assert_eq!(missing.unwrap_err().code, ErrorCode::BadPassword);
        assert!(
            reg.join(
                &join_req("r", "B", Some("pw"), None),
                TestConn(2),
                secrets("tb")
            )
            .is_ok()
        );
        // A password for a room without one is ignored.
        reg.join(
            &join_req("open", "A", None, None),
            TestConn(3),
            secrets("tc"),
        )
        .unwrap();
        assert!(
            reg.join(
                &join_req("open", "B", Some("x"), None),
                TestConn(4),
                secrets("td")
            )
            .is_ok()
        );
    }

    #[test]
    fn full_rooms_and_the_room_limit_refuse() {
        let mut reg = registry(2);
        reg.join(&join_req("r", "A", None, None), TestConn(1), secrets("t1"))
            .unwrap();
        reg.join(&join_req("r", "B", None, None), TestConn(2), secrets("t2"))
            .unwrap();
        let full = reg.join(&join_req("r", "C", None, None), TestConn(3), secrets("t3"));
        assert_eq!(full.unwrap_err().code, ErrorCode::RoomFull);
        reg.join(&join_req("s", "C", None, None), TestConn(3), secrets("t3"))
            .unwrap();
        let third_room = reg.join(&join_req("t", "D", None, None), TestConn(4), secrets("t4"));
        assert_eq!(third_room.unwrap_err().code, ErrorCode::RoomFull);
    }

    #[test]
    fn resume_in_grace_keeps_the_id_and_delivers_kept_signals() {
        let mut reg = registry(16);
        let now = Instant::now();
        let (a, b) = a_and_b(&mut reg);
        assert!(reg.detach(&a.key, 1, now));
        for i in 0..70 {
            assert!(reg.relay(&b.key, &a.key.id, json!(i)).unwrap().is_none());
        }
        assert!(reg.sweep(now + Duration::from_secs(29)).is_empty());
        let again = reg
            .join(
                &join_req("r", "A", None, Some("ta")),
                TestConn(3),
                secrets("ta2"),
            )
            .unwrap();
        assert_eq!(again.key, a.key);
        assert!(again.notify.is_empty(), "nobody hears of a resume");
        assert_eq!(again.replies.len(), 1 + PENDING_SIGNALS);
        assert_eq!(
            again.replies[1],
            ServerFrame::Signal {
                from: b.key.id.clone(),
                data: json!(0)
            }
        );
        // The grace timer of the old socket no longer applies.
        assert!(reg.sweep(now + Duration::from_secs(31)).is_empty());
        // A token works once.
        let reused = reg
            .join(
                &join_req("r", "A", None, Some("ta")),
                TestConn(4),
                secrets("ta3"),
            )
            .unwrap();
        assert_ne!(reused.key.id, a.key.id);
    }

    #[test]
    fn resume_of_an_open_socket_replaces_it_and_the_old_one_cannot_leave() {
        let mut reg = registry(16);
        let (a, b) = a_and_b(&mut reg);
        let again = reg
            .join(
                &join_req("r", "A", None, Some("ta")),
                TestConn(3),
                secrets("ta2"),
            )
            .unwrap();
        assert_eq!(again.replaced, Some(TestConn(1)));
        assert!(reg.leave(&a.key, 1).is_empty());
        assert!(!reg.detach(&a.key, 1, Instant::now()));
        let d = reg.relay(&b.key, &a.key.id, json!(1)).unwrap().unwrap();
        assert_eq!(d.to, TestConn(3));
    }

    #[test]
    fn grace_expiry_tells_the_others_and_frees_the_room() {
        let mut reg = registry(16);
        let now = Instant::now();
        let (a, b) = a_and_b(&mut reg);
        reg.detach(&a.key, 1, now);
        assert_eq!(reg.next_expiry(), Some(now + Duration::from_secs(30)));
        let gone = reg.sweep(now + Duration::from_secs(30));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].to, TestConn(2));
        assert_eq!(
            gone[0].frame,
            ServerFrame::PeerLeft {
                id: a.key.id.clone()
            }
        );
        let late = reg
            .join(
                &join_req("r", "A", None, Some("ta")),
                TestConn(5),
                secrets("x"),
            )
            .unwrap();
        assert_ne!(late.key.id, a.key.id, "an expired token gives a fresh id");
        reg.leave(&b.key, 2);
        reg.leave(&late.key, 5);
        assert_eq!(reg.counts(), (0, 0));
    }

    #[test]
    fn ids_are_never_reused() {
        let mut reg = registry(16);
        let mut seen = std::collections::HashSet::new();
        for i in 0..100 {
            let j = reg
                .join(
                    &join_req("r", "A", None, None),
                    TestConn(i),
                    secrets(&format!("t{i}")),
                )
                .unwrap();
            assert!(seen.insert(j.key.id.clone()));
            reg.leave(&j.key, i);
        }
    }

    #[test]
    fn a_room_taken_over_keeps_attached_sockets_and_its_password_and_waits_for_the_rest() {
        let mut old = registry(16);
        let now = Instant::now();
        let a = old
            .join(
                &join_req("r", "A", Some("pw"), None),
                TestConn(1),
                secrets("ta"),
            )
            .unwrap();
        let b = old
            .join(
                &join_req("r", "B", Some("pw"), None),
                TestConn(2),
                secrets("tb"),
            )
            .unwrap();
        assert_eq!(old.take_changed().len(), 1);
        let snapshot = old.snapshot("r", "old").unwrap();
        // Through the wire, as another server gets it.
        let snapshot: RoomSnapshot =
            serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();

        let mut new = Registry::<TestConn>::new(
            Limits {
                max_rooms: 2,
                max_room_peers: 16,
                resume_grace: Duration::from_secs(30),
            },
            "q".into(),
        );
        // A's socket survived the move (conn 1 on a live server), B's did not.
        new.restore(snapshot, now, 99, |socket| {
            (socket.conn == 1).then_some(TestConn(socket.conn))
        });
        assert!(new.holds(&a.key, 1));
        assert!(!new.holds(&b.key, 2));
        assert_eq!(
            new.relay(&a.key, &b.key.id, json!("kept"))
                .unwrap()
                .map(|d| d.to),
            None,
            "B waits in its grace period: the signal is kept"
        );

        // B resumes with its token: same id, the kept signal, and the password still holds.
        let refused = new.join(
            &join_req("r", "B", None, Some("tb")),
            TestConn(3),
            secrets("x"),
        );
        assert_eq!(refused.unwrap_err().code, ErrorCode::BadPassword);
        let back = new
            .join(
                &join_req("r", "B", Some("pw"), Some("tb")),
                TestConn(3),
                secrets("tb2"),
            )
            .unwrap();
        assert_eq!(back.key, b.key);
        assert!(back.notify.is_empty());
        assert_eq!(back.replies.len(), 2);

        // A member that never comes back leaves after the grace, heard once.
        assert!(new.detach(&a.key, 1, now));
        let left = new.sweep(now + Duration::from_secs(31));
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].to, TestConn(3));
    }

    #[test]
    fn reattach_needs_the_members_token_and_hands_over_kept_signals() {
        let mut reg = registry(16);
        let now = Instant::now();
        let (a, b) = a_and_b(&mut reg);
        assert!(reg.detach(&a.key, 1, now));
        reg.relay(&b.key, &a.key.id, json!(1)).unwrap();
        assert_eq!(
            reg.reattach(&a.key, "tb", TestConn(1)).unwrap_err().code,
            ErrorCode::NotJoined
        );
        let kept = reg.reattach(&a.key, "ta", TestConn(1)).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(reg.holds(&a.key, 1));
        assert!(
            reg.sweep(now + Duration::from_secs(31)).is_empty(),
            "no expiry"
        );
    }

    #[test]
    fn ids_carry_the_registrys_prefix() {
        let mut reg = Registry::<TestConn>::new(
            Limits {
                max_rooms: 2,
                max_room_peers: 16,
                resume_grace: Duration::from_secs(30),
            },
            "pab12-".into(),
        );
        let a = reg
            .join(&join_req("r", "A", None, None), TestConn(1), secrets("ta"))
            .unwrap();
        assert_eq!(a.key.id, "pab12-1");
    }
}
