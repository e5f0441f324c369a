use std::io;
use std::net::SocketAddr;

/// What can stop a [`Server`](crate::Server) from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting that cannot be used, with the reason.
    #[error("{0}")]
    Config(String),
    /// A socket could not be bound.
    #[error("cannot listen for {what} on {addr}: {reason}")]
    Bind {
        /// `HTTP` or `UDP`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        reason: String,
    },
    /// Another I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
