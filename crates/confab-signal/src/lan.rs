//! Finding servers on the local network by DNS-SD (mDNS): a server announces itself as
//! `_confab._tcp`, with its name, its open rooms and how many people are in them in TXT;
//! the app (and `confab discover`) browses for them. So nobody has to type `ws://IP:PORT/ws`
//! to join a server someone hosts on the same network.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::shared::Shared;

/// The DNS-SD service type.
const SERVICE: &str = "_confab._tcp.local.";
/// How often the announcement's TXT is brought up to date with the rooms.
const REFRESH: Duration = Duration::from_secs(2);
/// The most rooms a TXT names (the largest ones); a TXT string holds 255 bytes.
const ROOMS_LISTED: usize = 5;

/// How a server announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// What people see, e.g. "Ada's server".
    pub name: String,
}

/// A server found on the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundServer {
    pub name: String,
    /// Where to connect: `ws://ADDRESS:PORT/ws` (`wss://` when it serves TLS).
    pub url: String,
    /// Its open rooms (no password), largest first, with the people in each.
    pub rooms: Vec<RoomCount>,
    /// Everyone in its rooms, passworded ones included.
    pub people: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomCount {
    pub room: String,
    pub people: usize,
}

/// Announces the server on every interface until `shared` shuts down, keeping the TXT
/// up to date with its rooms. A server that listens on loopback only is not announced.
pub(crate) async fn announce(announce: Announce, addr: SocketAddr, tls: bool, shared: Arc<Shared>) {
    if addr.ip().is_loopback() {
        return;
    }
    let daemon = match ServiceDaemon::new() {
        Ok(daemon) => daemon,
        Err(e) => return warn!("cannot announce the server on the network: {e}"),
    };
    // Listening on one address: announced on its interface only, with that interface's
    // addresses. (A fixed address in the service itself was never answered for.)
    if !addr.ip().is_unspecified()
        && let Err(e) = daemon
            .disable_interface(IfKind::All)
            .and_then(|()| daemon.enable_interface(IfKind::Addr(addr.ip())))
    {
        warn!(
            "announcing the server on {}'s interface only: {e}",
            addr.ip()
        );
    }
    let host = format!("{}.local.", host_label());
    let mut last = None;
    let mut fullname = None;
    loop {
        let census = txt(&announce, tls, &shared);
        if last.as_ref() != Some(&census) {
            match service(&announce.name, &host, addr, &census) {
                Ok(info) => {
                    fullname = Some(info.get_fullname().to_owned());
                    match daemon.register(info) {
                        Ok(()) if last.is_none() => {
                            info!(name = %announce.name, "server announced on the network as {SERVICE}")
                        }
                        Ok(()) => {}
                        Err(e) => warn!("announcing the server: {e}"),
                    }
                }
                Err(e) => warn!("announcing the server: {e}"),
            }
            last = Some(census);
        }
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(REFRESH) => {}
        }
    }
    if let Some(fullname) = fullname
        && let Ok(done) = daemon.unregister(&fullname)
    {
        // Goodbye packets go out before the daemon stops, so browsers drop us at once.
        let _ = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
    }
    let _ = daemon.shutdown();
}

fn service(
    name: &str,
    host: &str,
    addr: SocketAddr,
    txt: &BTreeMap<String, String>,
) -> Result<ServiceInfo, mdns_sd::Error> {
    let properties: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // The addresses of the interfaces the daemon announces on (all of them, or the one the
    // server listens on).
    Ok(ServiceInfo::new(SERVICE, name, host, "", addr.port(), &properties[..])?.enable_addr_auto())
}

/// The TXT: `v` (protocol), `name`, `path`, `tls`, `people`, and `rooms` as
/// `ROOM=N,ROOM=N` of the largest open rooms.
fn txt(announce: &Announce, tls: bool, shared: &Shared) -> BTreeMap<String, String> {
    let (open_rooms, people) = shared.census();
    let mut rooms: Vec<String> = Vec::new();
    for (room, count) in open_rooms.into_iter().take(ROOMS_LISTED) {
        // Commas and equals signs would break the list; such rooms are left out.
        if !room.contains([',', '=']) {
            rooms.push(format!("{room}={count}"));
        }
    }
    BTreeMap::from([
        ("v".to_owned(), confab_proto::PROTOCOL_VERSION.to_string()),
        ("name".to_owned(), announce.name.clone()),
        ("path".to_owned(), "/ws".to_owned()),
        ("tls".to_owned(), u8::from(tls).to_string()),
        ("people".to_owned(), people.to_string()),
        ("rooms".to_owned(), rooms.join(",")),
    ])
}

/// This machine's host name, when it has one.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/etc/hostname").ok()?;
    Some(name.trim().to_owned()).filter(|name| !name.is_empty())
}

/// This machine's host name as one DNS label.
fn host_label() -> String {
    match host_name() {
        Some(name) => name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect(),
        None => "confab".to_owned(),
    }
}

/// Looks for servers on the network for `wait`, and lists those found, by name.
pub async fn discover(wait: Duration) -> Result<Vec<FoundServer>, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE)?;
    let deadline = Instant::now() + wait;
    let mut found: BTreeMap<String, FoundServer> = BTreeMap::new();
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv_async()).await {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                if let Some(server) = found_server(&service) {
                    found.insert(service.fullname.clone(), server);
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                found.remove(&fullname);
            }
            _ => {}
        }
    }
    let _ = daemon.stop_browse(SERVICE);
    let _ = daemon.shutdown();
    let mut servers: Vec<FoundServer> = found.into_values().collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name).then(a.url.cmp(&b.url)));
    Ok(servers)
}

fn found_server(service: &mdns_sd::ResolvedService) -> Option<FoundServer> {
    let txt = |key: &str| service.get_property_val_str(key).map(str::to_owned);
    // IPv4 first: a link-local IPv6 address needs its zone, which a URL cannot carry well.
    let mut addresses: Vec<IpAddr> = service
        .get_addresses()
        .iter()
        .map(|a| a.to_ip_addr())
        .collect();
    addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    let ip = addresses.into_iter().next()?;
    let scheme = if txt("tls").as_deref() == Some("1") {
        "wss"
    } else {
        "ws"
    };
    let path = txt("path").unwrap_or_else(|| "/ws".to_owned());
    let url = format!(
        "{scheme}://{}{path}",
        SocketAddr::new(ip, service.get_port())
    );
    let rooms = txt("rooms")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (room, people) = pair.rsplit_once('=')?;
            Some(RoomCount {
                room: room.to_owned(),
                people: people.parse().ok()?,
            })
        })
        .collect();
    Some(FoundServer {
        name: txt("name").unwrap_or_else(|| service.fullname.clone()),
        url,
        rooms,
        people: txt("people").and_then(|p| p.parse().ok()).unwrap_or(0),
    })
}
