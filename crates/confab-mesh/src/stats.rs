//! The selected candidate pair of a connection, read from its ICE transport and the
//! library's stats report, and what kind of path it is (PEER-API.md `stats`).

use crate::turn_tunnel::TurnTunnels;
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidate, RTCStatsReportEntry, StatsSelector,
};

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

    /// A local relay candidate allocated through a TCP or TLS tunnel reaches its relay
    /// that way: the library saw TURN over UDP to loopback.
    pub(crate) fn through(mut self, tunnels: &TurnTunnels) -> Self {
        let relayed = (self.local.kind == "relay")
            .then(|| self.local.addr.parse().ok())
            .flatten();
        if let Some(stream) = relayed.and_then(|addr| tunnels.stream_of(addr)) {
            self.local.relay_protocol = Some(stream.name().to_owned());
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

/// Notes a signalled candidate's type under its address. A host with no NAT in front of it
/// signals the same address twice, as `host` and as `srflx` (the STUN server saw it
/// unchanged): the most direct type wins.
pub(crate) fn remember_signalled(
    signalled: &mut std::collections::HashMap<String, String>,
    addr: String,
    kind: String,
) {
    let directness = |kind: &str| match kind {
        "host" => 0,
        "srflx" | "prflx" => 1,
        _ => 2,
    };
    let known = signalled.get(&addr).map(|k| directness(k));
    if known.is_none_or(|known| directness(&kind) < known) {
        signalled.insert(addr, kind);
    }
}

/// The selected pair of `pc`, if ICE has chosen one. Its two ends come from the ICE
/// transport: the stats report lists only candidates that were signalled or gathered, not a
/// peer-reflexive remote learned from a check nor a relayed local one, so a pair through a
/// NAT or a relay would find no ends there. The report gives the pair's counters.
pub(crate) async fn selected_pair(pc: &dyn PeerConnection) -> Option<SelectedPair> {
    let ice = pc.sctp().await?.transport().ice_transport();
    let pair = ice.get_selected_candidate_pair().await.ok()??;
    let report = pc
        .get_stats(std::time::Instant::now(), StatsSelector::None)
        .await;
    let counters = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::IceCandidatePair(pair) if pair.nominated => Some(pair),
        _ => None,
    });
    Some(SelectedPair {
        rtt_ms: counters.map_or(0.0, |c| c.current_round_trip_time * 1000.0),
        bytes_sent: counters.map_or(0, |c| c.bytes_sent),
        bytes_received: counters.map_or(0, |c| c.bytes_received),
        local: candidate(pair.local()),
        remote: candidate(pair.remote()),
    })
}

fn candidate(c: &RTCIceCandidate) -> Candidate {
    let relay_protocol = serde_json::to_value(c.relay_protocol)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("unspecified"));
    Candidate {
        kind: c.typ.to_string(),
        addr: format!("{}:{}", c.address, c.port),
        protocol: c.protocol.to_string().to_lowercase(),
        relay_protocol,
    }
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

    #[test]
    fn an_address_signalled_as_host_and_srflx_stays_host() {
        let mut signalled = std::collections::HashMap::new();
        let addr = "192.168.50.2:5000".to_owned();
        remember_signalled(&mut signalled, addr.clone(), "host".into());
        remember_signalled(&mut signalled, addr.clone(), "srflx".into());
        assert_eq!(signalled[&addr], "host");
        let relayed = "198.51.100.2:6000".to_owned();
        remember_signalled(&mut signalled, relayed.clone(), "relay".into());
        remember_signalled(&mut signalled, relayed.clone(), "srflx".into());
        assert_eq!(signalled[&relayed], "srflx");
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
