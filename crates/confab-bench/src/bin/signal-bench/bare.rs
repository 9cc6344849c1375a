//! Bare nodes beside the cluster comparison: processes that do nothing but pass a signal
//! from one WebSocket client to another, alone or over NATS. A bare node (this binary
//! run with `--bare-node`) takes a client's first frame as its id and answers
//! `{"id": ...}`; after that a frame `TO DATA` goes to `TO` as `FROM DATA`: to a client of
//! its own directly, or else published on `bare.TO`, the subject the node holding `TO`
//! subscribed to for it. No rooms, no JSON on the relay path, no ordering, no resume.
//!
//! One bare node against two over one nats-server, in the same run as Confab's own
//! set-ups, shows what a crossing of the bus adds by itself on the machine: the
//! processes a forwarded signal passes through, with none of the cluster's own work.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The clients a node holds, by id: each one's queue of frames to write.
type Clients = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<String>>>>;

/// Serves bare clients on `listen` until killed; over `nats` when given.
pub async fn serve(listen: SocketAddr, nats: Option<String>) -> anyhow::Result<()> {
    let bus = match nats {
        Some(url) => Some(
            async_nats::connect(&url)
                .await
                .with_context(|| format!("cannot reach {url}"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let clients = Clients::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let (clients, bus) = (clients.clone(), bus.clone());
        tokio::spawn(async move {
            // A client that goes is simply gone: a bare node keeps nothing for it.
            let _ = session(stream, clients, bus).await;
        });
    }
}

async fn session(
    stream: TcpStream,
    clients: Clients,
    bus: Option<async_nats::Client>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    let id = loop {
        match ws.next().await.context("closed before its id")?? {
            Message::Text(text) => break text.as_str().to_owned(),
            _ => continue,
        }
    };
    let (tx, mut outbox) = mpsc::unbounded_channel();
    if let Some(bus) = &bus {
        let mut inbox = bus.subscribe(format!("bare.{id}")).await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(message) = inbox.next().await {
                let text = String::from_utf8_lossy(&message.payload).into_owned();
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        // The subscription is in place before the client may be sent to.
        bus.flush().await?;
    }
    lock(&clients).insert(id.clone(), tx);
    ws.send(Message::text(serde_json::json!({ "id": id }).to_string()))
        .await?;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                let Some((to, data)) = text.as_str().split_once(' ') else { continue };
                let relayed = format!("{id} {data}");
                let local = lock(&clients).get(to).cloned();
                match (local, &bus) {
                    (Some(their_outbox), _) => {
                        let _ = their_outbox.send(relayed);
                    }
                    (None, Some(bus)) => bus.publish(format!("bare.{to}"), relayed.into()).await?,
                    (None, None) => {}
                }
            }
            Some(text) = outbox.recv() => ws.send(Message::text(text)).await?,
        }
    }
    lock(&clients).remove(&id);
    Ok(())
}

fn lock(
    clients: &Clients,
) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<String>>> {
    // A poisoned map only means a session panicked while holding it; the map is whole.
    clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
