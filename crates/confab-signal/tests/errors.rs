//! Every error code of PROTOCOL.md over a real socket, and what the socket does after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_proto::{ErrorCode, ServerFrame};
use confab_signal::ServerConfig;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::{Bytes, Message};

async fn welcome_id(raw: &mut Raw, room: &str, name: &str) -> String {
    match raw.join(room, name).await {
        ServerFrame::Welcome { id, .. } => id,
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_messages_are_answered_and_the_socket_stays_open() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    for bad in [
        "not json",
        "[1,2]",
        "42",
        r#"{"no":"type"}"#,
        r#"{"type":"teleport"}"#,
        r#"{"type":"join","room":"r","name":"n"}"#,
        r#"{"type":"join","room":"r","name":"n","version":"1"}"#,
        r#"{"type":"join","room":"","name":"n","version":1}"#,
        &format!(
            r#"{{"type":"join","room":"{}","name":"n","version":1}}"#,
            "x".repeat(65)
        ),
        r#"{"type":"signal","to":5,"data":{}}"#,
    ] {
        raw.text(bad).await;
        assert_eq!(raw.error_code().await, ErrorCode::BadMessage, "for {bad}");
    }
    raw.ws
        .send(Message::Binary(Bytes::from_static(b"{\"type\":\"list\"}")))
        .await
        .unwrap();
    assert_eq!(raw.error_code().await, ErrorCode::BadMessage);
    // Still open, and can still join.
    welcome_id(&mut raw, "r", "n").await;
}

#[tokio::test]
async fn not_joined_already_joined_and_unknown_peer() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    raw.text(r#"{"type":"list"}"#).await;
    assert_eq!(raw.error_code().await, ErrorCode::NotJoined);
    raw.text(r#"{"type":"signal","to":"p1","data":1}"#).await;
    assert_eq!(raw.error_code().await, ErrorCode::NotJoined);
    raw.text(r#"{"type":"leave"}"#).await;
    assert_eq!(raw.error_code().await, ErrorCode::NotJoined);

    let me = welcome_id(&mut raw, "r", "A").await;
    let again = raw.join("r", "again").await;
    assert!(matches!(
        again,
        ServerFrame::Error {
            code: ErrorCode::AlreadyJoined,
            ..
        }
    ));
    let mut other = Raw::connect(&server).await;
    let stranger = welcome_id(&mut other, "elsewhere", "B").await;
    raw.text(&json!({"type":"signal","to":"p999999","data":1}).to_string())
        .await;
    assert_eq!(raw.error_code().await, ErrorCode::UnknownPeer);
    raw.text(&json!({"type":"signal","to":me,"data":1}).to_string())
        .await;
    assert_eq!(
        raw.error_code().await,
        ErrorCode::UnknownPeer,
        "oneself is not another member"
    );
    raw.text(&json!({"type":"signal","to":stranger,"data":1}).to_string())
        .await;
    assert_eq!(
        raw.error_code().await,
        ErrorCode::UnknownPeer,
        "members of other rooms are unknown"
    );
}

#[tokio::test]
async fn a_second_join_is_already_joined() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    welcome_id(&mut raw, "r", "A").await;
    let answer = raw.join("r", "A").await;
    assert!(
        matches!(
            answer,
            ServerFrame::Error {
                code: ErrorCode::AlreadyJoined,
                ..
            }
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn room_full_and_bad_password_leave_the_socket_free_to_join_again() {
    let mut config = ServerConfig::default();
    config.max_room_peers = 2;
    let server = start(config).await;
    let mut a = Raw::connect(&server).await;
    a.text(r#"{"type":"join","room":"r","name":"A","version":1,"password":"s3cret"}"#)
        .await;
    assert!(matches!(a.frame().await, ServerFrame::Welcome { .. }));

    let mut b = Raw::connect(&server).await;
    b.text(r#"{"type":"join","room":"r","name":"B","version":1,"password":"wrong"}"#)
        .await;
    assert_eq!(b.error_code().await, ErrorCode::BadPassword);
    b.text(r#"{"type":"join","room":"r","name":"B","version":1}"#)
        .await;
    assert_eq!(b.error_code().await, ErrorCode::BadPassword);
    b.text(r#"{"type":"join","room":"r","name":"B","version":1,"password":"s3cret"}"#)
        .await;
    assert!(matches!(b.frame().await, ServerFrame::Welcome { .. }));

    let mut c = Raw::connect(&server).await;
    c.text(r#"{"type":"join","room":"r","name":"C","version":1,"password":"s3cret"}"#)
        .await;
    assert_eq!(c.error_code().await, ErrorCode::RoomFull);
    // Not joined after a refusal: it may join elsewhere.
    welcome_id(&mut c, "other", "C").await;
}

#[tokio::test]
async fn unsupported_version() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    raw.text(r#"{"type":"join","room":"r","name":"A","version":2}"#)
        .await;
    assert_eq!(raw.error_code().await, ErrorCode::UnsupportedVersion);
    welcome_id(&mut raw, "r", "A").await;
}

#[tokio::test]
async fn too_large_is_answered_then_closed_with_1009() {
    let mut config = ServerConfig::default();
    config.max_frame = 1024;
    let server = start(config).await;
    let (mut watcher, _) = joined(&server, "r", "W").await;
    let mut raw = Raw::connect(&server).await;
    let id = welcome_id(&mut raw, "r", "big").await;
    raw.text(&format!(
        r#"{{"type":"list","pad":"{}"}}"#,
        "x".repeat(2000)
    ))
    .await;
    assert_eq!(raw.error_code().await, ErrorCode::TooLarge);
    assert_eq!(raw.close_code().await, 1009);
    loop {
        match next(&mut watcher).await {
            ServerFrame::PeerJoined { .. } => continue,
            frame => {
                assert_eq!(frame, ServerFrame::PeerLeft { id });
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_socket_that_does_not_join_in_time_is_told_and_closed_with_1008() {
    let mut config = ServerConfig::default();
    config.join_timeout = Duration::from_millis(300);
    let server = start(config).await;
    let mut raw = Raw::connect(&server).await;
    assert_eq!(raw.error_code().await, ErrorCode::NotJoined);
    assert_eq!(raw.close_code().await, 1008);
}

#[tokio::test]
async fn a_client_within_100_per_second_and_bursts_of_200_is_never_limited() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    welcome_id(&mut raw, "r", "A").await;
    for _ in 0..200 {
        raw.text(r#"{"type":"list"}"#).await;
    }
    for _ in 0..200 {
        assert!(matches!(raw.frame().await, ServerFrame::Peers { .. }));
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..150 {
        ticker.tick().await;
        raw.text(r#"{"type":"list"}"#).await;
        assert!(matches!(raw.frame().await, ServerFrame::Peers { .. }));
    }
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_with_1008() {
    let mut config = ServerConfig::default();
    config.rate = 10.0;
    let server = start(config).await;
    let mut raw = Raw::connect(&server).await;
    welcome_id(&mut raw, "r", "A").await;
    for _ in 0..200 {
        if raw
            .ws
            .send(Message::text(r#"{"type":"list"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut limited = 0;
    let code = loop {
        match raw.seen().await {
            Seen::Frame(ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            Seen::Frame(ServerFrame::Peers { .. }) => {}
            Seen::Frame(other) => panic!("{other:?}"),
            Seen::Close(code) => break code,
            Seen::Gone => panic!("no close frame"),
        }
    };
    assert!(limited > 0);
    assert_eq!(code, 1008);
}

#[tokio::test]
async fn repeated_garbage_is_closed_with_1008() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    for _ in 0..100 {
        if raw.ws.send(Message::text("garbage")).await.is_err() {
            break;
        }
    }
    assert_eq!(raw.close_code().await, 1008);
}

#[tokio::test]
async fn error_counts_show_in_metrics() {
    let server = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    raw.text("nope").await;
    raw.error_code().await;
    let body = http_get(server.local_addr(), "/metrics").await;
    assert!(
        body.contains("confab_errors_total{code=\"bad-message\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("confab_errors_total{code=\"not-joined\"} 0"),
        "{body}"
    );
}
