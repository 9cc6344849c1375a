//! Finding a server on the local network: a server in one network namespace announces
//! itself, and `confab discover` in another, joined to it by a virtual Ethernet link, finds
//! it by name with its rooms, at an address a peer then joins through. Needs root; every
//! namespace goes away when the test ends, also on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Process;
use common::netns::wait_for_listener;
use serde_json::Value;

/// Two namespaces and a veth between them, with TEST-NET-1 addresses that exist only
/// there.
struct Lan {
    a: String,
    b: String,
}

impl Lan {
    fn new() -> Option<Self> {
        Self::new_named("found")
    }

    fn new_named(purpose: &str) -> Option<Self> {
        let root = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            eprintln!("skipped: network namespaces need root");
            return None;
        }
        let lan = Self {
            a: format!("confab-lan-{purpose}-a-{}", std::process::id()),
            b: format!("confab-lan-{purpose}-b-{}", std::process::id()),
        };
        ip(&["netns", "add", &lan.a]);
        ip(&["netns", "add", &lan.b]);
        ip(&[
            "-n", &lan.a, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns",
            &lan.b,
        ]);
        for (ns, addr) in [(&lan.a, "192.0.2.1/24"), (&lan.b, "192.0.2.2/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", "lan0"]);
            ip(&["-n", ns, "link", "set", "lan0", "multicast", "on", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Some(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

/// What `confab discover` prints in `ns`: one server a line.
fn discover(ns: &str) -> Vec<Value> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            env!("CARGO_BIN_EXE_confab"),
            "discover",
            "--wait",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_server_on_the_lan_is_found_by_name_with_its_rooms_and_joined() {
    let Some(lan) = Lan::new() else { return };
    let _server = Process::spawn_in_netns(
        &lan.a,
        &[
            "server",
            "--listen",
            "0.0.0.0:8787",
            "--name",
            "Ada's server",
            "--no-turn",
        ],
    );
    wait_for_listener(&lan.a, "127.0.0.1:8787");
    let ada = Process::spawn_in_netns(
        &lan.a,
        &[
            "peer",
            "--server",
            "ws://127.0.0.1:8787/ws",
            "--room",
            "team",
            "--name",
            "Ada",
        ],
    );
    ada.event(Duration::from_secs(10), "Ada connected", |e| {
        e["event"] == "signaling" && e["state"] == "connected"
    });

    // The announcement follows the rooms within a couple of seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let servers = discover(&lan.b);
        let ada_server = servers.into_iter().find(|s| s["name"] == "Ada's server");
        if let Some(server) = ada_server.filter(|s| s["people"] == 1) {
            break server;
        }
        assert!(
            Instant::now() < deadline,
            "Ada's server with Ada in it was not found"
        );
    };
    assert_eq!(found["url"], "ws://192.0.2.1:8787/ws");
    assert_eq!(
        found["rooms"],
        serde_json::json!([{"room": "team", "people": 1}])
    );

    let url = found["url"].as_str().unwrap();
    let bo = Process::spawn_in_netns(
        &lan.b,
        &["peer", "--server", url, "--room", "team", "--name", "Bo"],
    );
    bo.event(Duration::from_secs(10), "Bo in Ada's room", |e| {
        e["event"] == "peer-joined"
            || (e["event"] == "peers" && e["peers"].as_array().is_some_and(|p| !p.is_empty()))
    });
}

#[test]
fn a_server_told_not_to_announce_is_not_found() {
    let Some(lan) = Lan::new_named("quiet") else {
        return;
    };
    let _quiet = Process::spawn_in_netns(
        &lan.a,
        &[
            "server",
            "--listen",
            "0.0.0.0:8787",
            "--name",
            "Quiet",
            "--no-turn",
            "--no-announce",
        ],
    );
    let _loud = Process::spawn_in_netns(
        &lan.a,
        &[
            "server",
            "--listen",
            "0.0.0.0:8788",
            "--name",
            "Loud",
            "--no-turn",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let names = loop {
        let names: Vec<Value> = discover(&lan.b)
            .into_iter()
            .map(|s| s["name"].clone())
            .collect();
        if names.contains(&Value::from("Loud")) {
            break names;
        }
        assert!(
            Instant::now() < deadline,
            "the announcing server was not found either"
        );
    };
    assert!(!names.contains(&Value::from("Quiet")), "{names:?}");
}

#[test]
fn a_server_listening_on_one_address_is_found_at_it() {
    let Some(lan) = Lan::new_named("one") else {
        return;
    };
    // In b, the namespace the veth's far end was moved into: there, a service announced
    // with its one address was never answered for.
    let _server = Process::spawn_in_netns(
        &lan.b,
        &[
            "server",
            "--listen",
            "192.0.2.2:8787",
            "--name",
            "One address",
            "--no-turn",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        if let Some(found) = discover(&lan.a)
            .into_iter()
            .find(|s| s["name"] == "One address")
        {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "a server on one address was never found"
        );
    };
    assert_eq!(found["url"], "ws://192.0.2.2:8787/ws");
}
