//! Admission: the gate's accept loop, which counts connections in total and by client
//! address and turns away what is over a cap with `503` at the door.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::connection::{serve, wait};
use super::framing::response_bytes;
use super::{GateConfig, Peers, TICK};
use crate::ice_tcp::{self, TcpQueues};
use crate::limit::address_key;
use crate::stream::lock;

/// The gate: run [`Gate::run`] on a thread of its own.
pub(crate) struct Gate {
    listener: TcpListener,
    inner: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: Arc<GateConfig>,
    peers: Arc<Peers>,
    open: Arc<Mutex<Open>>,
    /// Where ICE-TCP connections go, when they share the HTTP port.
    ice_tcp: Option<TcpQueues>,
}

/// The connections open now, in total and by client address.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Gate {
    /// A gate admitting clients from `listener` to tiny_http at `inner`.
    pub(crate) fn new(
        listener: TcpListener,
        inner: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        config: GateConfig,
        peers: Arc<Peers>,
        ice_tcp: Option<TcpQueues>,
    ) -> Gate {
        Gate {
            listener,
            inner,
            tls,
            config: Arc::new(config),
            peers,
            open: Arc::default(),
            ice_tcp,
        }
    }

    /// Accepts connections until shutdown, each on a gate thread of its own.
    pub(crate) fn run(self, shutdown: Arc<AtomicBool>) {
        if let Err(err) = self.listener.set_nonblocking(true) {
            tracing::error!("HTTP: cannot make the listening socket non-blocking: {err}");
            return;
        }
        while !shutdown.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, &shutdown),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    wait(&[(self.listener.as_raw_fd(), libc::POLLIN)], TICK);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!("HTTP accept: {err}");
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn admit(&self, stream: TcpStream, peer: SocketAddr, shutdown: &Arc<AtomicBool>) {
        let address = address_key(peer.ip());
        let slot = {
            let mut open = lock(&self.open);
            let mine = open.by_address.get(&address).copied().unwrap_or(0);
            if open.total >= self.config.max_connections {
                drop(open);
                tracing::debug!("HTTP: turned {peer} away: the server is at its connection limit");
                turn_away(
                    stream,
                    self.tls.is_none(),
                    "the server has too many connections",
                );
                return;
            }
            if mine >= self.config.max_connections_per_ip {
                drop(open);
                tracing::debug!("HTTP: turned {peer} away: too many connections from it");
                turn_away(
                    stream,
                    self.tls.is_none(),
                    "too many connections from your address",
                );
                return;
            }
            open.total += 1;
            *open.by_address.entry(address).or_insert(0) += 1;
            Slot {
                open: self.open.clone(),
                address,
            }
        };
        let inner = self.inner;
        let tls = self.tls.clone();
        let config = self.config.clone();
        let peers = self.peers.clone();
        let shutdown = shutdown.clone();
        let ice_tcp = self.ice_tcp.clone();
        let spawned = thread::Builder::new()
            .name("http-conn".into())
            .stack_size(512 * 1024)
            .spawn(move || {
                let _slot = slot;
                // A viewer's ICE-TCP connection counts against the caps like any other.
                if let Some(events) = ice_tcp {
                    let accepted = std::time::Instant::now();
                    match ice_tcp::speaks_ice(&stream, config.request_timeout, &shutdown) {
                        Ok(true) => {
                            let served = ice_tcp::serve(stream, peer, accepted, &events, &shutdown);
                            if let Err(err) = served {
                                tracing::debug!("ICE-TCP connection from {peer}: {err}");
                            }
                            return;
                        }
                        Ok(false) => {}
                        Err(err) => {
                            tracing::debug!("HTTP connection from {peer}: {err}");
                            return;
                        }
                    }
                }
                if let Err(err) = serve(stream, peer, inner, tls, config, &peers, &shutdown) {
                    tracing::debug!("HTTP connection from {peer}: {err}");
                }
            });
        if let Err(err) = spawned {
            tracing::warn!("HTTP: no thread for a connection from {peer}: {err}");
        }
    }
}

/// One admitted connection, counted until dropped.
struct Slot {
    open: Arc<Mutex<Open>>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// Answers `503` at the door (plain HTTP only; a TLS client just sees the connection close).
fn turn_away(mut stream: TcpStream, plain: bool, reason: &str) {
    if stream.set_nonblocking(true).is_err() || !plain {
        return;
    }
    // Whatever the client already sent is read first: closing a socket with unread data
    // resets the connection, and the client might never see the answer.
    let mut scratch = [0u8; 4096];
    let _ = stream.read(&mut scratch);
    let _ = stream.write(&response_bytes(503, reason, Some(5)));
    let _ = stream.shutdown(Shutdown::Write);
}
