//! File transfers on `file:<id>` channels, both ways, and what they report.

use std::path::PathBuf;
use std::sync::Arc;

use confab_proto::PeerMessage;
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;

use super::{FILE_PREFIX, Peer, PeerInput, PeerOutput};
use crate::api::{Event, LogLevel};
use crate::error::ErrorCode;
use crate::files::{self, Received};

impl Peer {
    pub(super) async fn send_file(&mut self, file: String, path: PathBuf, offset: u64, size: u64) {
        let label = format!("{FILE_PREFIX}{file}");
        let channel = match self.pc.create_data_channel(&label, None).await {
            Ok(channel) => channel,
            Err(e) => {
                return self
                    .file_events(&file, size)
                    .failed(format!("cannot open {label}: {e}"));
            }
        };
        let events = self.file_events(&file, size);
        let handle = self.transfers.spawn(async move {
            if let Err(e) = files::send(channel, path, offset, size, |b| events.progress(b)).await {
                events.failed(e);
            }
        });
        self.transfer_handles.insert(file, handle);
    }

    pub(super) fn receive_file(&mut self, file: String, channel: Arc<dyn DataChannel>) {
        let Some(incoming) = self.expected_files.remove(&file) else {
            self.log(
                LogLevel::Warn,
                format!("file channel for {file}, which we did not accept: closed"),
            );
            self.transfers.spawn(async move {
                let _ = channel.close().await;
            });
            return;
        };
        let events = self.file_events(&file, incoming.size);
        let done = self.received_tx.clone();
        let handle = self.transfers.spawn(async move {
            let outcome = match files::receive(channel, incoming, |b| events.progress(b)).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    events.error(e);
                    Received::Complete {
                        ok: false,
                        path: None,
                    }
                }
            };
            let _ = done.send((events.file, outcome));
        });
        self.transfer_handles.insert(file, handle);
    }

    pub(super) fn file_events(&self, file: &str, size: u64) -> FileEvents {
        FileEvents {
            out: self.setup.out.clone(),
            peer: self.setup.remote_id.clone(),
            file: file.to_owned(),
            size,
        }
    }

    pub(super) async fn on_received(&mut self, file: String, outcome: Received) {
        self.transfer_handles.remove(&file);
        match outcome {
            Received::Complete { ok, path } => {
                let verdict = PeerMessage::FileReceived {
                    file: file.clone(),
                    ok,
                };
                self.on_input(PeerInput::Send(verdict.to_json())).await;
                if !ok {
                    self.log(
                        LogLevel::Warn,
                        format!("file {file} failed its size or SHA-256 check: discarded"),
                    );
                }
                self.emit(Event::FileDone {
                    file,
                    peer: self.setup.remote_id.clone(),
                    ok,
                    path: path.map(|p| p.display().to_string()),
                });
            }
            Received::Interrupted { held } => {
                self.log(
                    LogLevel::Warn,
                    format!("file {file} interrupted after {held} bytes; kept for a resume"),
                );
                self.emit(Event::FileDone {
                    file,
                    peer: self.setup.remote_id.clone(),
                    ok: false,
                    path: None,
                });
            }
        }
    }
}

/// What a transfer task reports about its file.
pub(super) struct FileEvents {
    out: mpsc::UnboundedSender<(String, PeerOutput)>,
    peer: String,
    file: String,
    size: u64,
}

impl FileEvents {
    fn emit(&self, event: Event) {
        let _ = self.out.send((self.peer.clone(), PeerOutput::Event(event)));
    }

    fn progress(&self, bytes: u64) {
        self.emit(Event::FileProgress {
            file: self.file.clone(),
            peer: self.peer.clone(),
            bytes,
            size: self.size,
        });
    }

    fn error(&self, message: String) {
        self.emit(Event::error(
            ErrorCode::FileTransfer,
            message,
            Some(&self.peer),
        ));
    }

    /// The transfer could not finish: an error, and a failed `file-done`.
    fn failed(&self, message: String) {
        self.error(message);
        self.emit(Event::FileDone {
            file: self.file.clone(),
            peer: self.peer.clone(),
            ok: false,
            path: None,
        });
    }
}
