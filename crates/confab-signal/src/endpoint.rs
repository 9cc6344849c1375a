//! Where the registry's frames go: a socket of this server, or a socket another server
//! of the cluster holds for a room this one owns.

use confab_proto::ServerFrame;

use crate::cluster::RemoteSocket;
use crate::registry::{Conn, ConnId};
use crate::session::ConnHandle;

#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Local(ConnHandle),
    Remote(RemoteSocket),
}

impl Conn for Endpoint {
    fn conn_id(&self) -> ConnId {
        match self {
            Self::Local(handle) => handle.conn_id(),
            Self::Remote(remote) => remote.conn,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Remote(remote) => Some(&remote.node),
        }
    }
}

impl Endpoint {
    /// Queues a frame without waiting.
    pub(crate) fn deliver(&self, frame: &ServerFrame) {
        match self {
            Self::Local(handle) => {
                handle.deliver(frame);
            }
            Self::Remote(remote) => remote.deliver(frame),
        }
    }

    /// A resume on another socket took this one's id: it is closed.
    pub(crate) fn replaced(&self) {
        match self {
            Self::Local(handle) => handle.replaced(),
            Self::Remote(remote) => remote.replaced(),
        }
    }
}
