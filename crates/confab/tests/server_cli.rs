//! The `confab server` command as a user runs it: flags, start-up, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_signal::{ClientError, ClientOptions, SignalClient};

fn confab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_confab"))
}

#[test]
fn help_reads_well_and_a_wrong_flag_exits_2() {
    let help = confab().args(["server", "--help"]).output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--max-frame",
        "--max-room-peers",
        "--max-rooms",
        "--max-connections",
        "--rate",
        "--join-timeout",
        "--resume-grace",
        "--tls-cert",
        "--tls-key",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
    let wrong = confab()
        .args(["server", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let bad_value = confab()
        .args(["server", "--join-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad_value.status.code(), Some(2));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = confab()
        .args(["server", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn sigterm_closes_every_client_then_exits_0() {
    let mut child = confab()
        .args(["server", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        if let Some(at) = line.find("ws://") {
            break line[at..].trim().to_owned();
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let join = |name: &str| confab_proto_join(name);
        let (mut a, _) = SignalClient::join(&url, &ClientOptions::default(), join("A"))
            .await
            .unwrap();
        let (mut b, _) = SignalClient::join(&url, &ClientOptions::default(), join("B"))
            .await
            .unwrap();
        a.recv().await.unwrap(); // peer-joined
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for client in [&mut a, &mut b] {
            let closed = tokio::time::timeout(Duration::from_secs(5), client.recv())
                .await
                .unwrap();
            assert!(
                matches!(closed, Err(ClientError::Closed { code: 1001, .. })),
                "{closed:?}"
            );
        }
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn confab_proto_join(name: &str) -> confab_proto::Join {
    confab_proto::Join {
        room: "cli".into(),
        name: name.into(),
        version: 1,
        password: None,
        resume: None,
    }
}
