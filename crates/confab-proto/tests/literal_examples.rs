//! Every frame type against literal JSON as PROTOCOL.md writes it.
#![allow(clippy::unwrap_used)]

use confab_proto::peer::MAX_CHAT_TEXT_BYTES;
use confab_proto::*;
use serde_json::{Value, json};

fn same_json(actual: &str, expected: Value) {
    let actual: Value = serde_json::from_str(actual).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn join_with_and_without_optional_fields() {
    let frame = ClientFrame::parse(
        r#"{"type":"join","room":"lobby","name":"Ada","version":1,"password":"pw","resume":"t0k"}"#,
    )
    .unwrap();
    assert_eq!(
        frame,
        ClientFrame::Join(Join {
            room: "lobby".into(),
            name: "Ada".into(),
            version: 1,
            password: Some("pw".into()),
            resume: Some("t0k".into()),
        })
    );
    let plain = ClientFrame::Join(Join {
        room: "lobby".into(),
        name: "Ada".into(),
        version: 1,
        password: None,
        resume: None,
    });
    same_json(
        &serde_json::to_string(&plain).unwrap(),
        json!({"type":"join","room":"lobby","name":"Ada","version":1}),
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let frame = ClientFrame::parse(r#"{"type":"list","extra":[1,2,3]}"#).unwrap();
    assert_eq!(frame, ClientFrame::List);
    let frame = ClientFrame::parse(r#"{"type":"leave","why":"bye"}"#).unwrap();
    assert_eq!(frame, ClientFrame::Leave);
}

#[test]
fn signal_data_is_kept_as_sent() {
    let frame =
        ClientFrame::parse(r#"{"type":"signal","to":"p2","data":{"any":["json",1]}}"#).unwrap();
    assert_eq!(
        frame,
        ClientFrame::Signal {
            to: "p2".into(),
            data: json!({"any":["json",1]})
        }
    );
}

#[test]
fn bad_client_frames_say_what_is_wrong() {
    assert!(matches!(
        ClientFrame::parse("nope"),
        Err(FrameError::NotJson(_))
    ));
    assert_eq!(ClientFrame::parse("[1]"), Err(FrameError::NotObject));
    assert_eq!(
        ClientFrame::parse(r#"{"room":"x"}"#),
        Err(FrameError::MissingTag("type"))
    );
    assert_eq!(
        ClientFrame::parse(r#"{"type":5}"#),
        Err(FrameError::MissingTag("type"))
    );
    assert!(matches!(
        ClientFrame::parse(r#"{"type":"welcome"}"#),
        Err(FrameError::UnknownTag { .. })
    ));
    assert!(matches!(
        ClientFrame::parse(r#"{"type":"signal","data":1}"#),
        Err(FrameError::BadField { .. })
    ));
    assert!(matches!(
        ClientFrame::parse(r#"{"type":"join","room":"r","name":"n","version":"1"}"#),
        Err(FrameError::BadField { .. })
    ));
    assert!(matches!(
        ClientFrame::parse(r#"{"type":"join","room":"","name":"n","version":1}"#),
        Err(FrameError::BadField { .. })
    ));
    let long = "é".repeat(65);
    let text = format!(r#"{{"type":"join","room":"r","name":"{long}","version":1}}"#);
    assert!(matches!(
        ClientFrame::parse(&text),
        Err(FrameError::BadField { .. })
    ));
    let exact = "é".repeat(64);
    let text = format!(r#"{{"type":"join","room":"r","name":"{exact}","version":1}}"#);
    assert!(ClientFrame::parse(&text).is_ok());
}

#[test]
fn server_frames_match_the_protocol() {
    let welcome = ServerFrame::Welcome {
        id: "p1".into(),
        token: "secret".into(),
        room: "lobby".into(),
        peers: vec![PeerInfo {
            id: "p0".into(),
            name: "Bo".into(),
        }],
        ice_servers: Vec::new(),
    };
    same_json(
        &welcome.to_json(),
        json!({"type":"welcome","id":"p1","token":"secret","room":"lobby","peers":[{"id":"p0","name":"Bo"}]}),
    );
    let welcome = ServerFrame::Welcome {
        id: "p1".into(),
        token: "secret".into(),
        room: "lobby".into(),
        peers: Vec::new(),
        ice_servers: vec![IceServerInfo {
            urls: vec!["turn:198.51.100.1:3478".into()],
            username: Some("1767225600:p1".into()),
            credential: Some("c2VjcmV0".into()),
        }],
    };
    let expected = json!({"type":"welcome","id":"p1","token":"secret","room":"lobby","peers":[],
        "ice_servers":[{"urls":["turn:198.51.100.1:3478"],"username":"1767225600:p1","credential":"c2VjcmV0"}]});
    same_json(&welcome.to_json(), expected.clone());
    assert_eq!(ServerFrame::parse(&expected.to_string()).unwrap(), welcome);
    // A browser's RTCIceServer may name one URL as a plain string.
    let one = r#"{"type":"welcome","id":"p1","token":"t","room":"r","peers":[],"ice_servers":[{"urls":"stun:198.51.100.1:3478"}]}"#;
    match ServerFrame::parse(one).unwrap() {
        ServerFrame::Welcome { ice_servers, .. } => {
            assert_eq!(
                ice_servers[0].urls,
                vec!["stun:198.51.100.1:3478".to_owned()]
            );
            assert_eq!(ice_servers[0].username, None);
        }
        other => panic!("not a welcome: {other:?}"),
    }
    same_json(
        &ServerFrame::PeerJoined {
            peer: PeerInfo {
                id: "p2".into(),
                name: "Cy".into(),
            },
        }
        .to_json(),
        json!({"type":"peer-joined","peer":{"id":"p2","name":"Cy"}}),
    );
    same_json(
        &ServerFrame::PeerLeft { id: "p2".into() }.to_json(),
        json!({"type":"peer-left","id":"p2"}),
    );
    same_json(
        &ServerFrame::Signal {
            from: "p0".into(),
            data: json!({"kind":"candidate","candidate":null}),
        }
        .to_json(),
        json!({"type":"signal","from":"p0","data":{"kind":"candidate","candidate":null}}),
    );
    same_json(
        &ServerFrame::Peers { peers: vec![] }.to_json(),
        json!({"type":"peers","peers":[]}),
    );
    for code in ErrorCode::ALL {
        let text = ServerFrame::error(code, "why").to_json();
        same_json(
            &text,
            json!({"type":"error","code":code.as_str(),"message":"why"}),
        );
        assert_eq!(
            ServerFrame::parse(&text).unwrap(),
            ServerFrame::error(code, "why")
        );
    }
}

#[test]
fn an_error_code_from_a_newer_server_still_parses() {
    let frame = ServerFrame::parse(r#"{"type":"error","code":"shiny-new","message":"m"}"#).unwrap();
    assert_eq!(frame, ServerFrame::error(ErrorCode::Unknown, "m"));
}

#[test]
fn signal_data_descriptions_and_candidates() {
    let offer = SignalData::from_value(
        json!({"kind":"description","description":{"type":"offer","sdp":"v=0\r\n"}}),
    )
    .unwrap();
    assert_eq!(
        offer,
        SignalData::Description {
            description: SessionDescription {
                kind: SdpType::Offer,
                sdp: "v=0\r\n".into()
            }
        }
    );
    let browser = json!({"kind":"candidate","candidate":{
        "candidate":"candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host",
        "sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}});
    let parsed = SignalData::from_value(browser.clone()).unwrap();
    let SignalData::Candidate { candidate: Some(c) } = &parsed else {
        panic!("not a candidate: {parsed:?}");
    };
    assert_eq!(c.sdp_mid.as_deref(), Some("0"));
    assert_eq!(c.sdp_mline_index, Some(0));
    assert!(!c.is_end_of_candidates());
    assert_eq!(
        parsed.to_value(),
        browser,
        "extra browser fields survive a round trip"
    );

    let end = SignalData::from_value(json!({"kind":"candidate","candidate":null})).unwrap();
    assert_eq!(end, SignalData::Candidate { candidate: None });
    let empty = SignalData::from_value(
        json!({"kind":"candidate","candidate":{"candidate":"","sdpMid":"0","sdpMLineIndex":0}}),
    )
    .unwrap();
    assert!(
        matches!(empty, SignalData::Candidate { candidate: Some(c) } if c.is_end_of_candidates())
    );
}

#[test]
fn peer_messages_match_the_protocol() {
    let cases = [
        (
            PeerMessage::Hello {
                name: "Ada".into(),
                app: "confab/0.1".into(),
                cert: None,
            },
            json!({"type":"hello","name":"Ada","app":"confab/0.1"}),
        ),
        (
            PeerMessage::Chat {
                id: "m1".into(),
                text: "hi".into(),
                ts: 1_700_000_000_000,
                scope: ChatScope::Room,
                sig: None,
            },
            json!({"type":"chat","id":"m1","text":"hi","ts":1_700_000_000_000u64,"scope":"room"}),
        ),
        (
            PeerMessage::Ack { id: "m1".into() },
            json!({"type":"ack","id":"m1"}),
        ),
        (
            PeerMessage::CallInvite {
                call: "c1".into(),
                members: vec!["p1".into(), "p2".into()],
            },
            json!({"type":"call-invite","call":"c1","members":["p1","p2"]}),
        ),
        (
            PeerMessage::CallAccept { call: "c1".into() },
            json!({"type":"call-accept","call":"c1"}),
        ),
        (
            PeerMessage::CallDecline { call: "c1".into() },
            json!({"type":"call-decline","call":"c1"}),
        ),
        (
            PeerMessage::CallEnd { call: "c1".into() },
            json!({"type":"call-end","call":"c1"}),
        ),
        (
            PeerMessage::Mute {
                call: "c1".into(),
                muted: true,
            },
            json!({"type":"mute","call":"c1","muted":true}),
        ),
        (
            PeerMessage::FileOffer {
                file: "f1".into(),
                name: "a.txt".into(),
                size: 3,
                sha256: "ab".into(),
            },
            json!({"type":"file-offer","file":"f1","name":"a.txt","size":3,"sha256":"ab"}),
        ),
        (
            PeerMessage::FileAccept {
                file: "f1".into(),
                offset: 0,
            },
            json!({"type":"file-accept","file":"f1","offset":0}),
        ),
        (
            PeerMessage::FileReject { file: "f1".into() },
            json!({"type":"file-reject","file":"f1"}),
        ),
        (
            PeerMessage::FileReceived {
                file: "f1".into(),
                ok: true,
            },
            json!({"type":"file-received","file":"f1","ok":true}),
        ),
        (
            PeerMessage::HistorySince { since: 5 },
            json!({"type":"history-since","since":5}),
        ),
        (
            PeerMessage::HistoryRanges {
                ranges: vec![
                    HistoryRange {
                        from: HistoryBound {
                            ts: 5,
                            id: String::new(),
                        },
                        upto: Some(HistoryBound {
                            ts: 9,
                            id: "m2".into(),
                        }),
                        count: Some(2),
                        digest: Some("00ff".into()),
                        ids: None,
                    },
                    HistoryRange {
                        from: HistoryBound {
                            ts: 9,
                            id: "m2".into(),
                        },
                        upto: None,
                        count: None,
                        digest: None,
                        ids: Some(vec!["m2".into()]),
                    },
                ],
            },
            json!({"type":"history-ranges","ranges":[
                {"from":{"ts":5,"id":""},"upto":{"ts":9,"id":"m2"},"count":2,"digest":"00ff"},
                {"from":{"ts":9,"id":"m2"},"ids":["m2"]}
            ]}),
        ),
        (
            PeerMessage::HistoryHave {
                ids: vec!["m1".into()],
            },
            json!({"type":"history-have","ids":["m1"]}),
        ),
        (
            PeerMessage::HistoryWant {
                ids: vec!["m1".into()],
            },
            json!({"type":"history-want","ids":["m1"]}),
        ),
        (
            PeerMessage::HistoryMissing {
                ids: vec!["m1".into()],
            },
            json!({"type":"history-missing","ids":["m1"]}),
        ),
        (
            PeerMessage::HistoryCert {
                cert: "MII=".into(),
            },
            json!({"type":"history-cert","cert":"MII="}),
        ),
        (
            PeerMessage::HistoryMessage {
                id: "m1".into(),
                ts: 5,
                name: "Ada".into(),
                text: "hi".into(),
                author: "AB:CD".into(),
                sig: "MEU=".into(),
            },
            json!({"type":"history-message","id":"m1","ts":5,"name":"Ada","text":"hi",
                   "author":"AB:CD","sig":"MEU="}),
        ),
    ];
    for (message, literal) in cases {
        same_json(&message.to_json(), literal.clone());
        assert_eq!(PeerMessage::parse(&literal.to_string()).unwrap(), message);
    }
}

#[test]
fn unknown_peer_messages_are_recognisable_and_oversized_chat_is_refused() {
    assert!(matches!(
        PeerMessage::parse(r#"{"type":"typing"}"#),
        Err(FrameError::UnknownTag { .. })
    ));
    let text = "x".repeat(MAX_CHAT_TEXT_BYTES + 1);
    let message = json!({"type":"chat","id":"m","text":text,"ts":1,"scope":"direct"});
    assert!(matches!(
        PeerMessage::parse(&message.to_string()),
        Err(FrameError::BadField { .. })
    ));
}
