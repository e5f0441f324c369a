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

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::limit::address_key;
use crate::stream::lock;

/// The longest a gate thread sleeps before it looks at the shutdown flag again.
const TICK: Duration = Duration::from_millis(250);
/// Response bytes read from tiny_http ahead of a slow client, at most.
const RESPONSE_BUFFER: usize = 256 * 1024;
/// How long a refused client has to read the refusal before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);

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

/// The gate: run [`Gate::run`] on a thread of its own.
pub(crate) struct Gate {
    listener: TcpListener,
    inner: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: Arc<GateConfig>,
    peers: Arc<Peers>,
    open: Arc<Mutex<Open>>,
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
    ) -> Gate {
        Gate {
            listener,
            inner,
            tls,
            config: Arc::new(config),
            peers,
            open: Arc::default(),
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
        let spawned = thread::Builder::new()
            .name("http-conn".into())
            .stack_size(512 * 1024)
            .spawn(move || {
                let _slot = slot;
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

fn serve(
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

/// Why the gate answers a request itself.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

/// Where one request ends, from its head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Framing {
    /// The head's length, the blank line included.
    pub(crate) head_len: usize,
    /// The body's length (its `Content-Length`).
    pub(crate) body_len: usize,
    /// Whether the client waits for `100 Continue` before it sends the body.
    pub(crate) expects_continue: bool,
}

/// Frames the request at the start of `buf`: `None` while its head is incomplete, a
/// [`Refusal`] when it breaks a limit or cannot be framed.
pub(crate) fn frame(buf: &[u8], config: &GateConfig) -> Result<Option<Framing>, Refusal> {
    let too_large = || {
        Refusal::new(
            431,
            format!(
                "the request head is larger than the {} bytes allowed",
                config.max_header_bytes
            ),
        )
    };
    let search = &buf[..buf.len().min(config.max_header_bytes + 4)];
    let Some(end) = search.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > config.max_header_bytes {
            return Err(too_large());
        }
        return Ok(None);
    };
    if end > config.max_header_bytes {
        return Err(too_large());
    }
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    if request_line.trim_ascii().is_empty() {
        return Err(Refusal::new(400, "the request line is empty"));
    }
    let mut headers = 0usize;
    let mut content_length: Option<usize> = None;
    let mut expects_continue = false;
    for line in lines {
        headers += 1;
        if headers > config.max_headers {
            return Err(Refusal::new(
                431,
                format!(
                    "the request has more than the {} header fields allowed",
                    config.max_headers
                ),
            ));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue; // tiny_http answers malformed headers with 400 itself.
        };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| Refusal::new(400, "the Content-Length is not a number"))?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(Refusal::new(
                    400,
                    "the request has two different Content-Lengths",
                ));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Refusal::new(
                411,
                "send the body with a Content-Length; chunked and other transfer codings are \
                 not accepted",
            ));
        } else if name.eq_ignore_ascii_case(b"expect")
            && value.eq_ignore_ascii_case(b"100-continue")
        {
            expects_continue = true;
        }
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > config.max_body_bytes {
        return Err(Refusal::new(
            413,
            format!(
                "the body is larger than the {} bytes allowed",
                config.max_body_bytes
            ),
        ));
    }
    Ok(Some(Framing {
        head_len: end + 4,
        body_len,
        expects_continue: expects_continue && body_len > 0,
    }))
}

/// The head without its `Expect` header fields.
fn without_expect(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|&b| b == b'\n') {
        let is_expect = line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"expect:");
        if !is_expect {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The gate's own answer: plain text, and the connection closes after it.
fn response_bytes(status: u16, reason: &str, retry_after: Option<u32>) -> Vec<u8> {
    let phrase = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("{reason}\n");
    let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Waits until one of the sockets is ready for its events, or `timeout`.
fn wait(fds: &[(i32, libc::c_short)], timeout: Duration) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GateConfig {
        GateConfig {
            max_connections: 10,
            max_connections_per_ip: 2,
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_header_bytes: 100,
            max_headers: 3,
            max_body_bytes: 10,
        }
    }

    #[test]
    fn frames_heads_and_bodies() {
        let config = config();
        assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: x\r\n", &config), Ok(None));
        assert_eq!(
            frame(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", &config),
            Ok(Some(Framing {
                head_len: 27,
                body_len: 0,
                expects_continue: false
            }))
        );
        let post =
            b"POST /whep HTTP/1.1\r\ncontent-length: 5\r\nExpect: 100-continue\r\n\r\nv=0\r\n";
        let framing = frame(post, &config).unwrap().unwrap();
        assert_eq!(framing.body_len, 5);
        assert!(framing.expects_continue);
        assert_eq!(framing.head_len + framing.body_len, post.len());
        assert_eq!(
            without_expect(&post[..framing.head_len]),
            b"POST /whep HTTP/1.1\r\ncontent-length: 5\r\n\r\n"
        );
    }

    #[test]
    fn refuses_what_breaks_a_limit() {
        let config = config();
        let status = |buf: &[u8]| frame(buf, &config).unwrap_err().status;
        assert_eq!(status(&[b'a'; 101]), 431);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(status(long.as_bytes()), 431);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n"),
            431
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(status(b"\r\n\r\n"), 400);
    }

    #[test]
    fn refusals_are_whole_responses() {
        let text = String::from_utf8(response_bytes(431, "too big", None)).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.contains("Content-Length: 8\r\n"));
        assert!(text.ends_with("\r\n\r\ntoo big\n"));
        assert!(String::from_utf8(response_bytes(503, "full", Some(5)))
            .unwrap()
            .contains("Retry-After: 5\r\n"));
    }
}
