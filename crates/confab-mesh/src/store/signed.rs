//! The signed part of each room's history: what this install can pass on to others, and
//! the authors' certificates that prove it.

use rusqlite::{OptionalExtension, params};

use confab_proto::HistoryBound;

use super::{Store, db_error};
use crate::MeshError;

/// A room's history is reconciled over its last 7 days or last 5,000 messages, whichever
/// holds fewer.
const HISTORY_MS: u64 = 7 * 24 * 60 * 60 * 1000;
const HISTORY_MESSAGES: i64 = 5000;

/// A room message as its author wrote and signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedMessage {
    pub(crate) id: String,
    pub(crate) ts: u64,
    pub(crate) name: String,
    pub(crate) text: String,
    /// The author's key.
    pub(crate) author: String,
    pub(crate) sig: String,
}

impl Store {
    /// Where the history this install offers for a room starts (unix ms).
    pub(crate) fn history_start(&self, room: &str, now_ms: u64) -> Result<u64, MeshError> {
        let week_ago = now_ms.saturating_sub(HISTORY_MS);
        let oldest_kept: Option<i64> = self
            .db
            .query_row(
                "SELECT ts FROM messages WHERE room = ?1 AND conversation = '' AND sig IS NOT NULL
                 ORDER BY ts DESC, id DESC LIMIT 1 OFFSET ?2",
                params![room, HISTORY_MESSAGES - 1],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)?;
        Ok(oldest_kept.map_or(week_ago, |ts| week_ago.max(ts as u64)))
    }

    /// The signed room messages from `since` on, by (time, id).
    pub(crate) fn signed_keys(
        &self,
        room: &str,
        since: u64,
    ) -> Result<Vec<HistoryBound>, MeshError> {
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT ts, id FROM messages
                 WHERE room = ?1 AND conversation = '' AND sig IS NOT NULL AND ts >= ?2
                 ORDER BY ts, id",
            )
            .map_err(db_error)?;
        let rows = statement
            .query_map(params![room, since as i64], |row| {
                Ok(HistoryBound {
                    ts: row.get::<_, i64>(0)? as u64,
                    id: row.get(1)?,
                })
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    /// A signed room message; `own_key` is the author of this install's own.
    pub(crate) fn signed_message(
        &self,
        room: &str,
        id: &str,
        own_key: &str,
    ) -> Result<Option<SignedMessage>, MeshError> {
        self.db
            .prepare_cached(
                "SELECT id, ts, sender_name, text, sender, sig FROM messages
                 WHERE id = ?1 AND room = ?2 AND conversation = '' AND sig IS NOT NULL",
            )
            .map_err(db_error)?
            .query_row(params![id, room], |row| {
                let sender: String = row.get(4)?;
                Ok(SignedMessage {
                    id: row.get(0)?,
                    ts: row.get::<_, i64>(1)? as u64,
                    name: row.get(2)?,
                    text: row.get(3)?,
                    author: if sender.is_empty() {
                        own_key.to_owned()
                    } else {
                        sender
                    },
                    sig: row.get(5)?,
                })
            })
            .optional()
            .map_err(db_error)
    }

    /// Whether a message with this id is held, signed or not.
    pub(crate) fn holds(&self, id: &str) -> Result<bool, MeshError> {
        self.db
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1)")
            .map_err(db_error)?
            .query_row(params![id], |row| row.get(0))
            .map_err(db_error)
    }

    /// Records room messages that came by history (their signatures checked), in one
    /// transaction; for each, true the first time its id is seen.
    pub(crate) fn record_history(
        &self,
        room: &str,
        messages: &[SignedMessage],
    ) -> Result<Vec<bool>, MeshError> {
        let tx = self.db.unchecked_transaction().map_err(db_error)?;
        let mut first = Vec::with_capacity(messages.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO messages
                         (id, room, conversation, sender, sender_name, text, ts, json, sig)
                     VALUES (?1, ?2, '', ?3, ?4, ?5, ?6, '', ?7)",
                )
                .map_err(db_error)?;
            for message in messages {
                let inserted = insert
                    .execute(params![
                        message.id,
                        room,
                        message.author,
                        message.name,
                        message.text,
                        message.ts as i64,
                        message.sig
                    ])
                    .map_err(db_error)?;
                first.push(inserted == 1);
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(first)
    }

    /// Keeps an author's certificate (DER), to pass on with its messages.
    pub(crate) fn save_cert(&self, key: &str, der: &[u8]) -> Result<(), MeshError> {
        self.db
            .prepare_cached("INSERT OR IGNORE INTO certs VALUES (?1, ?2)")
            .map_err(db_error)?
            .execute(params![key, der])
            .map(|_| ())
            .map_err(db_error)
    }

    /// An author's certificate (DER), when known.
    pub(crate) fn cert(&self, key: &str) -> Result<Option<Vec<u8>>, MeshError> {
        self.db
            .prepare_cached("SELECT der FROM certs WHERE key = ?1")
            .map_err(db_error)?
            .query_row(params![key], |row| row.get(0))
            .optional()
            .map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message(id: &str, ts: u64) -> SignedMessage {
        SignedMessage {
            id: id.into(),
            ts,
            name: "Ada".into(),
            text: format!("text of {id}"),
            author: "AA:BB".into(),
            sig: "c2ln".into(),
        }
    }

    #[test]
    fn history_is_kept_once_and_read_back_in_order() {
        let store = Store::in_memory().unwrap();
        let first = store
            .record_history(
                "lobby",
                &[message("b", 20), message("a", 10), message("a", 10)],
            )
            .unwrap();
        assert_eq!(first, [true, true, false]);
        store.record_history("other", &[message("c", 15)]).unwrap();
        let keys = store.signed_keys("lobby", 0).unwrap();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(store.signed_keys("lobby", 11).unwrap().len(), 1);
        assert_eq!(
            store.signed_message("lobby", "a", "OWN").unwrap(),
            Some(message("a", 10))
        );
        assert_eq!(store.signed_message("other", "a", "OWN").unwrap(), None);
        assert!(store.holds("c").unwrap());
    }

    #[test]
    fn the_history_offered_is_a_week_or_the_last_5000_whichever_is_less() {
        let store = Store::in_memory().unwrap();
        let now = 100 * HISTORY_MS;
        assert_eq!(store.history_start("lobby", now).unwrap(), now - HISTORY_MS);
        let history: Vec<SignedMessage> = (0..HISTORY_MESSAGES as u64 + 10)
            .map(|i| message(&format!("m{i}"), now - 1000 + i))
            .collect();
        store.record_history("lobby", &history).unwrap();
        // The 5,000th newest is the 11th oldest.
        assert_eq!(store.history_start("lobby", now).unwrap(), now - 1000 + 10);
    }

    #[test]
    fn certificates_are_kept_by_key() {
        let store = Store::in_memory().unwrap();
        assert_eq!(store.cert("K").unwrap(), None);
        store.save_cert("K", b"der").unwrap();
        assert_eq!(store.cert("K").unwrap(), Some(b"der".to_vec()));
    }
}
