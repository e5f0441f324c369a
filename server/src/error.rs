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
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// `HTTP` or `UDP`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said: [`std::io::ErrorKind::AddrInUse`] for a taken port,
        /// [`std::io::ErrorKind::PermissionDenied`] for a privileged one, ….
        #[source]
        source: io::Error,
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::net::{Ipv4Addr, TcpListener};

    use rtcgear_capture::{FrameRate, TestPattern};

    use crate::{Server, ServerConfig, ServerError, StreamConfig};

    /// A taken port is a `Bind` error that keeps the system's error, kind included.
    #[test]
    fn a_taken_port_keeps_its_io_error() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
        let port = taken.local_addr().expect("its address").port();
        let config = ServerConfig {
            bind: Ipv4Addr::LOCALHOST.into(),
            http_port: port,
            udp_port: Some(0),
            ..ServerConfig::default()
        };
        let rate = FrameRate::from_int(10).expect("10 is a frame rate");
        let pattern = TestPattern::new(64, 48, rate).expect("64x48 is a valid size");
        let built = Server::builder()
            .config(config)
            .stream(StreamConfig::new("", pattern))
            .build();
        let Err(err @ ServerError::Bind { .. }) = built else {
            panic!("a taken port must be a Bind error");
        };
        assert!(err.to_string().contains(&port.to_string()), "{err}");
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
    }
}
