//! One task per WebSocket: reads the client's frames, applies the limits, asks the
//! registry, and writes what other sockets deliver to it.
//!
//! Frames for this socket arrive on a bounded queue. When a reader is too slow to drain
//! it, the socket is dropped (its id waits for a resume) rather than the queue growing:
//! memory per socket stays bounded whatever a client does.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use confab_proto::{ClientFrame, ErrorCode, Join, PROTOCOL_VERSION, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval_at, sleep, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::ice::Reached;
use crate::rate_limit::TokenBucket;
use crate::registry::{ConnId, MemberKey};
use crate::rooms::RoomError;
use crate::shared::Shared;

/// Frames waiting for one socket. Enough for a burst of negotiation with a full room;
/// a reader that lets this many pile up is not keeping up.
const OUTBOX_FRAMES: usize = 256;
/// Frames written before one flush, so a busy socket makes few syscalls.
const WRITE_BATCH: usize = 64;
/// A socket that cannot take a write for this long is treated as dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket gets to answer our close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Error frames a socket may earn before it is closed for abuse (1008), refilled slowly.
const ABUSE_BURST: f64 = 30.0;
const ABUSE_RATE: f64 = 3.0;

/// What the registry and other sessions hold of this socket.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    id: ConnId,
    outbox: mpsc::Sender<Utf8Bytes>,
    kick: Arc<Kick>,
}

#[derive(Debug, Default)]
struct Kick {
    reason: OnceLock<KickReason>,
    fired: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
enum KickReason {
    /// A resume on another socket took this socket's id.
    Replaced,
    /// The outbox overflowed: the client does not read fast enough.
    TooSlow,
    /// Its room moved to another server of the cluster without it: the client resumes.
    Lost,
}

impl ConnHandle {
    pub(crate) fn conn_id(&self) -> ConnId {
        self.id
    }

    /// A resume on another socket took this socket's id: it is closed.
    pub(crate) fn replaced(&self) {
        self.kick(KickReason::Replaced);
    }

    /// The socket is dropped without a close frame, so that its client reconnects.
    pub(crate) fn lost(&self) {
        self.kick(KickReason::Lost);
    }

    /// Queues a frame without waiting. Returns false if it could not be queued.
    pub(crate) fn deliver(&self, frame: &ServerFrame) -> bool {
        self.deliver_json(frame.to_json())
    }

    /// Queues a frame already encoded (as another server of the cluster sent it).
    pub(crate) fn deliver_json(&self, json: String) -> bool {
        match self.outbox.try_send(Utf8Bytes::from(json)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick(KickReason::TooSlow);
                false
            }
            // The session is ending; the registry hears of it from the session itself.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn kick(&self, reason: KickReason) {
        let _ = self.kick.reason.set(reason);
        self.kick.fired.cancel();
    }
}

/// How a session ends: what the room hears, then the close frame the client gets.
struct Exit {
    end: End,
    close: Option<(CloseCode, &'static str)>,
}

impl Exit {
    const DROPPED: Exit = Exit {
        end: End::Dropped,
        close: None,
    };

    fn closing(end: End, code: CloseCode, reason: &'static str) -> Self {
        Self {
            end,
            close: Some((code, reason)),
        }
    }
}

/// How a session ended, which decides what the room hears.
enum End {
    /// Left, closed cleanly, or closed by the server: gone for everyone at once.
    Left,
    /// Dropped without a close frame (or went silent): the id waits for a resume.
    Dropped,
    /// Another socket resumed this id, or the whole server is stopping: the room hears nothing.
    Superseded,
}

struct Session<S> {
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    conn: ConnHandle,
    /// The server address the client reached, for the built-in relay's entry.
    reached: Option<Reached>,
    member: Option<MemberKey>,
    /// Signals relayed so far: numbers them for the room's owner in a cluster.
    relays: u64,
    rate: TokenBucket,
    abuse: TokenBucket,
    last_heard: Instant,
}

/// Serves one upgraded WebSocket until it ends.
pub(crate) async fn run<S>(ws: WebSocketStream<S>, reached: Option<Reached>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (outbox, mut inbox) = mpsc::channel(OUTBOX_FRAMES);
    let now = Instant::now();
    let conn = ConnHandle {
        id: shared.next_conn_id(),
        outbox,
        kick: Arc::default(),
    };
    let rate = TokenBucket::new(shared.config.rate, shared.config.burst(), now);
    let mut session = Session {
        ws,
        shared,
        conn,
        reached,
        member: None,
        relays: 0,
        rate,
        abuse: TokenBucket::new(ABUSE_RATE, ABUSE_BURST, now),
        last_heard: now,
    };
    debug!(conn = session.conn.id, "socket open");
    let exit = session.serve(&mut inbox).await;
    // The room hears first, so a leave is announced at once, not after the close handshake.
    session.finish(&exit.end).await;
    if let Some((code, reason)) = exit.close {
        session.close(code, reason).await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn serve(&mut self, inbox: &mut mpsc::Receiver<Utf8Bytes>) -> Exit {
        let every = self.shared.config.ping_interval;
        let mut ping = interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let join_deadline = sleep(self.shared.config.join_timeout);
        tokio::pin!(join_deadline);
        let shutdown = self.shared.shutdown.clone();
        let kicked = self.conn.kick.fired.clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    return Exit::closing(End::Superseded, CloseCode::Away, "server shutting down");
                }
                () = kicked.cancelled() => return self.on_kick(),
                () = &mut join_deadline, if self.member.is_none() => {
                    self.refuse(ErrorCode::NotJoined, "no join within the join timeout").await;
                    return Exit::closing(End::Left, CloseCode::Policy, "join timeout");
                }
                Some(message) = inbox.recv() => {
                    if !self.forward(message, inbox).await {
                        return Exit::DROPPED;
                    }
                }
                _ = ping.tick() => {
                    if self.last_heard.elapsed() >= every * 2 {
                        debug!(conn = self.conn.id, "silent for two ping intervals: dropped");
                        return Exit::DROPPED;
                    }
                    if !self.send(Message::Ping(Bytes::new())).await {
                        return Exit::DROPPED;
                    }
                }
                incoming = self.ws.next() => match incoming {
                    Some(Ok(message)) => {
                        self.last_heard = Instant::now();
                        if let Some(exit) = self.on_message(message).await {
                            return exit;
                        }
                    }
                    Some(Err(WsError::Capacity(e))) => {
                        debug!(conn = self.conn.id, "frame over the limit: {e}");
                        let limit = self.shared.config.max_frame;
                        self.refuse(ErrorCode::TooLarge, &format!("frames are limited to {limit} bytes")).await;
                        return Exit::closing(End::Left, CloseCode::Size, "frame too large");
                    }
                    Some(Err(e)) => {
                        debug!(conn = self.conn.id, "socket error: {e}");
                        return Exit::DROPPED;
                    }
                    None => return Exit::DROPPED,
                },
            }
        }
    }

    fn on_kick(&self) -> Exit {
        match self.conn.kick.reason.get() {
            Some(KickReason::Replaced) => Exit::closing(
                End::Superseded,
                CloseCode::Normal,
                "resumed on another socket",
            ),
            // Not reading, so a close frame would only queue behind the backlog.
            Some(KickReason::TooSlow) | None => {
                debug!(conn = self.conn.id, "outbox full: dropped as too slow");
                Exit::DROPPED
            }
            Some(KickReason::Lost) => {
                debug!(conn = self.conn.id, "its room moved without it: dropped");
                Exit::DROPPED
            }
        }
    }

    /// Writes one queued frame and whatever else is waiting, then flushes once.
    async fn forward(&mut self, first: Utf8Bytes, inbox: &mut mpsc::Receiver<Utf8Bytes>) -> bool {
        let ws = &mut self.ws;
        let batch = async {
            ws.feed(Message::Text(first)).await?;
            for _ in 1..WRITE_BATCH {
                match inbox.try_recv() {
                    Ok(text) => ws.feed(Message::Text(text)).await?,
                    Err(_) => break,
                }
            }
            ws.flush().await
        };
        write_unless_kicked(&self.conn.kick.fired, batch).await
    }

    async fn send(&mut self, message: Message) -> bool {
        write_unless_kicked(&self.conn.kick.fired, self.ws.send(message)).await
    }

    async fn on_message(&mut self, message: Message) -> Option<Exit> {
        match message {
            Message::Text(text) => {
                if !self.rate.try_take(Instant::now()) {
                    return self
                        .strike(ErrorCode::RateLimited, "too many frames: slow down")
                        .await;
                }
                match ClientFrame::parse(text.as_str()) {
                    Ok(frame) => self.on_frame(frame).await,
                    Err(e) => self.strike(ErrorCode::BadMessage, &e.to_string()).await,
                }
            }
            Message::Binary(_) => {
                self.strike(
                    ErrorCode::BadMessage,
                    "binary frames are not part of the protocol",
                )
                .await
            }
            // tungstenite answers the close frame itself; flush that answer.
            Message::Close(_) => {
                let _ = timeout(CLOSE_TIMEOUT, self.ws.flush()).await;
                Some(Exit {
                    end: End::Left,
                    close: None,
                })
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> Option<Exit> {
        if let ClientFrame::Join(join) = frame {
            return self.on_join(join).await;
        }
        let Some(key) = self.member.clone() else {
            return self.strike(ErrorCode::NotJoined, "join a room first").await;
        };
        match frame {
            ClientFrame::Join(_) => None,
            ClientFrame::Signal { to, data } => {
                self.relays += 1;
                let relay = (self.conn.id, self.relays);
                match self.shared.relay(&key, &to, data, relay).await {
                    Ok(()) => None,
                    Err(e) => self.on_room_error(e).await,
                }
            }
            ClientFrame::List => {
                let peers = match self.shared.peers(&key).await {
                    Ok(peers) => peers,
                    Err(e) => return self.on_room_error(e).await,
                };
                let sent = self
                    .send(Message::text(ServerFrame::Peers { peers }.to_json()))
                    .await;
                (!sent).then_some(Exit::DROPPED)
            }
            ClientFrame::Leave => {
                Some(Exit::closing(End::Left, CloseCode::Normal, "left the room"))
            }
        }
    }

    async fn on_join(&mut self, join: Join) -> Option<Exit> {
        if self.member.is_some() {
            return self
                .strike(ErrorCode::AlreadyJoined, "this socket is already in a room")
                .await;
        }
        if join.version != PROTOCOL_VERSION {
            return self
                .refuse(
                    ErrorCode::UnsupportedVersion,
                    "this server speaks protocol version 1",
                )
                .await;
        }
        match self
            .shared
            .join(&join, &self.conn, self.reached.as_ref())
            .await
        {
            Ok(key) => {
                debug!(conn = self.conn.id, room = %key.room, id = %key.id, name = %join.name,
                    resumed = join.resume.is_some(), "joined");
                self.member = Some(key);
                None
            }
            Err(RoomError::Refused(refusal)) if refusal.code == ErrorCode::BadPassword => {
                self.strike(refusal.code, &refusal.message).await
            }
            Err(e) => self.on_room_error(e).await,
        }
    }

    /// A refusal is answered; a room no server answers for drops the socket, so that
    /// its client reconnects and resumes once the cluster has settled.
    async fn on_room_error(&mut self, e: RoomError) -> Option<Exit> {
        match e {
            RoomError::Refused(refusal) => self.refuse(refusal.code, &refusal.message).await,
            RoomError::Unreachable => {
                debug!(
                    conn = self.conn.id,
                    "no server answers for the room: dropped"
                );
                Some(Exit::DROPPED)
            }
        }
    }

    /// Answers with an error frame. Returns an exit if the socket is gone.
    async fn refuse(&mut self, code: ErrorCode, message: &str) -> Option<Exit> {
        debug!(conn = self.conn.id, %code, message, "error sent");
        self.shared.metrics.count_error(code);
        let sent = self
            .send(Message::text(ServerFrame::error(code, message).to_json()))
            .await;
        (!sent).then_some(Exit::DROPPED)
    }

    /// Answers with an error frame that counts as abuse; too many close the socket.
    async fn strike(&mut self, code: ErrorCode, message: &str) -> Option<Exit> {
        if let Some(exit) = self.refuse(code, message).await {
            return Some(exit);
        }
        if self.abuse.try_take(Instant::now()) {
            return None;
        }
        debug!(conn = self.conn.id, "closed for repeated abuse");
        Some(Exit::closing(
            End::Left,
            CloseCode::Policy,
            "repeated abuse",
        ))
    }

    /// Sends a close frame and waits briefly for the client's answer.
    async fn close(&mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let ws = &mut self.ws;
        // Reads until the client's answering close frame, so that unread data does not
        // turn our close into a reset, but only until the deadline: a client that keeps
        // sending must not keep its socket open by never answering. The deadline is
        // checked per frame because a busy socket may never let a timer fire.
        let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
        if !matches!(
            timeout_at(deadline, ws.close(Some(frame))).await,
            Ok(Ok(()))
        ) {
            return;
        }
        while tokio::time::Instant::now() < deadline {
            match timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Tells the room how the socket ended.
    async fn finish(&self, end: &End) {
        let Some(key) = &self.member else {
            debug!(conn = self.conn.id, "socket closed before joining");
            return;
        };
        let told = match end {
            End::Left => self.shared.leave(key, self.conn.id).await,
            End::Dropped => self.shared.detach(key, self.conn.id).await,
            End::Superseded => {
                self.shared.release(self.conn.id);
                Ok(())
            }
        };
        match told {
            Ok(()) => debug!(conn = self.conn.id, room = %key.room, id = %key.id, "ended"),
            Err(e) => debug!(
                conn = self.conn.id,
                "the room did not hear of the end: {e:?}"
            ),
        }
    }
}

/// Runs a write to the socket. It fails if it takes too long, or if the socket is kicked
/// meanwhile: a client too slow to read blocks writes, and must not hold its session (and
/// its place in the room) until the timeout.
async fn write_unless_kicked(
    kicked: &CancellationToken,
    write: impl Future<Output = Result<(), WsError>>,
) -> bool {
    tokio::select! {
        biased;
        () = kicked.cancelled() => false,
        written = timeout(SEND_TIMEOUT, write) => matches!(written, Ok(Ok(()))),
    }
}
