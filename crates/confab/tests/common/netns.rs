//! A network namespace of a test's own (the testkit's, loopback only): the server and the
//! peers run in it, nftables rules in it shape their traffic, and it is deleted when the
//! test ends, also on failure. Needs root.

use std::ops::Deref;
use std::time::Duration;

use confab_testkit::netns::{Netns, is_root};

use super::Process;

pub const SERVER: &str = "127.0.0.1:8787";

pub struct TestNetns {
    netns: Netns,
}

impl Deref for TestNetns {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl TestNetns {
    /// None (and the test passes without running) when not root: namespaces need it.
    pub fn new(purpose: &str) -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: a network namespace needs root");
            return None;
        }
        let netns = Netns::new(purpose).expect("a namespace with nftables");
        Some(Self { netns })
    }

    pub fn spawn(&self, args: &[&str]) -> Process {
        Process::spawn_in_netns(self.name(), args)
    }

    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::spawn_in_netns_with_env(self.name(), args, env)
    }

    /// The signaling server, once it takes connections.
    pub fn server(&self) -> Process {
        self.server_on(SERVER, &[])
    }

    /// A signaling server on `listen`, with `extra` flags, once it takes connections.
    pub fn server_on(&self, listen: &str, extra: &[&str]) -> Process {
        let mut args = vec!["server", "--listen", listen];
        args.extend_from_slice(extra);
        let server = self.spawn(&args);
        wait_for_listener(self.name(), listen);
        server
    }

    pub fn peer(&self, room: &str, name: &str, extra: &[&str]) -> Process {
        let url = format!("ws://{SERVER}/ws");
        let mut args = vec!["peer", "--server", &url, "--room", room, "--name", name];
        args.extend_from_slice(extra);
        self.spawn(&args)
    }
}

/// Waits until something in namespace `netns` accepts TCP connections on `addr`
/// (`IP:PORT`); panics after 10 s.
pub fn wait_for_listener(netns: &str, addr: &str) {
    confab_testkit::netns::wait_for_listener_in(netns, addr, Duration::from_secs(10))
        .expect("a listener in time");
}
