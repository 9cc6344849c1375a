//! Shared helpers: a real server on an ephemeral loopback port, real WebSocket clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use confab_proto::{Join, ServerFrame};
use confab_signal::{ClientOptions, ServerConfig, ServerHandle, SignalClient, Welcome};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(5);

pub async fn start(config: ServerConfig) -> ServerHandle {
    ServerHandle::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("server starts")
}

pub fn url(server: &ServerHandle) -> String {
    format!("ws://{}/ws", server.local_addr())
}

pub fn join(room: &str, name: &str) -> Join {
    Join {
        room: room.into(),
        name: name.into(),
        version: 1,
        password: None,
        resume: None,
    }
}

pub async fn joined(server: &ServerHandle, room: &str, name: &str) -> (SignalClient, Welcome) {
    SignalClient::join(&url(server), &ClientOptions::default(), join(room, name))
        .await
        .expect("join succeeds")
}

/// The next frame, which must come within [`WAIT`].
pub async fn next(client: &mut SignalClient) -> ServerFrame {
    timeout(WAIT, client.recv())
        .await
        .expect("a frame within the wait")
        .expect("a frame, not an error")
}

/// Asserts that nothing arrives for `quiet`.
pub async fn silent(client: &mut SignalClient, quiet: Duration) {
    if let Ok(frame) = timeout(quiet, client.recv()).await {
        panic!("expected silence, got {frame:?}");
    }
}

/// A WebSocket that sends whatever a test wants, well-formed or not.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a raw socket saw next.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Frame(ServerFrame),
    Close(u16),
    Gone,
}

impl Raw {
    pub async fn connect(server: &ServerHandle) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(url(server))
            .await
            .expect("connects");
        Raw { ws }
    }

    pub async fn text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("sent");
    }

    pub async fn join(&mut self, room: &str, name: &str) -> ServerFrame {
        self.text(
            &serde_json::to_string(&confab_proto::ClientFrame::Join(join(room, name))).unwrap(),
        )
        .await;
        self.frame().await
    }

    pub async fn seen(&mut self) -> Seen {
        loop {
            match timeout(WAIT, self.ws.next())
                .await
                .expect("something within the wait")
            {
                Some(Ok(Message::Text(text))) => {
                    return Seen::Frame(ServerFrame::parse(text.as_str()).expect("valid frame"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Seen::Close(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Seen::Gone,
            }
        }
    }

    pub async fn frame(&mut self) -> ServerFrame {
        match self.seen().await {
            Seen::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The code of the error frame that comes next.
    pub async fn error_code(&mut self) -> confab_proto::ErrorCode {
        match self.frame().await {
            ServerFrame::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Skips frames until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.seen().await {
                Seen::Frame(_) => {}
                Seen::Close(code) => return code,
                Seen::Gone => panic!("socket ended without a close frame"),
            }
        }
    }
}

/// A plain HTTP GET; the whole response, head and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}
