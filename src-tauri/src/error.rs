//! The shell's errors, as the frontend receives them: a stable `code` to branch on and a
//! plain-words `message` to show.

use serde::ser::SerializeStruct;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// The frontend sent a command the core does not know, or with wrong fields.
    #[error("{0}")]
    BadCommand(String),
    /// The core has stopped (the app is quitting) and takes no more commands.
    #[error("the connection engine has stopped; restart Confab")]
    PeerStopped,
    /// This install's identity (its DTLS certificate) could not be read or created.
    #[error("could not load this install's identity: {0}")]
    Identity(String),
    /// Settings could not be read or written.
    #[error("could not save the settings: {0}")]
    Settings(String),
    /// The hosted signaling server could not start.
    #[error("could not host a server: {0}")]
    Host(String),
    /// Servers on the network could not be looked for (no multicast socket).
    #[error("could not look for servers on the network: {0}")]
    Discovery(String),
    /// Tauri could not give a folder the app needs (config, data, logs).
    #[error("no folder for {0}")]
    Folder(&'static str),
}

impl ShellError {
    /// The stable code the frontend branches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadCommand(_) => "bad-command",
            Self::PeerStopped => "stopped",
            Self::Identity(_) => "identity",
            Self::Settings(_) => "settings",
            Self::Host(_) => "host",
            Self::Discovery(_) => "discovery",
            Self::Folder(_) => "folder",
        }
    }
}

/// Tauri hands command errors to the page as JSON: `{code, message}`.
impl serde::Serialize for ShellError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("ShellError", 2)?;
        out.serialize_field("code", self.code())?;
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}
