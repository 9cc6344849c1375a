//! The plain HTTP side of the server's one port: read a request head, route it, answer.
//!
//! Only GET is served: `/healthz`, `/metrics`, the WebSocket upgrade at `/ws`, and the
//! browser page (`/`, `/app.js`, `/style.css`), embedded in the binary so that a server
//! started anywhere serves it with no files on disk. The head is parsed by `httparse`
//! from a small buffer rather than through a full HTTP stack, because an idle WebSocket
//! must cost a few KiB at most: nothing of the HTTP exchange outlives the upgrade.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The largest request head accepted; browsers send well under 2 KiB.
const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Health,
    Metrics,
    /// One of the browser page's embedded files.
    Static {
        content_type: &'static str,
        body: &'static str,
    },
    /// A valid WebSocket upgrade for `/ws`, with its `Sec-WebSocket-Key`.
    Upgrade {
        key: String,
    },
    /// A request to refuse: status and a short plain-text reason.
    Refuse {
        status: u16,
        reason: &'static str,
    },
}

/// A request head, and any bytes the client sent after it.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) route: Route,
    pub(crate) rest: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("connection closed before a full request head")]
    Eof,
    #[error("request head over {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(#[from] httparse::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one request head from `stream` and routes it.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HeadError::Eof);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf)? {
            httparse::Status::Complete(len) => {
                let route = route(&request);
                return Ok(Head {
                    route,
                    rest: buf[len..].to_vec(),
                });
            }
            httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
            httparse::Status::Partial => {}
        }
    }
}

fn route(request: &httparse::Request<'_, '_>) -> Route {
    if request.method != Some("GET") {
        return Route::Refuse {
            status: 405,
            reason: "only GET is served here",
        };
    }
    let path = request.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/ws" => upgrade(request),
        _ => static_file(path).unwrap_or(Route::Refuse {
            status: 404,
            reason: "not found",
        }),
    }
}

/// The browser page (web/), compiled in: `/` and `/index.html`, its script and its style.
fn static_file(path: &str) -> Option<Route> {
    let (content_type, body) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_str!("../web/index.html"),
        ),
        "/app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../web/app.js"),
        ),
        "/style.css" => ("text/css; charset=utf-8", include_str!("../web/style.css")),
        _ => return None,
    };
    Some(Route::Static { content_type, body })
}

fn upgrade(request: &httparse::Request<'_, '_>) -> Route {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Route::Refuse {
            status: 426,
            reason: "this endpoint speaks WebSocket only",
        };
    }
    if header("sec-websocket-version") != Some("13") {
        return Route::Refuse {
            status: 426,
            reason: "unsupported WebSocket version (13 expected)",
        };
    }
    match header("sec-websocket-key") {
        Some(key) if !key.trim().is_empty() => Route::Upgrade {
            key: key.trim().to_owned(),
        },
        _ => Route::Refuse {
            status: 400,
            reason: "missing Sec-WebSocket-Key",
        },
    }
}

/// Writes a complete response and leaves the connection to be closed.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// Accepts a WebSocket upgrade.
pub(crate) async fn switch_protocols<S: AsyncWrite + Unpin>(
    stream: &mut S,
    key: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn route_of(raw: &str) -> Route {
        let mut stream = raw.as_bytes();
        read_head(&mut stream).await.unwrap().route
    }

    #[tokio::test]
    async fn routes_by_method_and_path() {
        assert_eq!(
            route_of("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await,
            Route::Health
        );
        assert_eq!(
            route_of("GET /metrics?x=1 HTTP/1.1\r\n\r\n").await,
            Route::Metrics
        );
        assert!(matches!(
            route_of("POST /healthz HTTP/1.1\r\n\r\n").await,
            Route::Refuse { status: 405, .. }
        ));
        assert!(matches!(
            route_of("GET /nope HTTP/1.1\r\n\r\n").await,
            Route::Refuse { status: 404, .. }
        ));
        assert!(matches!(
            route_of("GET /ws HTTP/1.1\r\n\r\n").await,
            Route::Refuse { status: 426, .. }
        ));
        let upgrade = "GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert_eq!(
            route_of(upgrade).await,
            Route::Upgrade {
                key: "dGhlIHNhbXBsZSBub25jZQ==".into()
            }
        );
    }

    #[tokio::test]
    async fn serves_the_embedded_browser_page() {
        for (path, wanted_type, marker) in [
            ("/", "text/html", "<script type=\"module\" src=\"app.js\">"),
            ("/index.html?room=x", "text/html", "<form"),
            ("/app.js", "text/javascript", "RTCPeerConnection"),
            ("/style.css", "text/css", "body"),
        ] {
            let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let Route::Static { content_type, body } = route_of(&raw).await else {
                panic!("{path} is not served as a static file");
            };
            assert!(
                content_type.starts_with(wanted_type),
                "{path}: {content_type}"
            );
            assert!(body.contains(marker), "{path} lacks {marker:?}");
        }
        assert!(matches!(
            route_of("GET /app.js/x HTTP/1.1\r\n\r\n").await,
            Route::Refuse { status: 404, .. }
        ));
        assert!(matches!(
            route_of("POST / HTTP/1.1\r\n\r\n").await,
            Route::Refuse { status: 405, .. }
        ));
    }

    #[tokio::test]
    async fn oversized_and_truncated_heads_are_errors() {
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let mut stream = huge.as_bytes();
        assert!(matches!(
            read_head(&mut stream).await,
            Err(HeadError::TooLarge)
        ));
        let mut stream = "GET / HTTP/1.1\r\n".as_bytes();
        assert!(matches!(read_head(&mut stream).await, Err(HeadError::Eof)));
        let mut stream = "\x00\x01garbage\r\n\r\n".as_bytes();
        assert!(matches!(
            read_head(&mut stream).await,
            Err(HeadError::Malformed(_))
        ));
    }
}
