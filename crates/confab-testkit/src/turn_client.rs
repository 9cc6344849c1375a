//! A TURN client of the turn crate over a UDP socket of its own on loopback, listening: one
//! client as a relay meets it (a 5-tuple, one set of credentials).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};

/// A client of the TURN server at `server` with these long-term credentials.
pub async fn over_udp(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> anyhow::Result<Client> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.to_owned(),
        password: password.to_owned(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await?;
    client.listen().await?;
    Ok(client)
}
