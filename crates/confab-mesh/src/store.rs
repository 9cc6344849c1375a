//! What a peer keeps on disk: chat history with delivery states, everyone met (contacts,
//! and who was in which room), the fingerprints of verified peers, and unfinished file
//! transfers. One SQLite file per install (beside its identity); an in-memory one for a
//! peer that keeps nothing.
//!
//! A message is written with its readers before it is sent, so a crash between typing and
//! sending loses nothing: it waits, `queued`, and goes out when a reader's channel opens.
//! Readers are DTLS fingerprints, which outlive server ids and restarts; a room message
//! typed when nobody was ever met in that room waits for whoever comes first.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use confab_proto::ChatScope;

use crate::MeshError;

pub use crate::api::{Author, HistoryEntry};

mod signed;
pub(crate) use signed::SignedMessage;

/// A delivery row's reader for a room message that nobody could be named for yet: the
/// first peer whose channel opens in that room takes it over.
const ANY_READER: &str = "*";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    -- the conversation: '' for the room, the other peer's fingerprint for a direct one
    conversation TEXT NOT NULL,
    -- who wrote it: '' for this install, else the sender's fingerprint
    sender TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (room, conversation, ts);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (id, recipient)
);
CREATE TABLE IF NOT EXISTS contacts (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    last_seen INTEGER NOT NULL
);
-- every name a contact has gone by, for the names it had before
CREATE TABLE IF NOT EXISTS contact_names (
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    last_used INTEGER NOT NULL,
    PRIMARY KEY (key, name)
);
CREATE TABLE IF NOT EXISTS members (
    room TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (room, key)
);
CREATE TABLE IF NOT EXISTS verified (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files_out (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certs (
    key TEXT PRIMARY KEY,
    der BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS files_in (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    dir TEXT NOT NULL
);
";

/// Whose messages a `history` answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A room's own conversation, by room name.
    Room(String),
    /// The direct conversation with a key.
    Direct(String),
}

/// Someone this install has met, as the `contacts` event lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub key: String,
    pub name: String,
    /// Names it went by before, the most recent first.
    #[serde(default)]
    pub earlier_names: Vec<String>,
    pub verified: bool,
    /// Unix ms.
    pub last_seen: u64,
}

/// A message this install wrote.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) id: &'a str,
    pub(crate) room: &'a str,
    /// The recipient's fingerprint for a direct message.
    pub(crate) direct_to: Option<&'a str>,
    /// A room message (a direct one whose recipient's key is not known yet has neither).
    pub(crate) for_room: bool,
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
    pub(crate) ts: u64,
    pub(crate) json: &'a str,
    /// The signature of a room message (history/signed.rs).
    pub(crate) sig: Option<&'a str>,
}

/// A message another peer wrote.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub(crate) id: &'a str,
    pub(crate) room: &'a str,
    pub(crate) from: &'a str,
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
    pub(crate) ts: u64,
    pub(crate) scope: ChatScope,
    /// The author's signature, when it checked out: the message may be passed on.
    pub(crate) sig: Option<&'a str>,
}

#[derive(Debug)]
pub struct Store {
    db: Connection,
}

fn db_error(e: rusqlite::Error) -> MeshError {
    MeshError::Store(e)
}

impl Store {
    /// The store of an install, in `dir/history.sqlite3`.
    pub fn open_in(dir: &Path) -> Result<Self, MeshError> {
        std::fs::create_dir_all(dir).map_err(|source| MeshError::StoreFolder {
            path: dir.to_owned(),
            source,
        })?;
        Self::init(Connection::open(dir.join("history.sqlite3")).map_err(db_error)?)
    }

    /// A store that lasts as long as the process.
    pub fn in_memory() -> Result<Self, MeshError> {
        Self::init(Connection::open_in_memory().map_err(db_error)?)
    }

    fn init(db: Connection) -> Result<Self, MeshError> {
        db.execute_batch(SCHEMA).map_err(db_error)?;
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(db_error)?;
        if version < 1 {
            // Version 1 tells a message that reached a reader from one still queued.
            let has_sent = db.prepare("SELECT sent FROM deliveries LIMIT 0").is_ok();
            if !has_sent {
                db.execute_batch(
                    "ALTER TABLE deliveries ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;
                     UPDATE deliveries SET sent = 1;",
                )
                .map_err(db_error)?;
            }
            db.execute_batch("PRAGMA user_version = 1")
                .map_err(db_error)?;
        }
        if version < 2 {
            // Version 2 keeps each room message's signature, for passing it on.
            db.execute_batch(
                "ALTER TABLE messages ADD COLUMN sig TEXT;
                 CREATE INDEX IF NOT EXISTS signed_by_room ON messages (room, ts)
                     WHERE conversation = '' AND sig IS NOT NULL;
                 PRAGMA user_version = 2;",
            )
            .map_err(db_error)?;
        }
        if version < 3 {
            // Version 3 keeps the names contacts went by: start with the one each has.
            db.execute_batch(
                "INSERT OR IGNORE INTO contact_names SELECT key, name, last_seen FROM contacts;
                 PRAGMA user_version = 3;",
            )
            .map_err(db_error)?;
        }
        Ok(Self { db })
    }

    /// Records an own message and its readers (fingerprints), before it is sent. A room
    /// message with no reader known waits for the first peer met in that room.
    pub(crate) fn record_sent(
        &self,
        message: &Outgoing<'_>,
        recipients: &[String],
    ) -> Result<(), MeshError> {
        let tx = self.db.unchecked_transaction().map_err(db_error)?;
        tx.execute(
            "INSERT OR IGNORE INTO messages
                 (id, room, conversation, sender, sender_name, text, ts, json, sig)
             VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7, ?8)",
            params![
                message.id,
                message.room,
                message.direct_to.unwrap_or(""),
                message.name,
                message.text,
                message.ts as i64,
                message.json,
                message.sig
            ],
        )
        .map_err(db_error)?;
        let anyone = [ANY_READER.to_owned()];
        let readers = if recipients.is_empty() && message.for_room {
            &anyone[..]
        } else {
            recipients
        };
        for recipient in readers {
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (id, recipient) VALUES (?1, ?2)",
                params![message.id, recipient],
            )
            .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    /// Records a received message; true the first time its id is seen.
    pub(crate) fn record_received(&self, message: &Incoming<'_>) -> Result<bool, MeshError> {
        let conversation = match message.scope {
            ChatScope::Room => "",
            ChatScope::Direct => message.from,
        };
        let inserted = self
            .db
            .execute(
                "INSERT OR IGNORE INTO messages
                     (id, room, conversation, sender, sender_name, text, ts, json, sig)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?8)",
                params![
                    message.id,
                    message.room,
                    conversation,
                    message.from,
                    message.name,
                    message.text,
                    message.ts as i64,
                    message.sig
                ],
            )
            .map_err(db_error)?;
        Ok(inserted == 1)
    }

    /// The message went out on a reader's channel.
    pub(crate) fn mark_sent(&self, id: &str, recipient: &str) -> Result<(), MeshError> {
        self.db
            .execute(
                "UPDATE deliveries SET sent = 1 WHERE id = ?1 AND recipient = ?2",
                params![id, recipient],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    pub(crate) fn mark_acked(&self, id: &str, recipient: &str) -> Result<(), MeshError> {
        self.db
            .execute(
                "UPDATE deliveries SET acked = 1, sent = 1 WHERE id = ?1 AND recipient = ?2",
                params![id, recipient],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    /// The room messages that waited for anyone become this reader's.
    pub(crate) fn claim_waiting_for_anyone(
        &self,
        room: &str,
        recipient: &str,
    ) -> Result<(), MeshError> {
        let tx = self.db.unchecked_transaction().map_err(db_error)?;
        tx.execute(
            "INSERT OR IGNORE INTO deliveries (id, recipient)
             SELECT d.id, ?2 FROM deliveries d JOIN messages m ON m.id = d.id
             WHERE d.recipient = ?3 AND m.room = ?1",
            params![room, recipient, ANY_READER],
        )
        .map_err(db_error)?;
        tx.execute(
            "DELETE FROM deliveries WHERE recipient = ?2
             AND id IN (SELECT id FROM messages WHERE room = ?1)",
            params![room, ANY_READER],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    /// Own messages a recipient has not acknowledged, oldest first: (id, JSON to resend).
    pub(crate) fn unacked_for(&self, recipient: &str) -> Result<Vec<(String, String)>, MeshError> {
        let mut statement = self
            .db
            .prepare(
                "SELECT m.id, m.json FROM deliveries d JOIN messages m ON m.id = d.id
                 WHERE d.recipient = ?1 AND d.acked = 0 ORDER BY m.ts",
            )
            .map_err(db_error)?;
        let rows = statement
            .query_map(params![recipient], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    /// One conversation, oldest first: a room's, or the direct one with a key (in any
    /// room); the last `limit` messages when given. `own_key` is the author key of this
    /// install's messages.
    pub fn history(
        &self,
        conversation: &Conversation,
        own_key: &str,
        limit: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, MeshError> {
        let (filter, value) = match conversation {
            Conversation::Room(room) => ("m.room = ?1 AND m.conversation = ''", room.as_str()),
            Conversation::Direct(key) => ("m.conversation = ?1", key.as_str()),
        };
        let sql = format!(
            "SELECT * FROM (
                SELECT m.id, m.sender, m.sender_name, m.text, m.ts, m.conversation,
                       (SELECT COUNT(*) FROM deliveries d WHERE d.id = m.id AND d.acked = 0),
                       (SELECT COUNT(*) FROM deliveries d WHERE d.id = m.id AND d.sent = 1),
                       m.rowid AS seq
                FROM messages m WHERE {filter} ORDER BY m.ts DESC, m.rowid DESC LIMIT ?2
             ) ORDER BY ts, seq"
        );
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut statement = self.db.prepare(&sql).map_err(db_error)?;
        let rows = statement
            .query_map(params![value, limit], |row| {
                let sender: String = row.get(1)?;
                let name: String = row.get(2)?;
                let conversation: String = row.get(5)?;
                let unacked: i64 = row.get(6)?;
                let reached: i64 = row.get(7)?;
                let state = if !sender.is_empty() {
                    "received"
                } else if reached == 0 {
                    "queued"
                } else if unacked == 0 {
                    "delivered"
                } else {
                    "sent"
                };
                let author = Author {
                    name: name.clone(),
                    key: if sender.is_empty() {
                        own_key.to_owned()
                    } else {
                        sender.clone()
                    },
                };
                Ok(HistoryEntry {
                    id: row.get(0)?,
                    from: (!sender.is_empty()).then_some(sender),
                    name,
                    text: row.get(3)?,
                    ts: row.get::<_, i64>(4)? as u64,
                    scope: if conversation.is_empty() {
                        ChatScope::Room
                    } else {
                        ChatScope::Direct
                    },
                    author,
                    state: state.to_owned(),
                })
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    /// A peer was met under this name in this room: a contact, and a reader of the room's
    /// messages from now on.
    pub(crate) fn met(&self, key: &str, name: &str, room: &str) -> Result<(), MeshError> {
        let tx = self.db.unchecked_transaction().map_err(db_error)?;
        let now = crate::api::unix_ms() as i64;
        tx.execute(
            "INSERT INTO contacts VALUES (?1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET name = ?2, last_seen = ?3",
            params![key, name, now],
        )
        .map_err(db_error)?;
        tx.execute(
            "INSERT INTO contact_names VALUES (?1, ?2, ?3)
             ON CONFLICT(key, name) DO UPDATE SET last_used = ?3",
            params![key, name, now],
        )
        .map_err(db_error)?;
        tx.execute(
            "INSERT OR IGNORE INTO members VALUES (?1, ?2)",
            params![room, key],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    /// A contact was last seen now (its connection ended).
    pub(crate) fn seen(&self, key: &str) -> Result<(), MeshError> {
        self.db
            .execute(
                "UPDATE contacts SET last_seen = ?2 WHERE key = ?1",
                params![key, crate::api::unix_ms() as i64],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    /// Everyone ever met in a room, by key.
    pub(crate) fn members(&self, room: &str) -> Result<Vec<String>, MeshError> {
        let mut statement = self
            .db
            .prepare("SELECT key FROM members WHERE room = ?1")
            .map_err(db_error)?;
        let rows = statement
            .query_map(params![room], |row| row.get(0))
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    /// Everyone ever met, most recently seen first.
    pub fn contacts(&self) -> Result<Vec<Contact>, MeshError> {
        let mut statement = self
            .db
            .prepare(
                "SELECT c.key, c.name, c.last_seen,
                        EXISTS (SELECT 1 FROM verified v WHERE v.fingerprint = c.key),
                        (SELECT json_group_array(name) FROM (
                            SELECT n.name FROM contact_names n
                            WHERE n.key = c.key AND n.name <> c.name ORDER BY n.last_used DESC))
                 FROM contacts c ORDER BY c.last_seen DESC",
            )
            .map_err(db_error)?;
        let rows = statement
            .query_map([], |row| {
                let earlier: String = row.get(4)?;
                Ok(Contact {
                    key: row.get(0)?,
                    name: row.get(1)?,
                    earlier_names: serde_json::from_str(&earlier).unwrap_or_default(),
                    last_seen: row.get::<_, i64>(2)? as u64,
                    verified: row.get(3)?,
                })
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    /// Whether this name was met before with another key than this one.
    pub(crate) fn name_known_with_other_key(
        &self,
        name: &str,
        key: &str,
    ) -> Result<bool, MeshError> {
        self.db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM contacts WHERE name = ?1 AND key <> ?2)",
                params![name, key],
                |row| row.get(0),
            )
            .map_err(db_error)
    }

    pub(crate) fn verify(&self, name: &str, fingerprint: &str) -> Result<(), MeshError> {
        self.db
            .execute(
                "INSERT INTO verified VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET fingerprint = ?2",
                params![name, fingerprint],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    /// The fingerprint a name had when the user verified it.
    pub(crate) fn verified_fingerprint(&self, name: &str) -> Result<Option<String>, MeshError> {
        self.db
            .query_row(
                "SELECT fingerprint FROM verified WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)
    }

    pub(crate) fn file_offered(
        &self,
        id: &str,
        recipient: &str,
        path: &Path,
    ) -> Result<(), MeshError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO files_out VALUES (?1, ?2, ?3)",
                params![id, recipient, path.display().to_string()],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    /// Files offered to a recipient that it has not confirmed yet: (id, path).
    pub(crate) fn files_unfinished_for(
        &self,
        recipient: &str,
    ) -> Result<Vec<(String, PathBuf)>, MeshError> {
        let mut statement = self
            .db
            .prepare("SELECT id, path FROM files_out WHERE recipient = ?1")
            .map_err(db_error)?;
        let rows = statement
            .query_map(params![recipient], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    PathBuf::from(row.get::<_, String>(1)?),
                ))
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    pub(crate) fn file_accepted(
        &self,
        id: &str,
        sender: &str,
        dir: &Path,
    ) -> Result<(), MeshError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO files_in VALUES (?1, ?2, ?3)",
                params![id, sender, dir.display().to_string()],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    /// Where an earlier accept of this file from this sender was going.
    pub(crate) fn accepted_dir(
        &self,
        id: &str,
        sender: &str,
    ) -> Result<Option<PathBuf>, MeshError> {
        self.db
            .query_row(
                "SELECT dir FROM files_in WHERE id = ?1 AND sender = ?2",
                params![id, sender],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map(|dir| dir.map(PathBuf::from))
            .map_err(db_error)
    }

    /// A transfer is over, whichever way it went.
    pub(crate) fn file_finished(&self, id: &str) -> Result<(), MeshError> {
        self.db
            .execute("DELETE FROM files_out WHERE id = ?1", params![id])
            .map_err(db_error)?;
        self.db
            .execute("DELETE FROM files_in WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn own() -> Author {
        Author {
            name: "Me".into(),
            key: "me-key".into(),
        }
    }

    fn room_message<'a>(id: &'a str, ts: u64) -> Outgoing<'a> {
        Outgoing {
            id,
            room: "r",
            direct_to: None,
            for_room: true,
            name: "Me",
            text: "hello",
            ts,
            json: "{}",
            sig: None,
        }
    }

    fn states(store: &Store) -> Vec<String> {
        let room = Conversation::Room("r".into());
        let entries = store.history(&room, &own().key, None).unwrap();
        entries.into_iter().map(|e| e.state).collect()
    }

    #[test]
    fn a_room_message_with_no_reader_waits_for_the_first_one_then_is_delivered() {
        let store = Store::in_memory().unwrap();
        store.record_sent(&room_message("m1", 1), &[]).unwrap();
        assert_eq!(states(&store), ["queued"]);
        store.claim_waiting_for_anyone("r", "bob").unwrap();
        let pending = store.unacked_for("bob").unwrap();
        assert_eq!(pending.len(), 1);
        store.mark_sent("m1", "bob").unwrap();
        assert_eq!(states(&store), ["sent"]);
        store.mark_acked("m1", "bob").unwrap();
        assert_eq!(states(&store), ["delivered"]);
        // Taken once: a second comer finds nothing waiting for anyone.
        store.claim_waiting_for_anyone("r", "carol").unwrap();
        assert!(store.unacked_for("carol").unwrap().is_empty());
    }

    #[test]
    fn history_keeps_the_last_messages_in_time_order_with_their_authors() {
        let store = Store::in_memory().unwrap();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            store
                .record_sent(&room_message(id, i as u64), &["bob".into()])
                .unwrap();
        }
        let room = Conversation::Room("r".into());
        let last_two = store.history(&room, &own().key, Some(2)).unwrap();
        let ids: Vec<&str> = last_two.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(last_two[0].author, own());
    }

    #[test]
    fn a_store_from_before_delivery_states_keeps_its_messages_as_sent() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE deliveries (id TEXT NOT NULL, recipient TEXT NOT NULL,
                 acked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id, recipient));
             INSERT INTO deliveries VALUES ('m1', 'bob', 0);",
        )
        .unwrap();
        let store = Store::init(db).unwrap();
        store
            .db
            .execute(
                "INSERT INTO messages (id, room, conversation, sender, sender_name, text, ts, json)
                 VALUES ('m1', 'r', '', '', 'Me', 'hello', 1, '{}')",
                [],
            )
            .unwrap();
        assert_eq!(states(&store), ["sent"]);
    }

    #[test]
    fn contacts_and_names_met_with_other_keys() {
        let store = Store::in_memory().unwrap();
        store.met("k1", "Ada", "r").unwrap();
        assert!(!store.name_known_with_other_key("Ada", "k1").unwrap());
        assert!(store.name_known_with_other_key("Ada", "k2").unwrap());
        store.verify("Ada", "k1").unwrap();
        let contacts = store.contacts().unwrap();
        assert_eq!(contacts.len(), 1);
        assert!(contacts[0].verified);
        assert_eq!(store.members("r").unwrap(), ["k1"]);
        assert!(contacts[0].earlier_names.is_empty());
    }

    #[test]
    fn a_contact_keeps_the_names_it_went_by() {
        let store = Store::in_memory().unwrap();
        store.met("k1", "Ada", "r").unwrap();
        store.met("k1", "Ada L.", "r").unwrap();
        store.met("k1", "Ada L.", "r").unwrap();
        let contacts = store.contacts().unwrap();
        assert_eq!(contacts[0].name, "Ada L.");
        assert_eq!(contacts[0].earlier_names, ["Ada"]);
    }
}
