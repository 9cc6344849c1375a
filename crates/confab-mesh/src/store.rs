//! What a peer keeps on disk: chat history with delivery states, the fingerprints of
//! verified peers, and unfinished file transfers. One SQLite file per install (beside
//! its identity); an in-memory one for a peer that keeps nothing.
//!
//! A message is written before it is sent, so a crash between typing and sending loses
//! nothing: it is still there, unsent, and goes out when its recipient's channel opens.
//! Peers are known by their DTLS fingerprint, which outlives server ids and restarts.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use confab_proto::ChatScope;

use crate::MeshError;

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
CREATE TABLE IF NOT EXISTS verified (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files_out (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files_in (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    dir TEXT NOT NULL
);
";

/// One message of the history, as the `history` event lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: String,
    /// Fingerprint of the writer; absent for this install's own messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub name: String,
    pub text: String,
    pub ts: u64,
    pub scope: ChatScope,
    /// For own messages: `sent` (waiting for acks) or `delivered` (every recipient acked);
    /// for others' messages: `received`.
    pub state: String,
}

/// A message this install wrote.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) id: &'a str,
    pub(crate) room: &'a str,
    /// The recipient's fingerprint for a direct message.
    pub(crate) direct_to: Option<&'a str>,
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
    pub(crate) ts: u64,
    pub(crate) json: &'a str,
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
}

#[derive(Debug)]
pub struct Store {
    db: Connection,
}

fn db_error(e: rusqlite::Error) -> MeshError {
    MeshError::Store(e.to_string())
}

impl Store {
    /// The store of an install, in `dir/history.sqlite3`.
    pub fn open_in(dir: &Path) -> Result<Self, MeshError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| MeshError::Store(format!("{}: {e}", dir.display())))?;
        Self::init(Connection::open(dir.join("history.sqlite3")).map_err(db_error)?)
    }

    /// A store that lasts as long as the process.
    pub fn in_memory() -> Result<Self, MeshError> {
        Self::init(Connection::open_in_memory().map_err(db_error)?)
    }

    fn init(db: Connection) -> Result<Self, MeshError> {
        db.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(Self { db })
    }

    /// Records an own message and whom it is for, before it is sent.
    pub(crate) fn record_sent(
        &self,
        message: &Outgoing<'_>,
        recipients: &[String],
    ) -> Result<(), MeshError> {
        let tx = self.db.unchecked_transaction().map_err(db_error)?;
        tx.execute(
            "INSERT OR IGNORE INTO messages VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7)",
            params![
                message.id,
                message.room,
                message.direct_to.unwrap_or(""),
                message.name,
                message.text,
                message.ts as i64,
                message.json
            ],
        )
        .map_err(db_error)?;
        for recipient in recipients {
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
                "INSERT OR IGNORE INTO messages VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '')",
                params![
                    message.id,
                    message.room,
                    conversation,
                    message.from,
                    message.name,
                    message.text,
                    message.ts as i64
                ],
            )
            .map_err(db_error)?;
        Ok(inserted == 1)
    }

    pub(crate) fn mark_acked(&self, id: &str, recipient: &str) -> Result<(), MeshError> {
        self.db
            .execute(
                "UPDATE deliveries SET acked = 1 WHERE id = ?1 AND recipient = ?2",
                params![id, recipient],
            )
            .map(|_| ())
            .map_err(db_error)
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

    /// A room's conversation (`peer` = None) or the one with a peer, oldest first.
    pub fn history(&self, room: &str, peer: Option<&str>) -> Result<Vec<HistoryEntry>, MeshError> {
        let mut statement = self
            .db
            .prepare(
                "SELECT m.id, m.sender, m.sender_name, m.text, m.ts, m.conversation,
                        (SELECT COUNT(*) FROM deliveries d WHERE d.id = m.id AND d.acked = 0),
                        (SELECT COUNT(*) FROM deliveries d WHERE d.id = m.id)
                 FROM messages m WHERE m.room = ?1 AND m.conversation = ?2 ORDER BY m.ts, m.rowid",
            )
            .map_err(db_error)?;
        let rows = statement
            .query_map(params![room, peer.unwrap_or("")], |row| {
                let sender: String = row.get(1)?;
                let conversation: String = row.get(5)?;
                let unacked: i64 = row.get(6)?;
                let recipients: i64 = row.get(7)?;
                let state = if !sender.is_empty() {
                    "received"
                } else if recipients > 0 && unacked == 0 {
                    "delivered"
                } else {
                    "sent"
                };
                Ok(HistoryEntry {
                    id: row.get(0)?,
                    from: (!sender.is_empty()).then_some(sender),
                    name: row.get(2)?,
                    text: row.get(3)?,
                    ts: row.get::<_, i64>(4)? as u64,
                    scope: if conversation.is_empty() {
                        ChatScope::Room
                    } else {
                        ChatScope::Direct
                    },
                    state: state.to_owned(),
                })
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
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
