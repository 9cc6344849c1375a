//! The mesh's side of file transfer: offers both ways, accepting into a folder, cancels
//! and verdicts. The bytes themselves move in the peer tasks (`files.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use confab_proto::PeerMessage;

use super::MeshTask;
use crate::api::{Event, LogLevel};
use crate::error::ErrorCode;
use crate::files::{self, Incoming};
use crate::peer::PeerInput;

/// A file we offered.
#[derive(Debug)]
pub(super) struct Outgoing {
    to: String,
    path: PathBuf,
    size: u64,
}

/// A file offered to us.
#[derive(Debug)]
pub(super) struct Offered {
    from: String,
    name: String,
    size: u64,
    sha256: String,
}

#[derive(Debug, Default)]
pub(super) struct Transfers {
    outgoing: HashMap<String, Outgoing>,
    incoming: HashMap<String, Offered>,
}

/// A file read and hashed, ready to be offered.
#[derive(Debug)]
pub(super) struct Described {
    /// The id of an earlier offer of the same file, offered again to resume.
    pub(super) file: Option<String>,
    pub(super) to: String,
    pub(super) path: PathBuf,
    pub(super) result: std::io::Result<(u64, String)>,
}

impl MeshTask {
    /// `send-file`: hashes the file off the mesh task, then offers it.
    pub(super) fn send_file(&mut self, to: String, path: String) {
        if !self.outbox.is_open(&to) {
            return self.error(
                ErrorCode::NotConnected,
                format!("no open channel to {to}"),
                Some(&to),
            );
        }
        self.describe(None, to, PathBuf::from(path));
    }

    /// Reads and hashes a file on a task of its own; the offer follows when it is done.
    fn describe(&self, file: Option<String>, to: String, path: PathBuf) {
        let done = self.internal.clone();
        tokio::spawn(async move {
            let result = files::describe(&path).await;
            let _ = done.send(Described {
                file,
                to,
                path,
                result,
            });
        });
    }

    /// A peer's channel opened again: files it never confirmed are offered again under
    /// their first ids, so the receiver resumes from what it holds.
    pub(super) fn reoffer_unfinished_files(&mut self, peer: &str) {
        let Some(fingerprint) = self.fingerprint(peer) else {
            return;
        };
        let unfinished = self.store.files_unfinished_for(&fingerprint);
        for (file, path) in self.report_store(unfinished).unwrap_or_default() {
            if !self.transfers.outgoing.contains_key(&file) {
                self.describe(Some(file), peer.to_owned(), path);
            }
        }
    }

    pub(super) fn offer_described(&mut self, described: Described) {
        let Described {
            file,
            to,
            path,
            result,
        } = described;
        let (size, sha256) = match result {
            Ok(description) => description,
            Err(e) => {
                return self.error(
                    ErrorCode::FileUnreadable,
                    format!("{}: {e}", path.display()),
                    Some(&to),
                );
            }
        };
        let file = file.unwrap_or_else(super::new_message_id);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_owned());
        let offer = PeerMessage::FileOffer {
            file: file.clone(),
            name: name.clone(),
            size,
            sha256,
        };
        if !self.send_to(&to, PeerInput::Send(offer.to_json())) {
            return self.error(
                ErrorCode::NotConnected,
                format!("no connection to {to}"),
                Some(&to),
            );
        }
        if let Some(fingerprint) = self.fingerprint(&to) {
            let kept = self.store.file_offered(&file, &fingerprint, &path);
            self.report_store(kept);
        }
        self.transfers.outgoing.insert(
            file.clone(),
            Outgoing {
                to: to.clone(),
                path,
                size,
            },
        );
        self.emit(Event::FileOffered {
            file,
            to,
            name,
            size,
        });
    }

    pub(super) fn on_file_offer(
        &mut self,
        from: String,
        file: String,
        name: String,
        size: u64,
        sha256: String,
    ) {
        self.emit(Event::FileIncoming {
            file: file.clone(),
            from: from.clone(),
            name: name.clone(),
            size,
            sha256: sha256.clone(),
        });
        let sender = self.fingerprint(&from);
        self.transfers.incoming.insert(
            file.clone(),
            Offered {
                from,
                name,
                size,
                sha256,
            },
        );
        // An offer we accepted before, cut off: take it up again where it stopped.
        let resumed = sender
            .and_then(|sender| self.report_store(self.store.accepted_dir(&file, &sender)))
            .flatten();
        if let Some(dir) = resumed.or_else(|| self.auto_accept_files.clone()) {
            self.accept_file(file, dir);
        }
    }

    /// `accept-file`: resumes from what an earlier try left in `dir`.
    pub(super) fn accept_file(&mut self, file: String, dir: PathBuf) {
        let Some(offered) = self.transfers.incoming.get(&file) else {
            return self.error(ErrorCode::UnknownFile, format!("no offer {file}"), None);
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return self.error(
                ErrorCode::FileUnwritable,
                format!("{}: {e}", dir.display()),
                None,
            );
        }
        let partial = files::partial_path(&dir, &file, &offered.sha256);
        let mut offset = files::held(&partial);
        if offset > offered.size {
            let _ = std::fs::remove_file(&partial);
            offset = 0;
        }
        let incoming = Incoming {
            name: files::sanitize_name(&offered.name),
            size: offered.size,
            sha256: offered.sha256.clone(),
            dir,
            partial,
        };
        let from = offered.from.clone();
        if let Some(sender) = self.fingerprint(&from) {
            let kept = self.store.file_accepted(&file, &sender, &incoming.dir);
            self.report_store(kept);
        }
        // The channel is expected before the peer hears the accept, so it cannot overtake.
        self.send_to(
            &from,
            PeerInput::ExpectFile {
                file: file.clone(),
                incoming,
            },
        );
        let accept = PeerMessage::FileAccept { file, offset };
        self.send_to(&from, PeerInput::Send(accept.to_json()));
    }

    /// `reject-file`: declines an offer or cancels a transfer, in either direction.
    pub(super) fn reject_file(&mut self, file: String) {
        let peer = match (
            self.transfers.incoming.remove(&file),
            self.transfers.outgoing.remove(&file),
        ) {
            (Some(offered), _) => offered.from,
            (None, Some(outgoing)) => outgoing.to,
            (None, None) => {
                return self.error(ErrorCode::UnknownFile, format!("no transfer {file}"), None);
            }
        };
        let finished = self.store.file_finished(&file);
        self.report_store(finished);
        self.send_to(&peer, PeerInput::CancelFile { file: file.clone() });
        let reject = PeerMessage::FileReject { file: file.clone() };
        self.send_to(&peer, PeerInput::Send(reject.to_json()));
        self.emit(Event::FileDone {
            file,
            peer,
            ok: false,
            path: None,
        });
    }

    pub(super) fn on_file_accepted(&mut self, peer: String, file: String, offset: u64) {
        let Some(outgoing) = self.transfers.outgoing.get(&file).filter(|o| o.to == peer) else {
            return self.error(
                ErrorCode::UnknownFile,
                format!("{peer} accepted {file}, which we did not offer it"),
                Some(&peer),
            );
        };
        if offset > outgoing.size {
            return self.reject_file(file);
        }
        self.log(
            LogLevel::Info,
            format!("file {file} accepted by {peer} from offset {offset}"),
            Some(&peer),
        );
        let input = PeerInput::SendFile {
            file,
            path: outgoing.path.clone(),
            offset,
            size: outgoing.size,
        };
        self.send_to(&peer, input);
    }

    pub(super) fn on_file_rejected(&mut self, peer: String, file: String) {
        let known = self.transfers.incoming.remove(&file).is_some()
            | self.transfers.outgoing.remove(&file).is_some();
        let finished = self.store.file_finished(&file);
        self.report_store(finished);
        if known {
            self.emit(Event::FileDone {
                file,
                peer,
                ok: false,
                path: None,
            });
        }
    }

    /// The receiver's verdict on a file we sent: the sender's `file-done`.
    pub(super) fn on_file_received(&mut self, peer: String, file: String, ok: bool) {
        if self.transfers.outgoing.remove(&file).is_some() {
            let finished = self.store.file_finished(&file);
            self.report_store(finished);
            self.emit(Event::FileDone {
                file,
                peer,
                ok,
                path: None,
            });
        }
    }

    /// A transfer ended on the peer task's side. An interrupted one (not ok) stays in the
    /// store, so the next offer of it resumes.
    pub(super) fn forget_transfer(&mut self, file: &str, ok: bool) {
        self.transfers.incoming.remove(file);
        if ok {
            let finished = self.store.file_finished(file);
            self.report_store(finished);
        }
    }

    pub(super) fn send_to(&self, peer: &str, input: PeerInput) -> bool {
        self.peers
            .get(peer)
            .and_then(|p| p.handle.as_ref())
            .is_some_and(|h| h.input.send(input).is_ok())
    }
}
