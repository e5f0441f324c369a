//! One admitted connection: a thread that moves the client's bytes (TLS ended here) to
//! tiny_http's loopback socket once each request is whole, and the responses back, within the
//! time limits.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::framing::{frame, response_bytes, without_expect, Refusal};
use super::{GateConfig, Peers, TICK};
use crate::stream::lock;

/// Response bytes read from tiny_http ahead of a slow client, at most.
const RESPONSE_BUFFER: usize = 256 * 1024;
/// How long a refused client has to read the refusal before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);

/// The loopback connection's entry in [`Peers`], removed when the connection ends.
struct Registered<'a> {
    peers: &'a Peers,
    inner: SocketAddr,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.peers.map).remove(&self.inner);
    }
}

pub(super) fn serve(
    client: TcpStream,
    peer: SocketAddr,
    inner: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: Arc<GateConfig>,
    peers: &Peers,
    shutdown: &AtomicBool,
) -> io::Result<()> {
    let inner = TcpStream::connect(inner)?;
    let registered = Registered {
        peers,
        inner: inner.local_addr()?,
    };
    lock(&peers.map).insert(registered.inner, peer);
    for socket in [&client, &inner] {
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
    }
    let tls = match tls {
        Some(tls) => Some(
            rustls::ServerConnection::new(tls)
                .map_err(|e| io::Error::other(format!("TLS: {e}")))?,
        ),
        None => None,
    };
    let now = Instant::now();
    let mut conn = Conn {
        client,
        inner,
        tls,
        config,
        incoming: Vec::new(),
        to_inner: Buffer::default(),
        to_client: Buffer::default(),
        request_since: None,
        continued: false,
        awaiting: false,
        opened: now,
        last_activity: now,
        send_since: None,
        client_eof: false,
        inner_eof: false,
        inner_shut: false,
        refused: None,
    };
    conn.run(shutdown)
}

/// A byte queue: pushed at the back, written from the front.
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    start: usize,
}

impl Buffer {
    fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }

    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.data.drain(..self.start);
            self.start = 0;
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }
}

/// One client connection and its loopback connection to tiny_http.
struct Conn {
    client: TcpStream,
    inner: TcpStream,
    tls: Option<rustls::ServerConnection>,
    config: Arc<GateConfig>,
    /// The client's bytes (plaintext) that are not a whole request yet.
    incoming: Vec<u8>,
    /// Whole requests on their way to tiny_http.
    to_inner: Buffer,
    /// tiny_http's responses (or the gate's own) on their way to the client.
    to_client: Buffer,
    /// When the first byte of the request in `incoming` came.
    request_since: Option<Instant>,
    /// Whether the request in `incoming` was sent `100 Continue`.
    continued: bool,
    /// A request went to tiny_http and no response byte came back yet: not idle.
    awaiting: bool,
    opened: Instant,
    last_activity: Instant,
    /// Since when bytes for the client have waited without the client taking any.
    send_since: Option<Instant>,
    client_eof: bool,
    inner_eof: bool,
    inner_shut: bool,
    /// Set once the gate answered the client itself: it then closes after that answer.
    refused: Option<Instant>,
}

impl Conn {
    fn run(&mut self, shutdown: &AtomicBool) -> io::Result<()> {
        let config = self.config.clone();
        let cap = config.max_header_bytes + config.max_body_bytes;
        loop {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.refused.is_none() {
                if let Err(refusal) = self.take_requests() {
                    self.refuse(refusal);
                }
            }
            let now = Instant::now();
            let client_pending = self.client_pending();
            if let Some(refused) = self.refused {
                if !client_pending {
                    self.linger(refused);
                    return Ok(());
                }
            } else if let Some(since) = self.request_since {
                if now.duration_since(since) > config.request_timeout {
                    self.refuse(Refusal::new(
                        408,
                        format!(
                            "the request did not arrive whole within {:?}",
                            config.request_timeout
                        ),
                    ));
                    continue;
                }
            }
            if self.tls.as_ref().is_some_and(|t| t.is_handshaking())
                && now.duration_since(self.opened) > config.request_timeout
            {
                return Err(io::Error::other("the TLS handshake took too long"));
            }
            match (client_pending, self.send_since) {
                (true, None) => self.send_since = Some(now),
                (true, Some(since)) if now.duration_since(since) > config.request_timeout => {
                    return Err(io::Error::other("the client stopped reading"));
                }
                (false, _) => self.send_since = None,
                _ => {}
            }
            let idle = self.incoming.is_empty()
                && self.to_inner.is_empty()
                && !client_pending
                && !self.awaiting;
            if idle && now.duration_since(self.last_activity) > config.idle_timeout {
                tracing::trace!("closing an idle HTTP connection");
                return Ok(());
            }
            if self.inner_eof && !client_pending {
                return Ok(());
            }
            if self.client_eof && self.to_inner.is_empty() && !self.inner_shut {
                // The client sends no more: tiny_http answers what it has, then closes.
                let _ = self.inner.shutdown(Shutdown::Write);
                self.inner_shut = true;
            }

            let want_client = !self.client_eof
                && self.refused.is_none()
                && self.incoming.len() <= cap
                && self.to_inner.len() <= cap;
            let want_inner = !self.inner_eof && self.to_client.len() < RESPONSE_BUFFER;
            let client_events = if want_client { libc::POLLIN } else { 0 }
                | if client_pending { libc::POLLOUT } else { 0 };
            let inner_events = if want_inner && self.refused.is_none() {
                libc::POLLIN
            } else {
                0
            } | if self.to_inner.is_empty() || self.inner_shut {
                0
            } else {
                libc::POLLOUT
            };
            wait(
                &[
                    (self.client.as_raw_fd(), client_events),
                    (self.inner.as_raw_fd(), inner_events),
                ],
                TICK,
            );

            if want_client {
                self.read_client()?;
            }
            if want_inner && self.refused.is_none() {
                self.read_inner()?;
            }
            self.flush_inner();
            self.flush_client()?;
        }
    }

    /// Whether bytes wait to go to the client.
    fn client_pending(&self) -> bool {
        !self.to_client.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Moves every whole request from `incoming` to `to_inner`.
    fn take_requests(&mut self) -> Result<(), Refusal> {
        loop {
            // Empty lines before a request line are to be ignored (RFC 9112, 2.2).
            let blank = self
                .incoming
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if blank > 0 {
                self.incoming.drain(..blank);
            }
            if self.incoming.is_empty() {
                self.request_since = None;
                return Ok(());
            }
            let Some(framing) = frame(&self.incoming, &self.config)? else {
                return Ok(());
            };
            let whole = framing.head_len + framing.body_len;
            if self.incoming.len() < whole {
                if framing.expects_continue && !self.continued {
                    self.to_client.push(b"HTTP/1.1 100 Continue\r\n\r\n");
                    self.continued = true;
                }
                return Ok(());
            }
            let head = &self.incoming[..framing.head_len];
            if framing.expects_continue {
                // The gate answered the expectation (or the body came anyway): tiny_http must
                // not send a second `100 Continue`.
                self.to_inner.push(&without_expect(head));
            } else {
                self.to_inner.push(head);
            }
            self.to_inner.push(&self.incoming[framing.head_len..whole]);
            self.incoming.drain(..whole);
            self.continued = false;
            self.awaiting = true;
            self.request_since = (!self.incoming.is_empty()).then(Instant::now);
        }
    }

    /// Answers the client with `refusal` and closes once it is sent.
    fn refuse(&mut self, refusal: Refusal) {
        tracing::debug!(
            "HTTP: refused a request: {} {}",
            refusal.status,
            refusal.reason
        );
        self.incoming.clear();
        self.to_inner.clear();
        self.request_since = None;
        self.to_client
            .push(&response_bytes(refusal.status, &refusal.reason, None));
        self.refused = Some(Instant::now());
    }

    /// After a refusal: half-closes, then reads and drops what the client still sends for a
    /// moment, so that it reads the answer instead of a reset.
    fn linger(&mut self, since: Instant) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(&mut self.client).is_err() {
                    break;
                }
            }
        }
        let _ = self.client.shutdown(Shutdown::Write);
        let mut scratch = [0u8; 16 * 1024];
        let mut dropped = 0usize;
        while since.elapsed() < LINGER && dropped < 1 << 20 {
            match self.client.read(&mut scratch) {
                Ok(0) => return,
                Ok(n) => dropped += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    wait(&[(self.client.as_raw_fd(), libc::POLLIN)], TICK);
                }
                Err(_) => return,
            }
        }
    }

    fn read_client(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 16 * 1024];
        let before = self.incoming.len();
        match &mut self.tls {
            None => loop {
                match self.client.read(&mut scratch) {
                    Ok(0) => {
                        self.client_eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.incoming.extend_from_slice(&scratch[..n]);
                        if n < scratch.len() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            },
            Some(tls) => {
                match tls.read_tls(&mut self.client) {
                    Ok(0) => self.client_eof = true,
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
                if let Err(err) = tls.process_new_packets() {
                    // Send the alert, if the client still listens.
                    let _ = tls.write_tls(&mut self.client);
                    return Err(io::Error::other(format!("TLS: {err}")));
                }
                loop {
                    match tls.reader().read(&mut scratch) {
                        Ok(0) => {
                            self.client_eof = true;
                            break;
                        }
                        Ok(n) => self.incoming.extend_from_slice(&scratch[..n]),
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                            self.client_eof = true;
                            break;
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
        }
        if self.incoming.len() > before {
            self.last_activity = Instant::now();
            if self.request_since.is_none() {
                self.request_since = Some(self.last_activity);
            }
        }
        if self.client_eof {
            // A request cut short can never be answered.
            self.incoming.clear();
            self.request_since = None;
        }
        Ok(())
    }

    fn read_inner(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 16 * 1024];
        while self.to_client.len() < RESPONSE_BUFFER {
            match self.inner.read(&mut scratch) {
                Ok(0) => {
                    self.inner_eof = true;
                    break;
                }
                Ok(n) => {
                    self.to_client.push(&scratch[..n]);
                    self.awaiting = false;
                    self.last_activity = Instant::now();
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn flush_inner(&mut self) {
        while !self.to_inner.is_empty() && !self.inner_shut {
            match self.inner.write(self.to_inner.pending()) {
                Ok(n) => self.to_inner.consume(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // tiny_http closed its side (after `Connection: close`); what it already
                    // answered still goes to the client.
                    self.to_inner.clear();
                    self.inner_shut = true;
                }
            }
        }
    }

    fn flush_client(&mut self) -> io::Result<()> {
        let mut moved = false;
        match &mut self.tls {
            None => {
                while !self.to_client.is_empty() {
                    match self.client.write(self.to_client.pending()) {
                        Ok(n) => {
                            self.to_client.consume(n);
                            moved = true;
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            Some(tls) => loop {
                if !self.to_client.is_empty() && !tls.wants_write() {
                    let n = tls.writer().write(self.to_client.pending())?;
                    self.to_client.consume(n);
                }
                if !tls.wants_write() {
                    break;
                }
                match tls.write_tls(&mut self.client) {
                    Ok(_) => moved = true,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            },
        }
        if moved {
            self.send_since = None;
            self.last_activity = Instant::now();
        }
        Ok(())
    }
}

/// Waits until one of the sockets is ready for its events, or `timeout`.
pub(crate) fn wait(fds: &[(i32, libc::c_short)], timeout: Duration) {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            // A negative descriptor is skipped by poll(2): nothing to wait for on it.
            fd: if events == 0 { -1 } else { fd },
            events,
            revents: 0,
        })
        .collect();
    let millis = timeout.as_millis().clamp(1, 1000) as libc::c_int;
    // SAFETY: `pollfds` is a valid, initialised array of `pollfd` of the length given, and
    // lives across the call. Errors (EINTR) only end the wait early, which the callers allow.
    unsafe {
        libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, millis);
    }
}
