//! `confab peer` as scripts drive it: JSON lines in and out, exit codes, and a peer
//! process killed outright.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Process, WAIT, chat_open, confab, connected_id, free_port, peer, server, tone_in_recording,
    voice_peer,
};
use serde_json::Value;

/// A file of `mib` MiB of varied bytes.
fn write_file_of_mib(path: &std::path::Path, mib: usize) {
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut file = std::fs::File::create(path).unwrap();
    for _ in 0..mib {
        file.write_all(&block).unwrap();
    }
}

#[test]
fn chat_between_two_peer_processes_then_quit_and_end_of_input_exit_0() {
    let (_server, url) = server();
    let mut a = peer(&url, "A");
    let a_id = connected_id(&a);
    let mut b = peer(&url, "B");
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);

    a.send(r#"{"cmd":"chat","text":"hello from A"}"#);
    let sent = a.event(WAIT, "chat-sent", |e| e["event"] == "chat-sent");
    assert_eq!(sent["to"], serde_json::json!([b_id]));
    let chat = b.event(WAIT, "chat", |e| e["event"] == "chat");
    assert_eq!(chat["text"], "hello from A");
    assert_eq!(chat["from"], a_id.as_str());
    assert_eq!(chat["scope"], "room");
    a.event(WAIT, "ack", |e| {
        e["event"] == "ack" && e["id"] == sent["id"]
    });

    b.send(r#"{"cmd":"peers"}"#);
    let peers = b.event(WAIT, "peers", |e| e["event"] == "peers");
    assert_eq!(peers["peers"][0]["id"], a_id.as_str());
    assert_eq!(peers["peers"][0]["name"], "A");
    assert_eq!(peers["peers"][0]["state"], "connected");

    b.send(r#"{"cmd":"teleport"}"#);
    b.event(WAIT, "bad-command", |e| {
        e["event"] == "error" && e["code"] == "bad-command"
    });

    a.send(r#"{"cmd":"quit"}"#);
    assert!(a.child.wait().unwrap().success());
    b.event(WAIT, "A gone", |e| {
        e["event"] == "peer-left" && e["id"] == a_id.as_str()
    });
    drop(b.stdin.take()); // end of input
    assert!(b.child.wait().unwrap().success());
}

#[test]
fn a_killed_peer_is_reported_gone_within_15_seconds() {
    let (_server, url) = server();
    let a = peer(&url, "A");
    let a_id = connected_id(&a);
    let mut b = peer(&url, "B");
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);
    b.child.kill().unwrap();
    let killed = Instant::now();
    let gone = a.event(Duration::from_secs(15), "B reported gone", |e| {
        (e["event"] == "peer-left" && e["id"] == b_id.as_str())
            || (e["event"] == "peer-state"
                && e["peer"] == b_id.as_str()
                && ["disconnected", "failed", "closed"]
                    .contains(&e["state"].as_str().unwrap_or("")))
    });
    eprintln!("reported {gone} after {:?}", killed.elapsed());
    // Cleaned up: the connection ends (failed or closed) well within the bound.
    a.event(Duration::from_secs(15), "B cleaned up", |e| {
        e["event"] == "peer-state"
            && e["peer"] == b_id.as_str()
            && ["failed", "closed"].contains(&e["state"].as_str().unwrap_or(""))
    });
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "took {:?}",
        killed.elapsed()
    );
}

#[test]
fn an_unreachable_server_is_an_error_and_exit_1() {
    let url = format!("ws://127.0.0.1:{}/ws", free_port());
    let mut process = peer(&url, "A");
    process.event(WAIT, "server-unreachable", |e| {
        e["event"] == "error" && e["code"] == "server-unreachable"
    });
    assert_eq!(process.child.wait().unwrap().code(), Some(1));
}

#[test]
fn a_wrong_flag_exits_2() {
    let out = confab().args(["peer", "--room", "r"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = confab()
        .args([
            "peer",
            "--server",
            "ws://127.0.0.1:9/ws",
            "--room",
            "r",
            "--name",
            "A",
        ])
        .args(["--audio-in", "radio:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let usage = String::from_utf8_lossy(&out.stderr);
    assert!(usage.contains("unknown audio input `radio:1`"), "{usage}");
}

/// A sender killed halfway through a file: started again with the same install, it
/// offers the file again and the receiver resumes from the bytes it holds.
#[test]
fn a_transfer_cut_by_killing_the_sender_resumes_and_completes() {
    let (_server, url) = server();
    let root = std::env::temp_dir().join(format!("confab-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (sender_dir, receiver_dir, inbox) = (root.join("a"), root.join("b"), root.join("inbox"));
    std::fs::create_dir_all(&sender_dir).unwrap();
    let source = root.join("big.bin");
    write_file_of_mib(&source, 300);
    let identity = |dir: &std::path::Path| dir.display().to_string();
    // -v: its logs come as events, and say from which offset the receiver accepted.
    let start_sender = || {
        Process::spawn(&[
            "-v",
            "peer",
            "--server",
            &url,
            "--room",
            "cli",
            "--name",
            "A",
            "--identity",
            &identity(&sender_dir),
        ])
    };
    let receiver = Process::spawn(&[
        "peer",
        "--server",
        &url,
        "--room",
        "cli",
        "--name",
        "B",
        "--identity",
        &identity(&receiver_dir),
        "--auto-accept-files",
        &identity(&inbox),
    ]);
    let b_id = connected_id(&receiver);
    let mut sender = start_sender();
    let a_id = connected_id(&sender);
    chat_open(&sender, &b_id);
    chat_open(&receiver, &a_id);
    sender.send(&format!(
        r#"{{"cmd":"send-file","to":"{b_id}","path":"{}"}}"#,
        source.display()
    ));
    let progress = receiver.event(WAIT, "progress", |e| {
        e["event"] == "file-progress" && e["bytes"].as_u64().unwrap_or(0) > 0
    });
    sender.child.kill().unwrap();
    let _ = sender.child.wait();
    let held_at_kill = progress["bytes"].as_u64().unwrap();
    assert!(held_at_kill < 300 << 20, "killed before the end");

    let sender = start_sender();
    let accepted = sender.event(WAIT, "accept with an offset", |e| {
        e["event"] == "log" && e["msg"].as_str().is_some_and(|m| m.contains("from offset"))
    });
    let offset: u64 = accepted["msg"]
        .as_str()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(offset > 0, "resumed, not restarted: {accepted}");
    let done = receiver.event(Duration::from_secs(60), "resumed and done", |e| {
        e["event"] == "file-done" && e["ok"] == true
    });
    let path = done["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read(path).unwrap(),
        std::fs::read(&source).unwrap()
    );
    sender.event(WAIT, "sender's verdict", |e| {
        e["event"] == "file-done" && e["ok"] == true
    });
    let _ = std::fs::remove_dir_all(&root);
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(process: &Process) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A 1 GiB file between two processes: intact, and neither side's memory grows with it.
#[test]
fn a_gibibyte_file_arrives_intact_with_flat_memory() {
    let (_server, url) = server();
    let root = std::env::temp_dir().join(format!("confab-gib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let source = root.join("one.gib");
    write_file_of_mib(&source, 1024);
    let inbox = root.join("inbox");
    let receiver = Process::spawn(&[
        "peer",
        "--server",
        &url,
        "--room",
        "cli",
        "--name",
        "B",
        "--auto-accept-files",
        &inbox.display().to_string(),
    ]);
    let b_id = connected_id(&receiver);
    let mut sender = peer(&url, "A");
    let a_id = connected_id(&sender);
    chat_open(&sender, &b_id);
    chat_open(&receiver, &a_id);
    sender.send(&format!(
        r#"{{"cmd":"send-file","to":"{b_id}","path":"{}"}}"#,
        source.display()
    ));
    let done = receiver.event(Duration::from_secs(300), "file-done", |e| {
        e["event"] == "file-done"
    });
    assert_eq!(done["ok"], true, "{done}");
    sender.event(WAIT, "verdict", |e| {
        e["event"] == "file-done" && e["ok"] == true
    });
    let (sender_kib, receiver_kib) = (peak_rss_kib(&sender), peak_rss_kib(&receiver));
    eprintln!("peak RSS: sender {sender_kib} KiB, receiver {receiver_kib} KiB");
    for kib in [sender_kib, receiver_kib] {
        assert!(kib < 200 * 1024, "peak RSS {kib} KiB for a 1 GiB file");
    }
    let received = std::path::PathBuf::from(done["path"].as_str().unwrap());
    assert_eq!(std::fs::metadata(&received).unwrap().len(), 1 << 30);
    let digest = |p: &std::path::Path| {
        let out = Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(digest(&source), digest(&received));
    let _ = std::fs::remove_dir_all(&root);
}

/// A message typed alone just before the process is killed is still there, queued, after
/// a restart with the same install, and goes out once when someone arrives.
#[test]
fn a_message_typed_before_a_kill_survives_it() {
    let (_server, url) = server();
    let dir = std::env::temp_dir().join(format!("confab-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = [
        "peer",
        "--server",
        &url,
        "--room",
        "kill",
        "--name",
        "A",
        "--identity",
        dir.to_str().unwrap(),
    ];
    let mut a = Process::spawn(&args);
    connected_id(&a);
    a.send(r#"{"cmd":"chat","text":"typed, then the power went"}"#);
    a.event(WAIT, "chat-sent", |e| e["event"] == "chat-sent");
    a.child.kill().unwrap();
    let _ = a.child.wait();

    let mut a = Process::spawn(&args);
    connected_id(&a);
    a.send(r#"{"cmd":"history"}"#);
    let history = a.event(WAIT, "history", |e| e["event"] == "history");
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{history}");
    assert_eq!(messages[0]["text"], "typed, then the power went");
    assert_eq!(messages[0]["state"], "queued");
    assert_eq!(messages[0]["author"]["name"], "A");

    let b = Process::spawn(&["peer", "--server", &url, "--room", "kill", "--name", "B"]);
    let got = b.event(WAIT, "the waiting message", |e| e["event"] == "chat");
    assert_eq!(got["text"], "typed, then the power went");
    assert_eq!(got["author"]["name"], "A");
    assert_eq!(got["history"], false);
    a.event(WAIT, "ack", |e| e["event"] == "ack");
    a.send(r#"{"cmd":"history"}"#);
    let history = a.event(WAIT, "history", |e| e["event"] == "history");
    assert_eq!(history["messages"][0]["state"], "delivered", "{history}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second of a tone at `hz` that pauses for its last 100 ms, as a voice pauses: a WAV
/// source plays it over and over.
fn write_tone_with_pauses(path: &std::path::Path, hz: f64) {
    let mut tone = vec![0.0f32; 48_000];
    confab_audio::dsp::Tone::new(hz).fill(&mut tone[..43_200]);
    let mut wav = confab_audio::wav::WavSink::create(path).unwrap();
    wav.write(&tone).unwrap();
    wav.finish().unwrap();
}

/// Two headless peers in a call: each recording holds the other's tone, not its own.
#[test]
fn two_peers_in_a_call_hear_each_other() {
    let (_server, url) = server();
    let root = std::env::temp_dir().join(format!("confab-call-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (rec_a, rec_b) = (root.join("a.wav"), root.join("b.wav"));
    let voice_a = root.join("a-voice.wav");
    write_tone_with_pauses(&voice_a, 440.0);
    let mut a = Process::spawn(&[
        "-v",
        "peer",
        "--server",
        &url,
        "--room",
        "call",
        "--name",
        "A",
        "--audio-in",
        &format!("wav:{}", voice_a.display()),
        "--audio-out",
        &format!("wav:{}", rec_a.display()),
    ]);
    let a_id = connected_id(&a);
    let mut b = Process::spawn(&[
        "peer",
        "--server",
        &url,
        "--room",
        "call",
        "--name",
        "B",
        "--audio-in",
        "sine:880",
        "--audio-out",
        &format!("wav:{}", rec_b.display()),
        "--auto-accept-calls",
    ]);
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);
    a.send(r#"{"cmd":"call"}"#);
    b.event(WAIT, "call-incoming", |e| e["event"] == "call-incoming");
    a.event(WAIT, "active", |e| {
        e["event"] == "call-state" && e["state"] == "active"
    });
    a.event(WAIT, "B's level", |e| {
        e["event"] == "level" && e["peer"] == b_id.as_str()
    });
    // Nothing is lost on loopback: once B has said so, A's frames are 10 ms (beginning
    // in a pause of A's tone), and the rest of the call (which the levels below are most
    // of) is heard in them.
    a.event(WAIT, "10 ms frames", |e| {
        e["event"] == "log"
            && e["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("voice in 10 ms frames"))
    });
    std::thread::sleep(Duration::from_secs(6));
    a.send(r#"{"cmd":"quit"}"#);
    b.send(r#"{"cmd":"quit"}"#);
    assert!(a.child.wait().unwrap().success());
    assert!(b.child.wait().unwrap().success());
    let (a_hears_b, a_hears_a) = (
        tone_in_recording(&rec_a, 880.0),
        tone_in_recording(&rec_a, 440.0),
    );
    let (b_hears_a, b_hears_b) = (
        tone_in_recording(&rec_b, 440.0),
        tone_in_recording(&rec_b, 880.0),
    );
    eprintln!(
        "A hears 880 at {a_hears_b:.1} dBFS, 440 at {a_hears_a:.1}; B hears 440 at {b_hears_a:.1}, 880 at {b_hears_b:.1}"
    );
    assert!(a_hears_b > -20.0 && a_hears_a < -40.0);
    assert!(b_hears_a > -20.0 && b_hears_b < -40.0);
    let _ = std::fs::remove_dir_all(&root);
}

/// Three peers in one call: each hears both others, mixed, and not itself.
#[test]
fn three_peers_in_a_group_call_hear_both_others() {
    let (_server, url) = server();
    let root = std::env::temp_dir().join(format!("confab-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let tones = [("A", 440), ("B", 660), ("C", 880)];
    let mut peers = Vec::new();
    let mut ids = Vec::new();
    for (name, hz) in tones {
        let peer = voice_peer(&url, "group", name, hz, &root.join(format!("{name}.wav")));
        ids.push(connected_id(&peer));
        peers.push(peer);
    }
    for (i, peer) in peers.iter().enumerate() {
        let mut waiting: Vec<&String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id)
            .collect();
        while !waiting.is_empty() {
            let open = peer.event(WAIT, "chat open", |e| {
                e["event"] == "channel" && e["label"] == "chat" && e["state"] == "open"
            });
            waiting.retain(|id| open["peer"] != id.as_str());
        }
    }
    peers[0].send(r#"{"cmd":"call"}"#);
    // Everyone hears both others' levels.
    for (i, peer) in peers.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                let what = format!("peer {i} hearing {id}");
                peer.event(WAIT, &what, |e| {
                    e["event"] == "level" && e["peer"] == id.as_str()
                });
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // All at once, so every recording ends with everyone still in the call.
    for peer in &mut peers {
        peer.send(r#"{"cmd":"quit"}"#);
    }
    for peer in &mut peers {
        assert!(peer.child.wait().unwrap().success());
    }
    for (name, own) in tones {
        let recording = root.join(format!("{name}.wav"));
        for (other, hz) in tones {
            let level = tone_in_recording(&recording, f64::from(hz));
            if other == name {
                assert!(level < -40.0, "{name} hears itself at {level}");
            } else {
                assert!(level > -20.0, "{name} hears {other} at {level}");
            }
        }
        let _ = own;
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Mute silences the muted side at the other end within 200 ms; unmute brings it back;
/// hanging up and calling straight back works, ten times over, whichever side calls.
#[test]
fn mute_and_ten_calls_in_a_row() {
    let (_server, url) = server();
    let root = std::env::temp_dir().join(format!("confab-mute-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut a = voice_peer(&url, "mute", "A", 440, &root.join("a.wav"));
    let a_id = connected_id(&a);
    let mut b = voice_peer(&url, "mute", "B", 880, &root.join("b.wav"));
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);
    let heard = |e: &Value, who: &str, loud: bool| {
        e["event"] == "level"
            && e["peer"] == who
            && (e["dbfs"].as_f64().unwrap_or(-200.0) > -30.0) == loud
    };
    for round in 0..10 {
        // Odd rounds, B calls back the moment the last call ended.
        let (caller, callee, caller_id) = if round % 2 == 0 {
            (&mut a, &mut b, a_id.as_str())
        } else {
            (&mut b, &mut a, b_id.as_str())
        };
        caller.send(r#"{"cmd":"call"}"#);
        // Levels of the last call may still be queued: from the invitation on, they are
        // this call's.
        callee.event(WAIT, "the invitation", |e| e["event"] == "call-incoming");
        callee.event(WAIT, &format!("caller heard in call {round}"), |e| {
            heard(e, caller_id, true)
        });
        if round == 0 {
            caller.send(r#"{"cmd":"mute","muted":true}"#);
            let muted_at = Instant::now();
            callee.event(WAIT, "muted", |e| {
                e["event"] == "muted" && e["muted"] == true
            });
            callee.event(WAIT, "caller silent", |e| heard(e, caller_id, false));
            let silent_after = muted_at.elapsed();
            eprintln!("silent at the other end {silent_after:?} after mute");
            assert!(
                silent_after < Duration::from_millis(200),
                "{silent_after:?}"
            );
            caller.send(r#"{"cmd":"mute","muted":false}"#);
            callee.event(WAIT, "caller back", |e| heard(e, caller_id, true));
        }
        // The one who did not call hangs up.
        callee.send(r#"{"cmd":"hangup"}"#);
        caller.event(WAIT, "ended", |e| {
            e["event"] == "call-state" && e["state"] == "ended"
        });
    }
    for peer in [&mut a, &mut b] {
        peer.send(r#"{"cmd":"quit"}"#);
        assert!(peer.child.wait().unwrap().success());
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A peer that joins the room during a call is invited into it: everyone then hears
/// everyone.
#[test]
fn a_newcomer_is_added_to_a_running_call() {
    let (_server, url) = server();
    let root = std::env::temp_dir().join(format!("confab-newcomer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let tones = [("A", 440), ("B", 660), ("C", 880)];
    let spawn = |(name, hz): (&str, u32)| {
        voice_peer(
            &url,
            "newcomer",
            name,
            hz,
            &root.join(format!("{name}.wav")),
        )
    };
    let mut a = spawn(tones[0]);
    let a_id = connected_id(&a);
    let mut b = spawn(tones[1]);
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    a.send(r#"{"cmd":"call"}"#);
    b.event(WAIT, "A heard at B", |e| {
        e["event"] == "level" && e["peer"] == a_id.as_str()
    });

    let mut c = spawn(tones[2]);
    let c_id = connected_id(&c);
    chat_open(&a, &c_id);
    chat_open(&b, &c_id);
    a.send(&format!(r#"{{"cmd":"call","peers":["{c_id}"]}}"#));
    let incoming = c.event(WAIT, "the invitation", |e| e["event"] == "call-incoming");
    assert_eq!(incoming["from"], a_id.as_str());
    // The prompt can say who else is in the call.
    assert_eq!(incoming["members"], serde_json::json!([b_id]));
    for (who, id) in [(&c, &a_id), (&c, &b_id), (&b, &c_id), (&a, &c_id)] {
        who.event(WAIT, &format!("{id} heard"), |e| {
            e["event"] == "level"
                && e["peer"] == id.as_str()
                && e["dbfs"].as_f64().unwrap_or(-200.0) > -30.0
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    for peer in [&mut a, &mut b, &mut c] {
        peer.send(r#"{"cmd":"quit"}"#);
    }
    for peer in [&mut a, &mut b, &mut c] {
        assert!(peer.child.wait().unwrap().success());
    }
    for (name, _) in tones {
        let recording = root.join(format!("{name}.wav"));
        for (other, hz) in tones {
            let level = tone_in_recording(&recording, f64::from(hz));
            if other == name {
                assert!(level < -40.0, "{name} hears itself at {level}");
            } else {
                // Three senders on a loaded machine: a glitch here and there costs a few dB.
                assert!(level > -25.0, "{name} hears {other} at {level}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Two peers who call each other at the same moment end up in one call, without either
/// having to answer.
#[test]
fn calls_that_cross_become_one_call() {
    let (_server, url) = server();
    let args = |name: &str, hz: u32| -> Vec<String> {
        [
            "peer", "--server", &url, "--room", "crossed", "--name", name,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--audio-in".into(), format!("sine:{hz}")])
        .collect()
    };
    let spawn =
        |args: Vec<String>| Process::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut a = spawn(args("A", 440));
    let a_id = connected_id(&a);
    let mut b = spawn(args("B", 880));
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);
    for round in 0..3 {
        a.send(r#"{"cmd":"call"}"#);
        b.send(r#"{"cmd":"call"}"#);
        let mut calls = Vec::new();
        for (who, other) in [(&a, &b_id), (&b, &a_id)] {
            let active = who.event(WAIT, &format!("active in round {round}"), |e| {
                e["event"] == "call-state" && e["state"] == "active" && e["peer"] == other.as_str()
            });
            calls.push(active["call"].as_str().unwrap().to_owned());
            who.event(WAIT, &format!("{other} heard in round {round}"), |e| {
                e["event"] == "level"
                    && e["peer"] == other.as_str()
                    && e["dbfs"].as_f64().unwrap_or(-200.0) > -30.0
            });
        }
        assert_eq!(calls[0], calls[1], "one call, not two");
        a.send(r#"{"cmd":"hangup"}"#);
        b.event(WAIT, "ended", |e| {
            e["event"] == "call-state" && e["state"] == "ended" && e["call"] == calls[0].as_str()
        });
    }
    for peer in [&mut a, &mut b] {
        peer.send(r#"{"cmd":"quit"}"#);
        assert!(peer.child.wait().unwrap().success());
    }
}
