//! The STUN and TURN servers every `welcome` hands out (PROTOCOL.md, "ICE servers"), with
//! TURN credentials in the TURN REST convention that coturn's `use-auth-secret` checks:
//! `username` is `EXPIRY:PEER_ID` and `credential` is base64(HMAC-SHA1(secret, username)).
//! Nothing long-lived ever reaches a peer: a credential stops working at its expiry. The
//! built-in relay's entries name the address the peer reached the server at.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confab_proto::IceServerInfo;
use confab_relay::Relay;
pub use confab_relay::rest_credential;

/// How long a handed-out TURN credential works. The protocol asks for at least 12 h; a day
/// covers a long call started just before the next welcome would have refreshed it.
pub const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The ICE servers a signaling server offers its peers.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct IceConfig {
    /// `stun:` URLs, handed out as they are.
    pub stun_urls: Vec<String>,
    /// `turn:`/`turns:` URLs sharing `secret`, handed out with fresh credentials.
    pub turn_urls: Vec<String>,
    /// The shared secret of the TURN servers (coturn's `static-auth-secret`).
    pub turn_secret: Option<String>,
}

impl std::fmt::Debug for IceConfig {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why a list of ICE server URLs cannot be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceConfigError {
    #[error("`{0}` is not a stun:, turn: or turns: URL")]
    BadUrl(String),
    #[error("TURN URLs need the relay's shared secret (--turn-secret-file)")]
    NoSecret,
    #[error("the TURN shared secret is empty")]
    EmptySecret,
}

impl IceConfig {
    /// Sorts `urls` into STUN and TURN ones; TURN ones need `secret`.
    pub fn new(urls: &[String], secret: Option<String>) -> Result<Self, IceConfigError> {
        let mut config = Self::default();
        for url in urls {
            match url.split_once(':').map(|(scheme, _)| scheme) {
                Some("stun" | "stuns") => config.stun_urls.push(url.clone()),
                Some("turn" | "turns") => config.turn_urls.push(url.clone()),
                _ => return Err(IceConfigError::BadUrl(url.clone())),
            }
        }
        match secret {
            Some(secret) if secret.is_empty() => return Err(IceConfigError::EmptySecret),
            None if !config.turn_urls.is_empty() => return Err(IceConfigError::NoSecret),
            secret => config.turn_secret = secret,
        }
        Ok(config)
    }

    /// What `welcome` carries for `peer_id` at `now`: empty when nothing is configured.
    pub fn servers_for(&self, peer_id: &str, now: SystemTime) -> Vec<IceServerInfo> {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(IceServerInfo {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let Some(secret) = &self.turn_secret
            && !self.turn_urls.is_empty()
        {
            servers.push(turn_server(self.turn_urls.clone(), secret, peer_id, now));
        }
        servers
    }
}

/// Where a client reached the server: the relay it is handed is the one there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reached {
    pub(crate) ip: IpAddr,
    /// The name it asked for in TLS (SNI), which the server's certificate carries: a
    /// `turns:` URL names it so that the client can check the relay's certificate.
    pub(crate) name: Option<String>,
}

/// The built-in relay's entries for `peer_id`, who reached the server at `reached`: its
/// STUN (on two ports, for the connection test's mapping check), and its TURN over UDP, TCP
/// and TLS (those it listens for). None when the relay does not listen on that address.
pub(crate) fn relay_servers(
    relay: &Relay,
    reached: &Reached,
    peer_id: &str,
    now: SystemTime,
) -> Vec<IceServerInfo> {
    let Some(endpoints) = relay.endpoints_for(reached.ip) else {
        return Vec::new();
    };
    let mut turn_urls = vec![format!("turn:{}?transport=udp", endpoints.udp)];
    if let Some(tcp) = endpoints.tcp {
        turn_urls.push(format!("turn:{tcp}?transport=tcp"));
    }
    if let Some(tls) = endpoints.tls {
        let host = match &reached.name {
            Some(name) => name.clone(),
            None => match tls.ip() {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            },
        };
        turn_urls.push(format!("turns:{host}:{}?transport=tcp", tls.port()));
    }
    let mut stun_urls = vec![format!("stun:{}", endpoints.udp)];
    if let Some(alternate) = endpoints.udp_alternate {
        stun_urls.push(format!("stun:{alternate}"));
    }
    vec![
        IceServerInfo {
            urls: stun_urls,
            username: None,
            credential: None,
        },
        turn_server(turn_urls, relay.secret(), peer_id, now),
    ]
}

/// A TURN entry with a REST credential for `peer_id` that works for [`CREDENTIAL_LIFETIME`].
fn turn_server(urls: Vec<String>, secret: &str, peer_id: &str, now: SystemTime) -> IceServerInfo {
    let expiry = now
        .checked_add(CREDENTIAL_LIFETIME)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let username = format!("{expiry}:{peer_id}");
    IceServerInfo {
        urls,
        credential: Some(rest_credential(secret, &username)),
        username: Some(username),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_convention() {
        let config = IceConfig::new(
            &[
                "stun:198.51.100.1:3478".into(),
                "turn:198.51.100.1:3478".into(),
            ],
            Some("s3cret".into()),
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let servers = config.servers_for("p7", now);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:198.51.100.1:3478".to_owned()]);
        assert_eq!(servers[0].username, None);
        let username = servers[1].username.clone().unwrap();
        assert_eq!(username, format!("{}:p7", 1_000_000 + 24 * 3600));
        assert_eq!(
            servers[1].credential.as_deref(),
            Some(rest_credential("s3cret", &username).as_str())
        );
    }

    #[test]
    fn turn_needs_a_secret_and_urls_need_a_scheme() {
        assert_eq!(
            IceConfig::new(&["turn:h:3478".into()], None).unwrap_err(),
            IceConfigError::NoSecret
        );
        assert_eq!(
            IceConfig::new(&["turn:h:3478".into()], Some(String::new())).unwrap_err(),
            IceConfigError::EmptySecret
        );
        assert!(matches!(
            IceConfig::new(&["http://h".into()], None),
            Err(IceConfigError::BadUrl(_))
        ));
        assert!(
            IceConfig::default()
                .servers_for("p1", SystemTime::now())
                .is_empty()
        );
    }
}
