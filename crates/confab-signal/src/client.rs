//! A signaling client: connect, join, send, receive, with typed errors.

use std::sync::Arc;
use std::time::Duration;

use confab_proto::{
    ClientFrame, ErrorCode, FrameError, IceServerInfo, Join, PeerInfo, ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::tls::{TlsError, client_config};

/// How long connecting (TCP, TLS and the upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to answer a `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How to connect.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Roots to trust for `wss://` besides the system's: a self-hosted server's own
    /// certificate, say.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// What a successful `join` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub id: String,
    /// Secret; `resume` with it after a drop to keep `id`.
    pub token: String,
    pub room: String,
    pub peers: Vec<PeerInfo>,
    /// STUN and TURN servers the server offers for this room's connections.
    pub ice_servers: Vec<IceServerInfo>,
}

/// Why a signaling operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the signaling server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server refused: {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("the server closed the connection ({code}: {reason})")]
    Closed { code: u16, reason: String },
    #[error("the connection is gone: {0}")]
    Disconnected(String),
    #[error("unexpected frame from the server: {0}")]
    Unexpected(String),
    #[error("bad frame from the server: {0}")]
    BadFrame(#[from] FrameError),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// One signaling connection.
#[derive(Debug)]
pub struct SignalClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl SignalClient {
    /// Opens a WebSocket to `url` (`ws://` or `wss://`, path `/ws`) without joining.
    pub async fn connect(url: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let connector = if url.starts_with("wss://") {
            Some(Connector::Rustls(Arc::new(client_config(
                &options.extra_roots,
            )?)))
        } else {
            None
        };
        let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
        let unreachable = |reason: String| ClientError::Unreachable {
            url: url.to_owned(),
            reason,
        };
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector);
        let (ws, _response) = timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| unreachable("timed out".to_owned()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { ws })
    }

    /// Connects and joins a room: the usual way in.
    pub async fn join(
        url: &str,
        options: &ClientOptions,
        join: Join,
    ) -> Result<(Self, Welcome), ClientError> {
        let mut client = Self::connect(url, options).await?;
        let welcome = client.send_join(join).await?;
        Ok((client, welcome))
    }

    /// Sends `join` on a connected socket and waits for `welcome` or the refusal.
    /// After a refusal the socket is still open and may try again.
    pub async fn send_join(&mut self, join: Join) -> Result<Welcome, ClientError> {
        self.send(&ClientFrame::Join(join)).await?;
        let answer = timeout(JOIN_TIMEOUT, self.recv())
            .await
            .map_err(|_| ClientError::Timeout("welcome"))??;
        match answer {
            ServerFrame::Welcome {
                id,
                token,
                room,
                peers,
                ice_servers,
            } => Ok(Welcome {
                id,
                token,
                room,
                peers,
                ice_servers,
            }),
            ServerFrame::Error { code, message } => Err(ClientError::Refused { code, message }),
            other => Err(ClientError::Unexpected(other.to_json())),
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let text = serde_json::to_string(frame).unwrap_or_default();
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| ClientError::Disconnected(e.to_string()))
    }

    /// Relays `data` to the peer `to`.
    pub async fn signal(&mut self, to: &str, data: serde_json::Value) -> Result<(), ClientError> {
        self.send(&ClientFrame::Signal {
            to: to.to_owned(),
            data,
        })
        .await
    }

    /// The next frame from the server. Pings are answered on the way; a close frame is
    /// [`ClientError::Closed`]. Cancel-safe.
    pub async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => {
                    return Err(ClientError::Disconnected("socket closed".to_owned()));
                }
                Some(Err(e)) => return Err(ClientError::Disconnected(e.to_string())),
            };
            match message {
                Message::Text(text) => return Ok(ServerFrame::parse(text.as_str())?),
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(ClientError::Closed { code, reason });
                }
                Message::Binary(_) => {
                    return Err(ClientError::Unexpected("binary frame".to_owned()));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Closes the socket cleanly (a close frame) without a `leave` first.
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(1), async {
            if self.ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }

    /// Leaves the room and closes the socket.
    pub async fn leave(mut self) -> Result<(), ClientError> {
        self.send(&ClientFrame::Leave).await?;
        // The server answers with a close frame; wait for it briefly.
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        Ok(())
    }
}
