//! The connection gate in front of tiny_http: it owns the public listening socket, admits
//! connections within the per-address and total caps, ends TLS, and hands tiny_http only whole
//! requests (head and body), over a loopback connection of its own.
//!
//! tiny_http 0.12 reads with no time limit and has no limits on heads: a client that dribbles
//! a header byte every few seconds keeps one of its threads forever, one that sends a
//! gigabyte-long header line makes it buffer a gigabyte, and one that dribbles a body keeps an
//! HTTP worker of ours (workers read bodies). So each client connection gets a gate thread that
//! reads the client's bytes without blocking, frames each request (head up to
//! `max_header_bytes` and `max_headers`, a body by its `Content-Length` up to
//! `max_body_bytes`), and forwards it only once it is whole, within `request_timeout` of its
//! first byte. Responses flow back as they come. What the gate refuses it answers itself (408,
//! 411, 413, 431, and 503 at the door) and closes.
//!
//! tiny_http listens on `127.0.0.1:0` (or `[::1]:0`) and sees each client as the gate's end of
//! that loopback connection; [`Peers`] maps it back to the client's real address.
//!
//! One job a file: [`admission`] accepts and counts connections (the caps, `503` at the door),
//! [`connection`] pumps one client's bytes to tiny_http and back (TLS, time limits), and
//! [`framing`] finds where each request ends and words the gate's own refusals.

mod admission;
mod connection;
mod framing;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::ServerConfig;
use crate::stream::lock;

pub(crate) use admission::Gate;
pub(crate) use connection::wait;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use framing::frame;

/// The longest a gate thread sleeps before it looks at the shutdown flag again.
const TICK: Duration = Duration::from_millis(250);

/// The gate's share of the server settings.
#[derive(Clone, Debug)]
pub(crate) struct GateConfig {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_bytes: usize,
}

impl GateConfig {
    pub(crate) fn new(config: &ServerConfig) -> GateConfig {
        GateConfig {
            max_connections: config.max_connections.max(1),
            max_connections_per_ip: config.max_connections_per_ip.max(1),
            request_timeout: config.request_timeout.max(Duration::from_millis(100)),
            idle_timeout: config.idle_timeout.max(Duration::from_millis(100)),
            max_header_bytes: config.max_header_bytes.max(256),
            max_headers: config.max_headers,
            max_body_bytes: config.max_body_bytes,
        }
    }
}

/// The client behind each loopback connection that tiny_http sees.
#[derive(Default)]
pub(crate) struct Peers {
    map: Mutex<HashMap<SocketAddr, SocketAddr>>,
}

impl Peers {
    /// The client's address for tiny_http's `remote_addr`; `None` when the connection did not
    /// come through the gate.
    pub(crate) fn client(&self, inner: SocketAddr) -> Option<SocketAddr> {
        lock(&self.map).get(&inner).copied()
    }
}
