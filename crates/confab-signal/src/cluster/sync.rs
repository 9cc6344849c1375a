//! A server coming up learns every room the others own or know of, so that it neither
//! creates a room that exists nor misses one it should take over.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::Message;
use futures_util::StreamExt;
use tokio::time::sleep;
use tracing::{info, warn};

use super::{ClaimMessage, Cluster, Heartbeat, SyncPart, wire};
use crate::shared::Shared;

/// How long a server coming up listens for the others before it asks them for rooms.
const LISTEN_BEFORE_SYNC: Duration = Duration::from_millis(600);
/// How long it waits for their answers.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);
/// Claims per part of a sync answer, well under NATS's 1 MiB message limit.
const SYNC_PART: usize = 200;

impl Cluster {
    /// Every room this server owns, as the others need it to take one over.
    pub(super) fn own_claims(&self, shared: &Shared) -> Vec<ClaimMessage> {
        let registry = shared.lock();
        registry
            .room_names()
            .into_iter()
            .filter_map(|room| {
                registry
                    .snapshot(&room, &self.me)
                    .map(|snapshot| ClaimMessage {
                        room,
                        owner: self.me.to_string(),
                        snapshot: Some(snapshot),
                    })
            })
            .collect()
    }

    /// Asks the others for every room they know, so that this server, new to the
    /// cluster, neither creates a room that exists nor misses one it should take over.
    pub(crate) async fn sync(&self) {
        sleep(LISTEN_BEFORE_SYNC).await;
        let inbox = self.client.new_inbox();
        let Ok(mut answers) = self.client.subscribe(inbox.clone()).await else {
            warn!("cannot ask the cluster for its rooms");
            return;
        };
        let Ok(payload) = serde_json::to_vec(&Heartbeat::of(&self.me)) else {
            return;
        };
        if self
            .client
            .publish_with_reply(wire::SYNC, inbox, payload.into())
            .await
            .is_err()
        {
            warn!("cannot ask the cluster for its rooms");
            return;
        }
        let mut waiting: HashSet<String> = self.ring().alive().map(str::to_owned).collect();
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
        while !waiting.is_empty() {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await else {
                warn!(
                    missing = waiting.len(),
                    "some servers did not tell their rooms in time"
                );
                break;
            };
            let Ok(part) = serde_json::from_slice::<SyncPart>(&message.payload) else {
                continue;
            };
            let mut ring = self.ring();
            for claim in part.claims {
                ring.claim(&claim.room, &claim.owner, claim.snapshot);
            }
            if part.done {
                waiting.remove(&part.node);
            }
        }
        let rooms = self.ring().claims().count();
        info!(rooms, "learnt the cluster's rooms");
    }

    /// Tells a server coming up every room this one owns or knows of.
    pub(super) async fn answer_sync(&self, shared: &Shared, message: &Message) {
        let Some(reply_to) = &message.reply else {
            return;
        };
        match serde_json::from_slice::<Heartbeat>(&message.payload) {
            Ok(asker) if asker.node != *self.me => {}
            _ => return,
        }
        let mut claims = self.own_claims(shared);
        claims.extend(self.ring().claims().map(|(room, claim)| ClaimMessage {
            room: room.to_owned(),
            owner: claim.owner.clone(),
            snapshot: Some(claim.snapshot.clone()),
        }));
        let mut parts: Vec<SyncPart> = Vec::new();
        while !claims.is_empty() || parts.is_empty() {
            let rest = claims.split_off(claims.len().min(SYNC_PART));
            parts.push(SyncPart {
                node: self.me.to_string(),
                claims: std::mem::replace(&mut claims, rest),
                done: false,
            });
        }
        if let Some(last) = parts.last_mut() {
            last.done = true;
        }
        for part in parts {
            if let Ok(payload) = serde_json::to_vec(&part) {
                let _ = self.client.publish(reply_to.clone(), payload.into()).await;
            }
        }
    }
}
