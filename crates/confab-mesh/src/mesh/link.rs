//! The signaling link: joining and rejoining (when is `reconnect.rs`'s), what a
//! `welcome` brings (its ICE servers, tunnels and the credential check), and signals
//! to peers, held while the link is down.

use std::collections::HashSet;
use std::sync::Arc;

use confab_proto::{Join, PROTOCOL_VERSION, ServerFrame};
use confab_signal::{ClientError, ClientOptions, SignalClient, Welcome};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::MeshTask;
use super::reconnect::{AfterFailure, Reconnect};
use crate::api::{Event, LogLevel, SignalingState, unix_ms};
use crate::error::ErrorCode;
use crate::transport::TransportConfig;
use crate::turn_check;

/// Signals held while the link is down, at most (the oldest go first): a restart's offer
/// and its candidates for a full mesh are a few dozen.
const MAX_HELD_SIGNALS: usize = 256;

type Joined = Result<(Box<SignalClient>, Welcome), ClientError>;
type Joining = JoinHandle<Joined>;

/// The signaling connection: its sockets and tasks, and when to try again
/// (`reconnect.rs`).
#[derive(Debug)]
pub(super) struct Link {
    pub(super) io: LinkIo,
    pub(super) reconnect: Reconnect,
}

#[derive(Debug)]
pub(super) enum LinkIo {
    None,
    Joining(Joining),
    Up(Box<SignalClient>),
}

impl Link {
    pub(super) fn new() -> Self {
        Self {
            io: LinkIo::None,
            reconnect: Reconnect::new(),
        }
    }

    /// Stops whatever the link does; returns the client if it was up.
    pub(super) fn take_down(&mut self) -> Option<Box<SignalClient>> {
        self.reconnect.stop();
        match std::mem::replace(&mut self.io, LinkIo::None) {
            LinkIo::Up(client) => Some(client),
            LinkIo::Joining(joining) => {
                joining.abort();
                None
            }
            LinkIo::None => None,
        }
    }
}

pub(super) enum LinkEvent {
    Joined(Joined),
    Frame(Result<ServerFrame, ClientError>),
    RetryDue,
}

impl MeshTask {
    pub(super) fn emit_signaling(&self, state: SignalingState) {
        let session = self.session.as_ref();
        self.emit(Event::Signaling {
            state,
            id: session.and_then(|s| s.id.clone()),
            room: session.map(|s| s.room.clone()),
        });
    }

    /// Connects (or reconnects, with the resume token) on a task of its own, so that
    /// chat and peers go on while the server is slow or away.
    pub(super) fn start_joining(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        let join = Join {
            room: session.room.clone(),
            name: self.name.clone(),
            version: PROTOCOL_VERSION,
            password: session.password.clone(),
            resume: session.token.clone(),
        };
        let server = session.server.clone();
        self.log(
            LogLevel::Info,
            format!("joining {} on {server}", join.room),
            None,
        );
        let joining = tokio::spawn(async move {
            SignalClient::join(&server, &ClientOptions::default(), join)
                .await
                .map(|(client, welcome)| (Box::new(client), welcome))
        });
        self.emit_signaling(if session.token.is_some() {
            SignalingState::Reconnecting
        } else {
            SignalingState::Connecting
        });
        self.link.io = LinkIo::Joining(joining);
        self.link.reconnect.joining();
    }

    pub(super) async fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Joined(Ok((client, welcome))) => {
                self.link.io = LinkIo::Up(client);
                self.link.reconnect.joined();
                self.on_welcome(welcome);
                self.send_held_signals().await;
            }
            LinkEvent::Joined(Err(e)) => {
                self.link.io = LinkIo::None;
                let rejoining = self.session.as_ref().is_some_and(|s| s.token.is_some());
                let refused = matches!(e, ClientError::Refused { .. });
                let after = self.link.reconnect.join_failed(
                    Instant::now(),
                    refused,
                    rejoining,
                    rand::random(),
                );
                match (after, e) {
                    (AfterFailure::RetryIn(delay), e) => {
                        self.log(LogLevel::Warn, format!("{e}; retrying in {delay:?}"), None);
                    }
                    (AfterFailure::GiveUp, ClientError::Refused { code, message }) => {
                        self.error(code.into(), message, None);
                        self.emit_signaling(SignalingState::Disconnected);
                    }
                    (AfterFailure::GiveUp, e) => {
                        self.error(ErrorCode::ServerUnreachable, e.to_string(), None);
                        self.emit_signaling(SignalingState::Disconnected);
                    }
                }
            }
            LinkEvent::Frame(Ok(frame)) => self.on_server_frame(frame),
            LinkEvent::Frame(Err(e)) => {
                self.log(LogLevel::Warn, format!("signaling lost: {e}"), None);
                self.link.io = LinkIo::None;
                self.link.reconnect.lost(Instant::now());
                self.emit_signaling(SignalingState::Reconnecting);
            }
            LinkEvent::RetryDue => {
                if self.link.reconnect.handle_timeout(Instant::now()) {
                    self.start_joining();
                }
            }
        }
    }

    pub(super) fn on_welcome(&mut self, welcome: Welcome) {
        if self.session.is_none() {
            return;
        }
        // Connections made from now on use the servers this welcome offers.
        let transport = self.configured.with_offered(&welcome.ice_servers);
        if transport != *self.transport {
            let before = std::mem::replace(&mut self.transport, Arc::new(transport));
            self.open_tunnels();
            self.report_unsupported(Some(&before));
            self.check_turn_credentials(Some(&before));
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let resumed = session.id.as_deref() == Some(welcome.id.as_str());
        session.id = Some(welcome.id.clone());
        session.token = Some(welcome.token);
        self.log(
            LogLevel::Info,
            format!(
                "{} {} as {} with {} peers",
                if resumed { "resumed" } else { "joined" },
                welcome.room,
                welcome.id,
                welcome.peers.len()
            ),
            None,
        );
        self.emit_signaling(SignalingState::Connected);
        if resumed {
            // Peers that left while we were away were not announced to us.
            let present: HashSet<&str> = welcome.peers.iter().map(|p| p.id.as_str()).collect();
            let gone: Vec<String> = self
                .peers
                .keys()
                .filter(|id| !present.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                self.on_peer_left(id);
            }
            for peer in welcome.peers {
                if !self.peers.contains_key(&peer.id) {
                    self.add_peer(peer.id, peer.name);
                }
            }
            return;
        }
        // A fresh id: whatever we had belongs to our old one.
        self.held_signals.clear();
        self.drop_all_peers();
        for peer in welcome.peers {
            self.add_peer(peer.id.clone(), peer.name);
            self.connect_peer(&peer.id, true);
        }
    }

    /// Tunnels for the current transport's TURN servers over TCP and TLS, keeping those
    /// already open. One that cannot open leaves its server out, with a warning.
    pub(super) fn open_tunnels(&mut self) {
        let (tunnels, failed) = self.tunnels.for_servers(&self.transport.ice_servers);
        self.tunnels = Arc::new(tunnels);
        for (url, why) in failed {
            self.log(LogLevel::Warn, format!("{url}: not used: {why}"), None);
        }
    }

    /// An `ice-server-unsupported` error for each server of the current transport that
    /// this peer cannot use and `before` did not have (already reported).
    pub(super) fn report_unsupported(&self, before: Option<&TransportConfig>) {
        for (server, why) in self.transport.unsupported() {
            if before.is_some_and(|b| b.ice_servers.contains(server)) {
                continue;
            }
            self.emit(Event::error(
                ErrorCode::IceServerUnsupported,
                format!("{}: {why}", server.url),
                None,
            ));
        }
    }

    /// Tries the credentials of each TURN server new since `before`: a refusal is a
    /// `turn-auth-failed` error (the WebRTC stack would only log it and go on without it).
    pub(super) fn check_turn_credentials(&self, before: Option<&TransportConfig>) {
        let local = self
            .transport
            .udp_addrs
            .first()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |addr| addr.ip());
        for server in &self.transport.ice_servers {
            let is_turn = server.url.to_ascii_lowercase().starts_with("turn:");
            if !is_turn
                || server.unsupported().is_some()
                || before.is_some_and(|b| b.ice_servers.contains(server))
            {
                continue;
            }
            // A server over TCP or TLS is tried through its tunnel, as connections reach it.
            let tried = self.tunnels.reached_through(server);
            let (url, events) = (server.url.clone(), self.events.clone());
            tokio::spawn(async move {
                let event = match turn_check::try_credentials(&tried, local).await {
                    turn_check::Verdict::Refused(why) => Event::error(
                        ErrorCode::TurnAuthFailed,
                        format!("{url} refused the credentials: {why}"),
                        None,
                    ),
                    turn_check::Verdict::Accepted => Event::Log {
                        level: LogLevel::Info,
                        msg: format!("{url} accepted the credentials"),
                        peer: None,
                        ts: unix_ms(),
                    },
                    turn_check::Verdict::Unknown(why) => Event::Log {
                        level: LogLevel::Warn,
                        msg: format!("{url}: credentials not checked: {why}"),
                        peer: None,
                        ts: unix_ms(),
                    },
                };
                let _ = events.send(event);
            });
        }
    }

    /// Sends a signal to `peer`, or holds it while the link is down (see `held_signals`).
    pub(super) async fn send_signal(&mut self, peer: String, data: serde_json::Value) {
        let LinkIo::Up(client) = &mut self.link.io else {
            return self.hold_signal(peer, data);
        };
        let kind = signal_kind(&data);
        match client.signal(&peer, data.clone()).await {
            Ok(()) => self.log(
                LogLevel::Debug,
                format!("signal to {peer}: {kind}"),
                Some(&peer),
            ),
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    format!("signal to {peer} not sent ({e}): held for the reconnect"),
                    Some(&peer),
                );
                self.hold_signal(peer, data);
            }
        }
    }

    pub(super) fn hold_signal(&mut self, peer: String, data: serde_json::Value) {
        if self.session.is_none() {
            return;
        }
        if self.held_signals.len() == MAX_HELD_SIGNALS {
            self.held_signals.pop_front();
        }
        self.held_signals.push_back((peer, data));
    }

    /// The held signals, in order, to the peers still here.
    pub(super) async fn send_held_signals(&mut self) {
        let held = std::mem::take(&mut self.held_signals);
        if !held.is_empty() {
            self.log(
                LogLevel::Info,
                format!(
                    "sending {} signals held while signaling was down",
                    held.len()
                ),
                None,
            );
        }
        for (peer, data) in held {
            if self.peers.contains_key(&peer) {
                self.send_signal(peer, data).await;
            }
        }
    }
}

/// Waits for whatever the signaling link does next.
pub(super) async fn next_link_event(link: &mut Link) -> LinkEvent {
    match &mut link.io {
        LinkIo::Joining(joining) => LinkEvent::Joined(match joining.await {
            Ok(result) => result,
            Err(e) => Err(ClientError::Disconnected(e.to_string())),
        }),
        LinkIo::Up(client) => LinkEvent::Frame(client.recv().await),
        LinkIo::None => match link.reconnect.poll_timeout() {
            Some(due) => {
                tokio::time::sleep_until(due).await;
                LinkEvent::RetryDue
            }
            None => std::future::pending().await,
        },
    }
}

pub(super) fn signal_kind(data: &serde_json::Value) -> String {
    match (
        data.get("kind").and_then(|k| k.as_str()),
        data.pointer("/description/type"),
    ) {
        (Some("description"), Some(kind)) => {
            format!("description {}", kind.as_str().unwrap_or("?"))
        }
        (Some("candidate"), _) if data.get("candidate").is_some_and(|c| c.is_null()) => {
            "end of candidates".to_owned()
        }
        (Some(kind), _) => kind.to_owned(),
        (None, _) => "unknown".to_owned(),
    }
}
