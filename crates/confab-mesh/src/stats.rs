//! The selected candidate pair of a connection, read from the library's stats report, and
//! what kind of path it is (PEER-API.md `stats`).

use webrtc::peer_connection::{PeerConnection, RTCStatsReportEntry, StatsSelector};

/// The pair a connection sends on, as `stats` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SelectedPair {
    pub(crate) rtt_ms: f64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) local: Candidate,
    pub(crate) remote: Candidate,
}

/// One end of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// `host`, `srflx`, `prflx` or `relay`.
    pub(crate) kind: String,
    /// `ADDRESS:PORT`.
    pub(crate) addr: String,
    /// `udp` or `tcp`: how packets leave this candidate.
    pub(crate) protocol: String,
    /// For a relay candidate, how the relay is reached (`udp`, `tcp`, `tls`).
    pub(crate) relay_protocol: Option<String>,
}

impl Candidate {
    /// `TYPE ADDRESS:PORT`, as `local_candidate` and `remote_candidate` show it.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.kind, self.addr)
    }
}

impl SelectedPair {
    /// The path's type: `relay` when either end is a relay candidate, else `srflx` or
    /// `prflx` when either end is one (a NAT is crossed), else `host`. The local end
    /// alone says `host` for a path that crosses the remote's NAT.
    pub(crate) fn path_type(&self) -> &str {
        let kinds = [self.local.kind.as_str(), self.remote.kind.as_str()];
        ["relay", "srflx", "prflx"]
            .into_iter()
            .find(|kind| kinds.contains(kind))
            .unwrap_or("host")
    }

    /// How this peer reaches the first hop: the relay's protocol when we send through a
    /// relay, else the local candidate's own.
    pub(crate) fn transport(&self) -> &str {
        self.local
            .relay_protocol
            .as_deref()
            .unwrap_or(self.local.protocol.as_str())
    }
}

impl SelectedPair {
    /// A remote end first met as peer-reflexive (its check came before its candidate was
    /// signalled) takes the type it was signalled with: the library keeps calling it
    /// `prflx`, which would name a direct host path as one through a NAT.
    pub(crate) fn with_signalled_types(
        mut self,
        signalled: &std::collections::HashMap<String, String>,
    ) -> Self {
        if self.remote.kind == "prflx"
            && let Some(kind) = signalled.get(&self.remote.addr)
        {
            self.remote.kind = kind.clone();
        }
        self
    }
}

/// `ADDRESS:PORT` and type of a candidate line (`candidate:F C PROTO PRIO ADDR PORT typ
/// TYPE ...`), if it has that shape.
pub(crate) fn address_and_type(line: &str) -> Option<(String, String)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [_, _, _, _, addr, port, "typ", kind, ..] => {
            Some((format!("{addr}:{port}"), (*kind).to_owned()))
        }
        _ => None,
    }
}

/// The nominated pair of `pc`, if it has one.
pub(crate) async fn selected_pair(pc: &dyn PeerConnection) -> Option<SelectedPair> {
    let report = pc
        .get_stats(std::time::Instant::now(), StatsSelector::None)
        .await;
    let pair = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::IceCandidatePair(pair) if pair.nominated => Some(pair),
        _ => None,
    })?;
    // The pair names its candidates by their own ids, which the report's entry ids end
    // with (the report prefixes them with the entry type).
    let candidate = |id: &str| {
        report.iter().find_map(|entry| match entry {
            RTCStatsReportEntry::LocalCandidate(c) | RTCStatsReportEntry::RemoteCandidate(c)
                if entry.id().ends_with(id) =>
            {
                let relay_protocol = serde_json::to_value(c.relay_protocol)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("unspecified"));
                Some(Candidate {
                    kind: c.candidate_type.to_string(),
                    addr: format!("{}:{}", c.address.clone().unwrap_or_default(), c.port),
                    protocol: c.protocol.to_lowercase(),
                    relay_protocol,
                })
            }
            _ => None,
        })
    };
    Some(SelectedPair {
        rtt_ms: pair.current_round_trip_time * 1000.0,
        bytes_sent: pair.bytes_sent,
        bytes_received: pair.bytes_received,
        local: candidate(&pair.local_candidate_id)?,
        remote: candidate(&pair.remote_candidate_id)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn end(kind: &str, relay_protocol: Option<&str>) -> Candidate {
        Candidate {
            kind: kind.into(),
            addr: "198.51.100.7:40000".into(),
            protocol: "udp".into(),
            relay_protocol: relay_protocol.map(str::to_owned),
        }
    }

    fn pair(local: Candidate, remote: Candidate) -> SelectedPair {
        SelectedPair {
            rtt_ms: 1.0,
            bytes_sent: 0,
            bytes_received: 0,
            local,
            remote,
        }
    }

    #[test]
    fn the_path_type_is_the_farther_of_the_two_ends() {
        let cases = [
            ("host", "host", "host"),
            ("host", "srflx", "srflx"),
            ("prflx", "host", "prflx"),
            ("srflx", "prflx", "srflx"),
            ("host", "relay", "relay"),
            ("relay", "srflx", "relay"),
        ];
        for (local, remote, path) in cases {
            assert_eq!(
                pair(end(local, None), end(remote, None)).path_type(),
                path,
                "{local} -> {remote}"
            );
        }
    }

    #[test]
    fn a_prflx_remote_takes_its_signalled_type() {
        let line = "candidate:1 1 udp 2130706431 198.51.100.7 40000 typ host";
        let (addr, kind) = address_and_type(line).unwrap();
        assert_eq!(
            (addr.as_str(), kind.as_str()),
            ("198.51.100.7:40000", "host")
        );
        let signalled = std::collections::HashMap::from([(addr, kind)]);
        let seen = pair(end("host", None), end("prflx", None)).with_signalled_types(&signalled);
        assert_eq!(seen.path_type(), "host");
        let unknown = pair(end("host", None), end("prflx", None))
            .with_signalled_types(&std::collections::HashMap::new());
        assert_eq!(unknown.path_type(), "prflx");
        assert_eq!(address_and_type("nonsense"), None);
    }

    #[test]
    fn transport_is_how_the_first_hop_is_reached() {
        assert_eq!(
            pair(end("host", None), end("relay", None)).transport(),
            "udp"
        );
        assert_eq!(
            pair(end("relay", Some("tcp")), end("host", None)).transport(),
            "tcp"
        );
        assert_eq!(end("srflx", None).describe(), "srflx 198.51.100.7:40000");
    }
}
