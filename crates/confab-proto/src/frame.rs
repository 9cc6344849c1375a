//! Parsing one text frame into a tagged message type.
//!
//! Frames are parsed in two steps, JSON first and the typed message second, so that an
//! error can say which of the two was wrong: a receiver answers `bad-message` either
//! way, but a person reading the message (or a log) needs to know why.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a text frame is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("missing or non-string `{0}` field")]
    MissingTag(&'static str),
    #[error("unknown {tag} `{value}`")]
    UnknownTag { tag: &'static str, value: String },
    #[error("bad `{kind}` message: {reason}")]
    BadField { kind: String, reason: String },
}

/// Parses `text` as a JSON object whose `tag` field names one of `known` variants of `T`.
pub(crate) fn parse_tagged<T: DeserializeOwned>(
    text: &str,
    tag: &'static str,
    known: &[&str],
) -> Result<T, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    from_tagged_value(value, tag, known)
}

/// Like [`parse_tagged`], for JSON that is already parsed (e.g. `signal.data`).
pub(crate) fn from_tagged_value<T: DeserializeOwned>(
    value: Value,
    tag: &'static str,
    known: &[&str],
) -> Result<T, FrameError> {
    let Value::Object(map) = &value else {
        return Err(FrameError::NotObject);
    };
    let kind = match map.get(tag) {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(FrameError::MissingTag(tag)),
    };
    if !known.contains(&kind.as_str()) {
        return Err(FrameError::UnknownTag { tag, value: kind });
    }
    serde_json::from_value(value).map_err(|e| FrameError::BadField {
        kind,
        reason: e.to_string(),
    })
}
