//! Finding which room messages each of two peers lacks, without sending the history.
//!
//! Range-based set reconciliation, as Negentropy does it: both sides order their messages
//! by (time, id). One side sends a summary (count and digest) of a range; the other compares
//! it with its own. Equal ranges are done. A differing range is answered with its ids when
//! it is small, else split into [`SPLIT`] parts, each summed up again. So a history with
//! nothing missing costs one summary each way, and n missing messages among N cost
//! O(n log N) summaries. Every step here is pure: the mesh sends and receives.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use confab_proto::{HistoryBound, HistoryRange};

/// A range with at most this many messages is answered with their ids.
const LIST_MAX: usize = 32;
/// How many parts a differing range is split into.
const SPLIT: usize = 16;
/// The most ranges one message may carry (a split of every range in one).
pub(crate) const MAX_RANGES: usize = 256;
/// The most ids one range may list.
const MAX_IDS_PER_RANGE: usize = 256;

/// Why a peer's ranges were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RangeError {
    #[error("{0} ranges, over the limit of {MAX_RANGES}")]
    TooManyRanges(usize),
    #[error("a range lists {0} ids, over the limit of {MAX_IDS_PER_RANGE}")]
    TooManyIds(usize),
    #[error("a range neither sums up nor lists its messages")]
    Empty,
    #[error("a range ends before it starts")]
    Backwards,
}

/// What to do after reading the peer's ranges.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Ranges to send back (empty when every range matched or was listed).
    pub(crate) ranges: Vec<HistoryRange>,
    /// Ids we hold that the peer lacks, in (time, id) order.
    pub(crate) they_lack: Vec<String>,
    /// Ids the peer listed that we lack.
    pub(crate) we_lack: Vec<String>,
}

/// The first message of an exchange: everything from `since` on, summed up.
pub(crate) fn opening(ours: &[HistoryBound], since: u64) -> Vec<HistoryRange> {
    vec![summary(
        lowest(since),
        None,
        in_range(ours, &lowest(since), None),
    )]
}

/// Compares the peer's ranges with ours (sorted by (time, id)).
pub(crate) fn answer(ours: &[HistoryBound], theirs: &[HistoryRange]) -> Result<Answer, RangeError> {
    if theirs.len() > MAX_RANGES {
        return Err(RangeError::TooManyRanges(theirs.len()));
    }
    let mut answer = Answer::default();
    for range in theirs {
        if range.upto.as_ref().is_some_and(|upto| *upto <= range.from) {
            return Err(RangeError::Backwards);
        }
        let mine = in_range(ours, &range.from, range.upto.as_ref());
        match (&range.ids, range.count, &range.digest) {
            (Some(ids), _, _) => {
                if ids.len() > MAX_IDS_PER_RANGE {
                    return Err(RangeError::TooManyIds(ids.len()));
                }
                let theirs: HashSet<&str> = ids.iter().map(String::as_str).collect();
                let held: HashSet<&str> = mine.iter().map(|k| k.id.as_str()).collect();
                answer.they_lack.extend(
                    mine.iter()
                        .filter(|k| !theirs.contains(k.id.as_str()))
                        .map(|k| k.id.clone()),
                );
                answer
                    .we_lack
                    .extend(ids.iter().filter(|id| !held.contains(id.as_str())).cloned());
            }
            (None, Some(count), Some(d)) => {
                if count == mine.len() as u64 && *d == digest(mine) {
                    continue;
                }
                if mine.len() <= LIST_MAX {
                    answer.ranges.push(HistoryRange {
                        ids: Some(mine.iter().map(|k| k.id.clone()).collect()),
                        ..bare(range.from.clone(), range.upto.clone())
                    });
                } else {
                    answer
                        .ranges
                        .extend(split(mine, &range.from, range.upto.as_ref()));
                }
            }
            _ => return Err(RangeError::Empty),
        }
    }
    Ok(answer)
}

/// A differing range cut into [`SPLIT`] parts of about equal count, each summed up.
fn split(
    mine: &[HistoryBound],
    from: &HistoryBound,
    upto: Option<&HistoryBound>,
) -> Vec<HistoryRange> {
    let per_part = mine.len().div_ceil(SPLIT);
    let chunks: Vec<&[HistoryBound]> = mine.chunks(per_part).collect();
    let mut ranges = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let start = if i == 0 {
            from.clone()
        } else {
            chunk[0].clone()
        };
        let end = match chunks.get(i + 1) {
            Some(next) => Some(next[0].clone()),
            None => upto.cloned(),
        };
        ranges.push(summary(start, end, chunk));
    }
    ranges
}

fn summary(from: HistoryBound, upto: Option<HistoryBound>, keys: &[HistoryBound]) -> HistoryRange {
    HistoryRange {
        count: Some(keys.len() as u64),
        digest: Some(digest(keys)),
        ..bare(from, upto)
    }
}

fn bare(from: HistoryBound, upto: Option<HistoryBound>) -> HistoryRange {
    HistoryRange {
        from,
        upto,
        count: None,
        digest: None,
        ids: None,
    }
}

/// The first key at or after `since` ms.
fn lowest(since: u64) -> HistoryBound {
    HistoryBound {
        ts: since,
        id: String::new(),
    }
}

/// The keys in `[from, upto)`.
fn in_range<'a>(
    keys: &'a [HistoryBound],
    from: &HistoryBound,
    upto: Option<&HistoryBound>,
) -> &'a [HistoryBound] {
    let start = keys.partition_point(|k| k < from);
    let end = upto.map_or(keys.len(), |upto| keys.partition_point(|k| k < upto));
    &keys[start..end.max(start)]
}

/// The XOR of each message's hash (of its time and id), truncated to 16 bytes, in hex:
/// the same set gives the same digest whatever order it was built in.
fn digest(keys: &[HistoryBound]) -> String {
    let mut sum = [0u8; 16];
    for key in keys {
        let hash = Sha256::new()
            .chain_update(key.ts.to_be_bytes())
            .chain_update(key.id.as_bytes())
            .finalize();
        for (s, h) in sum.iter_mut().zip(hash.iter()) {
            *s ^= h;
        }
    }
    sum.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(range: std::ops::Range<u64>) -> Vec<HistoryBound> {
        range
            .map(|i| HistoryBound {
                ts: 1000 + i,
                id: format!("m{i:05}"),
            })
            .collect()
    }

    /// Runs an exchange to its end: (ids a lacks, ids b lacks, messages sent, bytes sent).
    fn reconcile(
        a: &[HistoryBound],
        b: &[HistoryBound],
    ) -> (Vec<String>, Vec<String>, usize, usize) {
        let mut a_lacks = Vec::new();
        let mut b_lacks = Vec::new();
        let mut message = opening(a, 0);
        let mut messages = 1;
        let mut bytes = serde_json::to_string(&message).unwrap().len();
        let mut a_turn = false;
        while !message.is_empty() {
            let (ours, lacks, other_lacks) = if a_turn {
                (a, &mut a_lacks, &mut b_lacks)
            } else {
                (b, &mut b_lacks, &mut a_lacks)
            };
            let answer = answer(ours, &message).unwrap();
            lacks.extend(answer.we_lack);
            other_lacks.extend(answer.they_lack);
            message = answer.ranges;
            messages += 1;
            bytes += serde_json::to_string(&message).unwrap().len();
            a_turn = !a_turn;
        }
        a_lacks.sort();
        b_lacks.sort();
        (a_lacks, b_lacks, messages, bytes)
    }

    fn ids(keys: &[HistoryBound]) -> Vec<String> {
        keys.iter().map(|k| k.id.clone()).collect()
    }

    #[test]
    fn equal_histories_cost_one_summary_each_way() {
        let history = keys(0..5000);
        let (a_lacks, b_lacks, messages, bytes) = reconcile(&history, &history);
        assert!(a_lacks.is_empty() && b_lacks.is_empty());
        assert_eq!(messages, 2);
        assert!(bytes < 200, "{bytes} bytes");
    }

    #[test]
    fn a_latecomer_learns_it_lacks_everything() {
        let history = keys(0..5000);
        let (a_lacks, b_lacks, _, _) = reconcile(&[], &history);
        assert_eq!(a_lacks, ids(&history));
        assert!(b_lacks.is_empty());
        let (a_lacks, b_lacks, _, _) = reconcile(&history, &[]);
        assert!(a_lacks.is_empty());
        assert_eq!(b_lacks, ids(&history));
    }

    #[test]
    fn two_sides_that_were_apart_each_learn_what_the_other_has() {
        let shared = keys(0..3000);
        let mut a = shared.clone();
        a.extend(keys(3000..3010));
        let mut b = shared;
        b.extend(keys(4000..4007));
        // A few scattered gaps too.
        a.retain(|k| k.ts != 1500 && k.ts != 1777);
        let (a_lacks, b_lacks, messages, bytes) = reconcile(&a, &b);
        let mut expect_a = ids(&keys(4000..4007));
        expect_a.extend(["m00500".to_owned(), "m00777".to_owned()]);
        expect_a.sort();
        assert_eq!(a_lacks, expect_a);
        assert_eq!(b_lacks, ids(&keys(3000..3010)));
        assert!(messages <= 6, "{messages} messages");
        assert!(bytes < 40_000, "{bytes} bytes");
    }

    #[test]
    fn messages_at_the_same_time_are_told_apart_by_id() {
        let a = vec![
            HistoryBound {
                ts: 5,
                id: "a".into(),
            },
            HistoryBound {
                ts: 5,
                id: "b".into(),
            },
        ];
        let b = vec![HistoryBound {
            ts: 5,
            id: "b".into(),
        }];
        let (a_lacks, b_lacks, _, _) = reconcile(&a, &b);
        assert!(a_lacks.is_empty());
        assert_eq!(b_lacks, ["a"]);
    }

    #[test]
    fn malformed_ranges_are_refused() {
        let from = HistoryBound {
            ts: 9,
            id: String::new(),
        };
        let backwards = HistoryRange {
            upto: Some(HistoryBound {
                ts: 1,
                id: String::new(),
            }),
            count: Some(0),
            digest: Some(digest(&[])),
            ..bare(from.clone(), None)
        };
        assert_eq!(answer(&[], &[backwards]), Err(RangeError::Backwards));
        assert_eq!(
            answer(&[], &[bare(from.clone(), None)]),
            Err(RangeError::Empty)
        );
        let long = HistoryRange {
            ids: Some(vec![String::new(); MAX_IDS_PER_RANGE + 1]),
            ..bare(from.clone(), None)
        };
        assert_eq!(
            answer(&[], &[long]),
            Err(RangeError::TooManyIds(MAX_IDS_PER_RANGE + 1))
        );
        let many = vec![bare(from, None); MAX_RANGES + 1];
        assert_eq!(
            answer(&[], &many),
            Err(RangeError::TooManyRanges(MAX_RANGES + 1))
        );
    }
}
