//! The shell's errors, as the frontend receives them: a stable `code` to branch on and a
//! plain-words `message` to show.

use confab_session::SessionError;
use serde::ser::SerializeStruct;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// The frontend sent a command the core does not know, or with wrong fields.
    #[error("{0}")]
    BadCommand(String),
    /// The session (settings, the core peer, the hosted server) refused.
    #[error(transparent)]
    Session(#[from] SessionError),
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
            Self::Session(e) => e.code(),
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
