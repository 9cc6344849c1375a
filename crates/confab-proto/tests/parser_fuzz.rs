//! Random and mutated frames: the parsers return errors, never panic.
#![allow(clippy::unwrap_used)]

use confab_proto::{ClientFrame, PeerMessage, ServerFrame, SignalData};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    r#"{"type":"join","room":"lobby","name":"Ada","version":1,"password":"pw","resume":"t"}"#,
    r#"{"type":"signal","to":"p2","data":{"kind":"candidate","candidate":null}}"#,
    r#"{"type":"list"}"#,
    r#"{"type":"leave"}"#,
    r#"{"type":"welcome","id":"p1","token":"t","room":"r","peers":[{"id":"p0","name":"B"}]}"#,
    r#"{"type":"chat","id":"m1","text":"hi","ts":1,"scope":"room"}"#,
    r#"{"type":"file-offer","file":"f","name":"n","size":3,"sha256":"ab"}"#,
];

fn parse_all(text: &str) {
    let _ = ClientFrame::parse(text);
    let _ = ServerFrame::parse(text);
    let _ = PeerMessage::parse(text);
    if let Ok(value) = serde_json::from_str(text) {
        let _ = SignalData::from_value(value);
    }
}

/// Applies byte-level mutations to a valid frame: flips, deletions, insertions.
fn mutate(seed: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for &(pos, op, byte) in edits {
        let at = pos % (bytes.len() + 1);
        match op % 3 {
            0 if at < bytes.len() => bytes[at] ^= byte,
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, byte),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_text_never_panics(text in ".{0,300}") {
        parse_all(&text);
    }

    #[test]
    fn mutated_frames_never_panic(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        parse_all(&mutate(SEEDS[seed], &edits));
    }

    #[test]
    fn random_json_values_never_panic(value in arb_json()) {
        parse_all(&value.to_string());
    }

    #[test]
    fn valid_joins_round_trip(room in "[a-z]{1,64}", name in "\\PC{1,64}", password in proptest::option::of(".{0,20}")) {
        let frame = ClientFrame::Join(confab_proto::Join { room, name, version: 1, password, resume: None });
        let text = serde_json::to_string(&frame).unwrap();
        prop_assert_eq!(ClientFrame::parse(&text).unwrap(), frame);
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("join".to_owned()),
            Just("signal".to_owned()),
            Just("chat".to_owned()),
            Just("candidate".to_owned()),
            ".{0,8}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("kind".to_owned()),
                    Just("to".to_owned()),
                    Just("data".to_owned()),
                    Just("room".to_owned()),
                    Just("name".to_owned()),
                    Just("version".to_owned()),
                    Just("candidate".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
