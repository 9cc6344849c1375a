//! How B played A's voice, read from the summary the engine logs when a call ends:
//! "voice from P: N frames played (C from copies in later packets), M rebuilt from FEC,
//! K concealed, L late, S stretched and D skipped to follow the network's delay". Read by
//! the word after each number rather than by position, so a count added to the line shows
//! up here instead of shifting the others.

use std::fmt;
use std::time::Duration;

use super::process::ConfabProcess;

#[derive(Debug, Clone, Default)]
pub struct Playout {
    /// Short names and counts, in the line's order.
    counts: Vec<(String, u64)>,
}

impl Playout {
    /// How `listener` played `speaker`'s voice, from the summary it logs once the call
    /// has ended (within `wait`); `None` when none came or it held no counts. Figures to
    /// read the scores by, not needed for them.
    pub fn logged_by(listener: &ConfabProcess, speaker: &str, wait: Duration) -> Option<Self> {
        let prefix = format!("voice from {speaker}:");
        listener
            .event(wait, "the playout summary", |e| {
                e["event"] == "log" && e["msg"].as_str().is_some_and(|m| m.starts_with(&prefix))
            })
            .ok()
            .and_then(|e| e["msg"].as_str().and_then(Self::parse))
    }

    /// The counts of one summary line; `None` when it has none.
    pub fn parse(msg: &str) -> Option<Self> {
        let (_, counts) = msg.split_once(": ")?;
        let mut playout = Self::default();
        for piece in counts.split([',', '(', ')']).flat_map(|p| p.split(" and ")) {
            let mut words = piece.split_whitespace();
            let (Some(number), Some(word)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = number.parse() else {
                continue;
            };
            let name = match word {
                "frames" => "played",
                "from" => "from copies",
                "rebuilt" => "from FEC",
                other => other,
            };
            playout.counts.push((name.to_owned(), count));
        }
        (!playout.counts.is_empty()).then_some(playout)
    }
}

impl fmt::Display for Playout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, count)) in self.counts.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            write!(f, "{separator}{count} {name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_by_their_names() {
        let line = "voice from p7: 1250 frames played (40 from copies in later packets), \
                    3 rebuilt from FEC, 2 concealed, 0 late, 1 stretched and 0 skipped to \
                    follow the network's delay";
        assert_eq!(
            Playout::parse(line).map(|p| p.to_string()).as_deref(),
            Some(
                "1250 played, 40 from copies, 3 from FEC, 2 concealed, 0 late, 1 stretched, \
                 0 skipped"
            )
        );
        assert!(Playout::parse("voice from p7: nothing").is_none());
    }
}
