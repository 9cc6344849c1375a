//! What can go wrong in a session, each with a stable code a window branches on.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The core has stopped (the app is quitting) and takes no more commands.
    #[error("the connection engine has stopped; restart Confab")]
    Stopped,
    /// This install's identity (its DTLS certificate) could not be read or created.
    #[error("could not load this install's identity: {0}")]
    Identity(String),
    /// Settings could not be written.
    #[error("could not save the settings: {0}")]
    Settings(String),
    /// A command named a room the app is not in (left, or never joined).
    #[error("not in the room {0:?}; join it first")]
    UnknownRoom(String),
    /// A command for any room, and the app is in none.
    #[error("not in any room; join one first")]
    NoRoom,
    /// The hosted signaling server could not start.
    #[error("could not host a server: {0}")]
    Host(String),
}

impl SessionError {
    /// The stable code a window branches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Identity(_) => "identity",
            Self::Settings(_) => "settings",
            Self::UnknownRoom(_) => "unknown-room",
            Self::NoRoom => "no-room",
            Self::Host(_) => "host",
        }
    }
}
