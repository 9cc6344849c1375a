//! Redundant audio data, RED (RFC 2198): each packet carries copies of the frames before it,
//! so a frame whose own packet is lost is played whole from a later one. This is what
//! Chromium does for Opus (`a=rtpmap:63 red/48000/2`, `a=fmtp:63 111/111`: Opus as both the
//! primary and the redundant encoding, which section 3 allows). Opus's in-band FEC, by
//! contrast, rebuilds only the one frame before, at a lower bit rate taken from the frame
//! it rides in.
//!
//! A payload is the headers of the redundant blocks (4 bytes each: F=1, the block's payload
//! type, its timestamp's offset back from the packet's, and its length), the primary's
//! header (1 byte: F=0 and its payload type), then the blocks' data in the same order,
//! oldest first and the primary last (section 3).
//!
//! No crate on the registry reads this format, so it is here: plain data, bounds-checked,
//! with the RTP header left to the library.

use std::collections::VecDeque;

/// A timestamp offset has 14 bits.
const MAX_OFFSET: u32 = (1 << 14) - 1;
/// A block length has 10 bits.
const MAX_BLOCK_LEN: usize = (1 << 10) - 1;
/// The most redundant frames a packet carries: three frames lost in a row are rare, and
/// each copy costs a frame's bit rate again.
pub const MAX_DISTANCE: usize = 2;

/// A RED payload that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedError {
    #[error("a RED payload ends inside its block headers")]
    CutHeaders,
    #[error("a RED payload's block lengths run past its end")]
    CutBlocks,
}

/// One block of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedBlock<'a> {
    pub payload_type: u8,
    /// How far, in RTP timestamp units, this block's frame is before the packet's (0 for
    /// the primary).
    pub timestamp_offset: u32,
    pub data: &'a [u8],
}

/// A parsed RED payload: the redundant blocks, oldest first, then the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedPayload<'a> {
    pub redundant: Vec<RedBlock<'a>>,
    pub primary: RedBlock<'a>,
}

/// Reads a RED payload.
pub fn parse(payload: &[u8]) -> Result<RedPayload<'_>, RedError> {
    let mut headers = Vec::new();
    let mut at = 0;
    let primary_type = loop {
        let first = *payload.get(at).ok_or(RedError::CutHeaders)?;
        if first & 0x80 == 0 {
            at += 1;
            break first & 0x7f;
        }
        let header = payload.get(at..at + 4).ok_or(RedError::CutHeaders)?;
        let offset = (u32::from(header[1]) << 6) | (u32::from(header[2]) >> 2);
        let len = (usize::from(header[2] & 0x03) << 8) | usize::from(header[3]);
        headers.push((first & 0x7f, offset, len));
        at += 4;
    };
    let mut redundant = Vec::with_capacity(headers.len());
    for (payload_type, timestamp_offset, len) in headers {
        let data = payload.get(at..at + len).ok_or(RedError::CutBlocks)?;
        redundant.push(RedBlock {
            payload_type,
            timestamp_offset,
            data,
        });
        at += len;
    }
    Ok(RedPayload {
        redundant,
        primary: RedBlock {
            payload_type: primary_type,
            timestamp_offset: 0,
            data: &payload[at..],
        },
    })
}

/// Builds RED payloads from a stream of frames, keeping the last few to repeat.
#[derive(Debug)]
pub struct RedEncoder {
    payload_type: u8,
    /// The frames sent before, newest last, each with its duration in timestamp units.
    previous: VecDeque<(Vec<u8>, u32)>,
}

impl RedEncoder {
    /// Blocks of `payload_type` (the primary encoding's, Opus's).
    pub fn new(payload_type: u8) -> Self {
        Self {
            payload_type,
            previous: VecDeque::with_capacity(MAX_DISTANCE + 1),
        }
    }

    /// The payload for `frame` (lasting `duration` timestamp units), carrying up to
    /// `distance` frames before it (at most [`MAX_DISTANCE`]). A frame too long for a
    /// block, or too far back for an offset, is left out. The frame is kept either way,
    /// so redundancy asked for later has something to repeat.
    pub fn encode(&mut self, frame: &[u8], duration: u32, distance: usize) -> Vec<u8> {
        let mut blocks = Vec::new();
        let mut offset = 0u32;
        for (data, frame_duration) in self.previous.iter().rev().take(distance.min(MAX_DISTANCE)) {
            offset = offset.saturating_add(*frame_duration);
            if offset > MAX_OFFSET {
                break;
            }
            if data.len() <= MAX_BLOCK_LEN {
                blocks.push((offset, data.as_slice()));
            }
        }
        blocks.reverse();
        let size = blocks.iter().map(|(_, d)| 4 + d.len()).sum::<usize>() + 1 + frame.len();
        let mut payload = Vec::with_capacity(size);
        for (offset, data) in &blocks {
            let len = data.len();
            payload.extend_from_slice(&[
                0x80 | self.payload_type,
                (offset >> 6) as u8,
                (((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8),
                (len & 0xff) as u8,
            ]);
        }
        payload.push(self.payload_type & 0x7f);
        for (_, data) in &blocks {
            payload.extend_from_slice(data);
        }
        payload.extend_from_slice(frame);
        self.remember(frame, duration);
        payload
    }

    /// Keeps `frame` to repeat later without sending it in RED now.
    pub fn remember(&mut self, frame: &[u8], duration: u32) {
        if self.previous.len() == MAX_DISTANCE {
            self.previous.pop_front();
        }
        self.previous.push_back((frame.to_vec(), duration));
    }
}

/// How many earlier frames to repeat for the loss a receiver reports, in percent: none
/// while nothing is lost; one for a trace of loss (a lone loss is then the only likely
/// kind); two from 3 % (two in a row happen a few times a minute there). Until the first
/// report, two: a call that starts on a bad network is protected from its first word, and
/// a clean one sheds the copies within seconds.
pub fn distance_for_loss(reported_percent: Option<u8>) -> usize {
    match reported_percent {
        Some(0) => 0,
        Some(1..3) => 1,
        None | Some(_) => MAX_DISTANCE,
    }
}

/// The loss, in percent, that copies sized by [`distance_for_loss`] leave when a receiver
/// reports `reported_percent`: a frame is lost for good only with every packet carrying it.
/// Random loss is assumed; at least 1 % while anything is lost, for the bursts it misses.
pub fn loss_left(reported_percent: u8) -> u8 {
    if reported_percent == 0 {
        return 0;
    }
    let share = f64::from(reported_percent.min(100)) / 100.0;
    let copies = distance_for_loss(Some(reported_percent)) as i32;
    (share.powi(copies + 1) * 100.0).ceil().clamp(1.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OPUS: u8 = 111;

    #[test]
    fn a_payload_carries_the_frames_before_it_oldest_first() {
        let mut encoder = RedEncoder::new(OPUS);
        let first = encoder.encode(b"one", 960, 2);
        // Nothing before the first frame: a one-byte header and the frame.
        assert_eq!(first, [&[OPUS][..], b"one"].concat());
        encoder.encode(b"two", 960, 2);
        let third = encoder.encode(b"three", 960, 2);
        let parsed = parse(&third).unwrap();
        assert_eq!(
            parsed.redundant,
            vec![
                RedBlock {
                    payload_type: OPUS,
                    timestamp_offset: 1920,
                    data: b"one"
                },
                RedBlock {
                    payload_type: OPUS,
                    timestamp_offset: 960,
                    data: b"two"
                },
            ]
        );
        assert_eq!(parsed.primary.data, b"three");
        assert_eq!(parsed.primary.payload_type, OPUS);
    }

    #[test]
    fn the_distance_asked_for_limits_the_copies() {
        let mut encoder = RedEncoder::new(OPUS);
        for frame in [b"a", b"b", b"c"] {
            encoder.encode(frame, 960, 2);
        }
        let one_payload = encoder.encode(b"d", 960, 1);
        let one = parse(&one_payload).unwrap();
        assert_eq!(one.redundant.len(), 1);
        assert_eq!(one.redundant[0].data, b"c");
        let none = encoder.encode(b"e", 960, 0);
        assert_eq!(none, [&[OPUS][..], b"e"].concat());
        // Frames remembered while sending plain Opus are there when RED starts.
        encoder.remember(b"f", 960);
        let after_payload = encoder.encode(b"g", 960, 9);
        let after = parse(&after_payload).unwrap();
        let copies: Vec<&[u8]> = after.redundant.iter().map(|b| b.data).collect();
        assert_eq!(copies, vec![&b"e"[..], &b"f"[..]]);
    }

    #[test]
    fn a_frame_too_long_for_a_block_is_left_out() {
        let mut encoder = RedEncoder::new(OPUS);
        encoder.encode(&[7; 1024], 960, 1);
        let parsed_payload = encoder.encode(b"next", 960, 1);
        let parsed = parse(&parsed_payload).unwrap();
        assert!(parsed.redundant.is_empty());
        assert_eq!(parsed.primary.data, b"next");
    }

    #[test]
    fn lengths_and_offsets_use_every_bit_of_their_fields() {
        let mut encoder = RedEncoder::new(OPUS);
        encoder.encode(&[1; 1023], 5000, 1);
        encoder.encode(&[2; 300], 11_383, 2);
        let parsed_payload = encoder.encode(b"p", 960, 2);
        let parsed = parse(&parsed_payload).unwrap();
        assert_eq!(parsed.redundant[0].timestamp_offset, 16_383);
        assert_eq!(parsed.redundant[0].data.len(), 1023);
        assert_eq!(parsed.redundant[1].timestamp_offset, 11_383);
        assert_eq!(parsed.redundant[1].data.len(), 300);
    }

    #[test]
    fn cut_payloads_are_refused() {
        assert_eq!(parse(&[]), Err(RedError::CutHeaders));
        assert_eq!(parse(&[0x80 | OPUS, 0, 0]), Err(RedError::CutHeaders));
        // A block header promising 5 bytes, a primary header, and 2 bytes of data.
        assert_eq!(
            parse(&[0x80 | OPUS, 0x0f, 0x00, 5, OPUS, 1, 2]),
            Err(RedError::CutBlocks)
        );
    }

    #[test]
    fn a_payload_from_a_browser_parses() {
        // One redundant Opus block 960 back (Chromium's form), then the primary.
        let payload = [0xef, 0x0f, 0x00, 0x02, 0x6f, 0xaa, 0xbb, 0xcc];
        let parsed = parse(&payload).unwrap();
        assert_eq!(parsed.redundant.len(), 1);
        assert_eq!(parsed.redundant[0].payload_type, OPUS);
        assert_eq!(parsed.redundant[0].timestamp_offset, 960);
        assert_eq!(parsed.redundant[0].data, [0xaa, 0xbb]);
        assert_eq!(parsed.primary.data, [0xcc]);
    }

    #[test]
    fn redundancy_follows_the_reported_loss() {
        assert_eq!(distance_for_loss(None), 2);
        assert_eq!(distance_for_loss(Some(0)), 0);
        assert_eq!(distance_for_loss(Some(2)), 1);
        assert_eq!(distance_for_loss(Some(3)), 2);
        assert_eq!(distance_for_loss(Some(40)), 2);
    }

    #[test]
    fn copies_leave_a_small_share_of_the_loss() {
        assert_eq!(loss_left(0), 0);
        assert_eq!(loss_left(2), 1);
        assert_eq!(loss_left(10), 1);
        assert_eq!(loss_left(20), 1);
        // Half the packets lost: one frame in eight still is.
        assert_eq!(loss_left(50), 13);
    }
}
