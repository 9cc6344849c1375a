//! File transfer between two real peers on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use confab_mesh::{Command, Event, Mesh};
use sha2::{Digest, Sha256};

fn scratch(name: &str) -> TempDir {
    TempDir::new("files", name)
}

fn write_file(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sha(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Offers `path` from `a` to `b_id`, has `b` accept into `into`; returns b's file-done.
async fn transfer(
    a: &mut Mesh,
    b: &mut Mesh,
    b_id: &str,
    path: &Path,
    into: &Path,
) -> (Event, Event) {
    a.send(Command::SendFile {
        to: b_id.to_owned(),
        path: path.display().to_string(),
    });
    let incoming = wait_for(b, "file-incoming", |e| {
        matches!(e, Event::FileIncoming { .. })
    })
    .await;
    let Event::FileIncoming { file, .. } = incoming else {
        unreachable!()
    };
    b.send(Command::AcceptFile {
        file: file.clone(),
        dir: into.display().to_string(),
    });
    let done = |e: &Event| matches!(e, Event::FileDone { file: f, .. } if *f == file);
    let at_b = wait_within(b, "file-done", TRANSFER_WAIT, done).await;
    let at_a = wait_within(a, "file-done", TRANSFER_WAIT, done).await;
    (at_a, at_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_0_1_and_20_mib_arrive_intact() {
    let server = server().await;
    let (mut a, _, mut b, b_id) = connected_pair(&server, "files").await;
    let src = scratch("src");
    let dst = scratch("dst");
    for (name, size) in [("empty.bin", 0), ("one.bin", 1), ("twenty.bin", 20 << 20)] {
        let path = write_file(&src, name, size);
        let (at_a, at_b) = transfer(&mut a, &mut b, &b_id, &path, &dst).await;
        assert!(matches!(at_a, Event::FileDone { ok: true, .. }), "{at_a:?}");
        let Event::FileDone {
            ok: true,
            path: Some(received),
            ..
        } = at_b
        else {
            panic!("{at_b:?}")
        };
        assert_eq!(PathBuf::from(&received), dst.join(name));
        assert_eq!(sha(&path), sha(Path::new(&received)), "{name}");
    }
    // Nothing temporary is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_is_not_overwritten_and_three_go_at_once() {
    let server = server().await;
    let (a, _, mut b, b_id) = connected_pair(&server, "files").await;
    let src = scratch("src3");
    let dst = scratch("dst3");
    std::fs::write(dst.join("doc.txt"), "already here").unwrap();
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| write_file(&src, &format!("f{i}.bin"), 300_000 + i))
        .collect();
    let doc = write_file(&src, "doc.txt", 10);
    for path in paths.iter().chain([&doc]) {
        a.send(Command::SendFile {
            to: b_id.clone(),
            path: path.display().to_string(),
        });
    }
    let mut offers = Vec::new();
    while offers.len() < 4 {
        if let Event::FileIncoming { file, .. } = wait_for(&mut b, "offers", |e| {
            matches!(e, Event::FileIncoming { .. })
        })
        .await
        {
            offers.push(file);
        }
    }
    for file in &offers {
        b.send(Command::AcceptFile {
            file: file.clone(),
            dir: dst.display().to_string(),
        });
    }
    let mut done = 0;
    // What else came meanwhile (errors, logs), for the message should one fail.
    let mut seen = Vec::new();
    while done < 4 {
        let event = wait_for(&mut b, "done", |e| {
            matches!(e, Event::FileDone { .. } | Event::Error { .. })
        })
        .await;
        if let Event::FileDone { ok, .. } = &event {
            assert!(*ok, "{event:?} after {seen:#?}");
            done += 1;
        }
        seen.push(event);
    }
    assert_eq!(
        std::fs::read_to_string(dst.join("doc.txt")).unwrap(),
        "already here"
    );
    assert_eq!(sha(&doc), sha(&dst.join("doc (1).txt")));
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(sha(path), sha(&dst.join(format!("f{i}.bin"))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_an_offer_tells_the_sender() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "files").await;
    let src = scratch("srcr");
    let path = write_file(&src, "no.bin", 1000);
    a.send(Command::SendFile {
        to: b_id.clone(),
        path: path.display().to_string(),
    });
    let Event::FileIncoming { file, from, .. } =
        wait_for(&mut b, "offer", |e| matches!(e, Event::FileIncoming { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(from, a_id);
    b.send(Command::RejectFile { file: file.clone() });
    let at_a = wait_for(&mut a, "done", |e| matches!(e, Event::FileDone { .. })).await;
    assert!(matches!(at_a, Event::FileDone { ok: false, file: f, .. } if f == file));
}

/// The bytes sent do not match the offered hash (the file changed after it was offered):
/// the receiver says so, and nothing appears under the file's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_stream_is_detected_and_never_saved() {
    let server = server().await;
    let (mut a, _, mut b, b_id) = connected_pair(&server, "files").await;
    let src = scratch("srct");
    let dst = scratch("dstt");
    let path = write_file(&src, "contract.pdf", 100_000);
    a.send(Command::SendFile {
        to: b_id.clone(),
        path: path.display().to_string(),
    });
    let Event::FileIncoming { file, .. } =
        wait_for(&mut b, "offer", |e| matches!(e, Event::FileIncoming { .. })).await
    else {
        unreachable!()
    };
    // Same size, different bytes.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[50_000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    b.send(Command::AcceptFile {
        file: file.clone(),
        dir: dst.display().to_string(),
    });
    let at_b = wait_for(&mut b, "done", |e| matches!(e, Event::FileDone { .. })).await;
    assert!(
        matches!(
            at_b,
            Event::FileDone {
                ok: false,
                path: None,
                ..
            }
        ),
        "{at_b:?}"
    );
    let at_a = wait_for(&mut a, "verdict", |e| matches!(e, Event::FileDone { .. })).await;
    assert!(
        matches!(at_a, Event::FileDone { ok: false, .. }),
        "{at_a:?}"
    );
    assert_eq!(
        std::fs::read_dir(&dst).unwrap().count(),
        0,
        "no file, not even a partial one"
    );
}

/// A transfer under way is cancelled from either side: both ends report it failed and
/// nothing appears under the file's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_under_way_is_cancelled_from_either_side() {
    let server = server().await;
    let (mut a, _, mut b, b_id) = connected_pair(&server, "files").await;
    let src = scratch("srcc");
    let dst = scratch("dstc");
    let path = write_file(&src, "big.bin", 200 << 20);
    for cancel_at_receiver in [true, false] {
        a.send(Command::SendFile {
            to: b_id.clone(),
            path: path.display().to_string(),
        });
        let Event::FileIncoming { file, .. } =
            wait_for(&mut b, "offer", |e| matches!(e, Event::FileIncoming { .. })).await
        else {
            unreachable!()
        };
        b.send(Command::AcceptFile {
            file: file.clone(),
            dir: dst.display().to_string(),
        });
        wait_for(
            &mut b,
            "progress",
            |e| matches!(e, Event::FileProgress { bytes, .. } if *bytes > 0),
        )
        .await;
        let canceller = if cancel_at_receiver { &b } else { &a };
        canceller.send(Command::RejectFile { file: file.clone() });
        for mesh in [&mut a, &mut b] {
            let done = wait_for(
                mesh,
                "cancelled",
                |e| matches!(e, Event::FileDone { file: f, .. } if *f == file),
            )
            .await;
            assert!(
                matches!(done, Event::FileDone { ok: false, .. }),
                "{done:?}"
            );
        }
    }
    assert!(!dst.join("big.bin").exists());
}

/// Files cross in both directions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_cross_in_both_directions_at_once() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "files").await;
    let src = scratch("srcx");
    let (into_a, into_b) = (scratch("intoa"), scratch("intob"));
    let from_a = write_file(&src, "from-a.bin", 3 << 20);
    let from_b = write_file(&src, "from-b.bin", 2 << 20);
    a.send(Command::SendFile {
        to: b_id,
        path: from_a.display().to_string(),
    });
    b.send(Command::SendFile {
        to: a_id,
        path: from_b.display().to_string(),
    });
    for (mesh, into) in [(&mut a, &into_a), (&mut b, &into_b)] {
        let Event::FileIncoming { file, .. } =
            wait_for(mesh, "offer", |e| matches!(e, Event::FileIncoming { .. })).await
        else {
            unreachable!()
        };
        mesh.send(Command::AcceptFile {
            file,
            dir: into.display().to_string(),
        });
    }
    for (mesh, source, into) in [(&mut a, &from_b, &into_a), (&mut b, &from_a, &into_b)] {
        let done = wait_for(mesh, "received", |e| {
            matches!(e, Event::FileDone { path: Some(_), .. })
        })
        .await;
        assert!(matches!(done, Event::FileDone { ok: true, .. }), "{done:?}");
        assert_eq!(sha(source), sha(&into.join(source.file_name().unwrap())));
    }
}
