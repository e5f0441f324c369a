//! ICE over TCP (RFC 6544): the connections that viewers whose UDP is blocked open to the
//! server's passive TCP candidates, and their RFC 4571 framing (each packet behind two bytes
//! of length, in network order).
//!
//! A connection comes in through the gate, on the HTTP port, when its first byte is not
//! HTTP's or TLS's (see [`looks_like_ice`]), or on a port of its own ([`accept`]). Either way
//! it gets a reader thread ([`serve`]) that takes the framing off and hands each packet to
//! the RTC thread as a [`TcpEvent`]. The RTC thread writes back itself ([`Connections`]),
//! framed, and never waits: the sockets are non-blocking, and what the kernel does not take
//! at once waits in the connection's own queue, up to [`MAX_QUEUED`] bytes. Beyond that
//! packets are dropped, as a full UDP path would drop them; the viewer then reports the
//! loss, and the broadcast skips it to the next keyframe as it does slow UDP viewers. A
//! connection that sends a packet for no viewer is closed at once, and one that sends no
//! whole packet within [`FIRST_PACKET`] of being accepted, or none for [`IDLE`], is closed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use rtcgear_rtc::Shard;

use crate::gate::wait;
use crate::limit::address_key;
use crate::stream::lock;

/// Bytes that may wait for one connection's socket; more is dropped, packet by packet. With
/// the socket's own buffer ([`SEND_BUFFER`]) that is about a second of 720p: a viewer further
/// behind loses packets and skips to the next keyframe rather than fall ever further behind.
pub(crate) const MAX_QUEUED: usize = 128 * 1024;
/// The kernel's send buffer for each connection (it doubles what is asked).
const SEND_BUFFER: libc::c_int = 128 * 1024;
/// How long a connection has, from its accept, to send its first whole packet.
const FIRST_PACKET: Duration = Duration::from_secs(10);
/// A connection that has sent nothing for this long is closed. Browsers send ICE consent
/// checks every few seconds and RTCP every second, so this means the viewer is gone.
const IDLE: Duration = Duration::from_secs(30);
/// How often a waiting reader looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(250);

/// The RTC threads' queues for ICE-TCP events, one each: a connection's events go to the
/// thread its first packet names (see [`serve`]).
pub(crate) type TcpQueues = Arc<[Sender<TcpEvent>]>;

/// What the ICE-TCP connections tell the RTC thread that owns their viewer.
pub(crate) enum TcpEvent {
    /// A viewer connected from `peer`; `stream` is the connection's writing side
    /// (non-blocking); `id` tells this connection from a later one from the same address.
    Opened {
        peer: SocketAddr,
        id: u64,
        stream: TcpStream,
    },
    /// One packet, its framing taken off.
    Packet {
        received: Instant,
        peer: SocketAddr,
        local: SocketAddr,
        data: Vec<u8>,
    },
    /// The connection `id` from `peer` is closed.
    Closed { peer: SocketAddr, id: u64 },
}

/// Whether a connection whose first byte is `first` speaks ICE-TCP: an RFC 4571 frame
/// starts with its length's high byte, which is 0 or 1 for a STUN request (always the first
/// packet a browser sends), where HTTP starts with a letter and TLS with 0x16.
pub(crate) fn looks_like_ice(first: u8) -> bool {
    first <= 1
}

/// Whether the client on `stream` speaks ICE-TCP, from its first byte, read without taking it
/// (`false` when it sends nothing within `limit`, or closes: HTTP's own time limits and
/// answers then apply).
pub(crate) fn speaks_ice(
    stream: &TcpStream,
    limit: Duration,
    shutdown: &AtomicBool,
) -> io::Result<bool> {
    stream.set_nonblocking(true)?;
    let start = Instant::now();
    let mut first = [0u8; 1];
    while !shutdown.load(Ordering::Relaxed) {
        match stream.peek(&mut first) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(looks_like_ice(first[0])),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let left = limit.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Ok(false);
                }
                wait(&[(stream.as_raw_fd(), libc::POLLIN)], left.min(TICK));
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

/// Reads packets from the viewer's connection, accepted at `accepted`, and hands them to the
/// RTC thread its first packet names (the shard tag in the ICE username of its STUN
/// request; see `rtcgear_rtc::Shard`), until it closes, sends no whole packet in time
/// ([`FIRST_PACKET`], [`IDLE`]), or the server shuts down.
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    threads: &TcpQueues,
    shutdown: &AtomicBool,
) -> io::Result<()> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let peer = canonical(peer);
    let local = canonical(stream.local_addr()?);
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    set_send_buffer(&stream, SEND_BUFFER);
    tracing::debug!("ICE-TCP connection from {peer} to {local}");
    // Shuts the socket down however the reader stops, and once the connection was announced
    // tells its RTC thread.
    let mut closed = Closed {
        peer,
        id,
        stream: &stream,
        events: None,
    };
    let mut incoming: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    // The last whole packet: bytes that make none (a dribble) do not keep a connection.
    let mut last: Option<Instant> = None;
    while !shutdown.load(Ordering::Relaxed) {
        match (&stream).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let now = Instant::now();
                incoming.extend_from_slice(&chunk[..n]);
                for data in frames(&mut incoming) {
                    last = Some(now);
                    let events = match &closed.events {
                        Some(events) => events,
                        None => {
                            // Packets for no viewer go to the first thread, which refuses them.
                            let thread = Shard::of_packet(&data, threads.len()).unwrap_or(0);
                            let events = &threads[thread];
                            let opened = TcpEvent::Opened {
                                peer,
                                id,
                                stream: stream.try_clone()?,
                            };
                            if events.send_timeout(opened, Duration::from_secs(1)).is_err() {
                                return Ok(());
                            }
                            closed.events.insert(events.clone())
                        }
                    };
                    let packet = TcpEvent::Packet {
                        received: now,
                        peer,
                        local,
                        data,
                    };
                    // A full queue means the RTC thread is overloaded: dropping is what the
                    // network would do (see `media::udp_reader`).
                    if let Err(TrySendError::Disconnected(_)) = events.try_send(packet) {
                        return Ok(());
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let quiet = match last {
                    Some(last) => last.elapsed() >= IDLE,
                    None => accepted.elapsed() >= FIRST_PACKET,
                };
                if quiet {
                    tracing::debug!("ICE-TCP connection from {peer}: no packet in time");
                    break;
                }
                wait(&[(stream.as_raw_fd(), libc::POLLIN)], TICK);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Closes a connection and tells its RTC thread, however its reader stops.
struct Closed<'a> {
    peer: SocketAddr,
    id: u64,
    stream: &'a TcpStream,
    /// The RTC thread that owns the connection, once its first packet named it.
    events: Option<Sender<TcpEvent>>,
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        // The RTC thread holds a clone of the socket: shut it down for both.
        let _ = self.stream.shutdown(Shutdown::Both);
        let Some(events) = &self.events else {
            return;
        };
        // Waits for room, bounded (the RTC thread drains the channel). Should the event still
        // be lost, the socket is shut down already: the RTC thread's next write to it fails,
        // and that drops its entry.
        let closed = TcpEvent::Closed {
            peer: self.peer,
            id: self.id,
        };
        let _ = events.send_timeout(closed, Duration::from_secs(5));
    }
}

/// Sets the kernel's send buffer of `stream` to `bytes` (it doubles the value).
fn set_send_buffer(stream: &TcpStream, bytes: libc::c_int) {
    // SAFETY: the descriptor is open and the option value is a c_int of the size given.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        tracing::debug!("ICE-TCP: SO_SNDBUF: {}", io::Error::last_os_error());
    }
}

/// Takes every whole frame off the front of `incoming`; empty ones are skipped.
fn frames(incoming: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut at = 0;
    while let Some(header) = incoming.get(at..at + 2) {
        let len = u16::from_be_bytes([header[0], header[1]]) as usize;
        let Some(packet) = incoming.get(at + 2..at + 2 + len) else {
            break;
        };
        if len > 0 {
            packets.push(packet.to_vec());
        }
        at += 2 + len;
    }
    incoming.drain(..at);
    packets
}

/// Accepts ICE-TCP connections on a port of their own (`--tcp-port`) until shutdown, at most
/// `max` at once and `max_per_ip` from one address (as the HTTP port's gate counts), each
/// read by a thread of its own.
pub(crate) fn accept(
    listener: TcpListener,
    events: TcpQueues,
    (max, max_per_ip): (usize, usize),
    shutdown: Arc<AtomicBool>,
) {
    if let Err(err) = listener.set_nonblocking(true) {
        tracing::error!("ICE-TCP: cannot make the listening socket non-blocking: {err}");
        return;
    }
    let open: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    while !shutdown.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let accepted = Instant::now();
                let address = address_key(peer.ip());
                {
                    let mut open = lock(&open);
                    let total: usize = open.values().sum();
                    let mine = open.get(&address).copied().unwrap_or(0);
                    if total >= max || mine >= max_per_ip {
                        tracing::debug!("ICE-TCP: turned {peer} away: too many connections");
                        continue;
                    }
                    *open.entry(address).or_insert(0) += 1;
                }
                let (events, open, shutdown) = (events.clone(), open.clone(), shutdown.clone());
                let spawned = thread::Builder::new()
                    .name("ice-tcp".into())
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        if let Err(err) = serve(stream, peer, accepted, &events, &shutdown) {
                            tracing::debug!("ICE-TCP connection from {peer}: {err}");
                        }
                        let mut open = lock(&open);
                        if let Some(count) = open.get_mut(&address) {
                            *count -= 1;
                            if *count == 0 {
                                open.remove(&address);
                            }
                        }
                    });
                if let Err(err) = spawned {
                    tracing::warn!("ICE-TCP: no thread for a connection from {peer}: {err}");
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait(&[(listener.as_raw_fd(), libc::POLLIN)], TICK);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!("ICE-TCP accept: {err}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The RTC thread's side of the connections: where each viewer's packets go, framed.
#[derive(Default)]
pub(crate) struct Connections {
    by_peer: HashMap<SocketAddr, Outgoing>,
    /// Connections with bytes queued, to be written at the next [`flush`](Self::flush).
    pending: Vec<SocketAddr>,
}

struct Outgoing {
    /// Which connection from the peer's address this is ([`TcpEvent::Opened`]).
    id: u64,
    stream: TcpStream,
    queue: Vec<u8>,
    /// Packets dropped since the last log line, for a connection that cannot keep up.
    dropped: u64,
}

impl Connections {
    pub(crate) fn opened(&mut self, peer: SocketAddr, id: u64, stream: TcpStream) {
        let outgoing = Outgoing {
            id,
            stream,
            queue: Vec::new(),
            dropped: 0,
        };
        self.by_peer.insert(peer, outgoing);
    }

    /// Forgets connection `id` from `peer`; `false` if a newer connection from that address
    /// has taken its place (or it was refused already).
    pub(crate) fn closed(&mut self, peer: SocketAddr, id: u64) -> bool {
        if self.by_peer.get(&peer).is_some_and(|o| o.id == id) {
            self.by_peer.remove(&peer);
            return true;
        }
        false
    }

    /// Closes the connection from `peer` (it reached no viewer); its reader then ends.
    pub(crate) fn refuse(&mut self, peer: SocketAddr) {
        if let Some(outgoing) = self.by_peer.remove(&peer) {
            tracing::debug!("ICE-TCP connection from {peer} is for no viewer; closing it");
            let _ = outgoing.stream.shutdown(Shutdown::Both);
        }
    }

    /// Queues one packet to `peer`, framed; written at the next [`flush`](Self::flush).
    pub(crate) fn send(&mut self, peer: SocketAddr, packet: &[u8]) {
        let Some(outgoing) = self.by_peer.get_mut(&peer) else {
            tracing::trace!("ICE-TCP: no connection from {peer} any more");
            return;
        };
        let Ok(len) = u16::try_from(packet.len()) else {
            return;
        };
        if outgoing.queue.len() + 2 + packet.len() > MAX_QUEUED {
            outgoing.dropped += 1;
            return;
        }
        if outgoing.queue.is_empty() {
            self.pending.push(peer);
        }
        outgoing.queue.extend_from_slice(&len.to_be_bytes());
        outgoing.queue.extend_from_slice(packet);
    }

    /// Writes what is queued, as much as each socket takes now.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for peer in std::mem::take(&mut self.pending) {
            let Some(outgoing) = self.by_peer.get_mut(&peer) else {
                continue;
            };
            match write_some(&outgoing.stream, &mut outgoing.queue) {
                Ok(()) => {
                    if !outgoing.queue.is_empty() {
                        still.push(peer);
                    }
                    if outgoing.dropped > 0 {
                        tracing::debug!(
                            "ICE-TCP: {} packets to {peer} dropped, its connection full",
                            outgoing.dropped
                        );
                        outgoing.dropped = 0;
                    }
                }
                Err(err) => {
                    tracing::debug!("ICE-TCP: writing to {peer}: {err}; closing");
                    let _ = outgoing.stream.shutdown(Shutdown::Both);
                    self.by_peer.remove(&peer);
                }
            }
        }
        self.pending = still;
    }
}

/// Writes the front of `queue` until the socket takes no more; removes what was written.
fn write_some(mut stream: &TcpStream, queue: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    while written < queue.len() {
        match stream.write(&queue[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    queue.drain(..written);
    Ok(())
}

/// An IPv4 address for an IPv4-mapped IPv6 one (a listener on `::`), as candidates have them.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_off_whole_and_in_order() {
        let mut incoming = vec![0, 3, b'a', b'b', b'c', 0, 0, 0, 1, b'd', 0, 5, b'e'];
        assert_eq!(frames(&mut incoming), [b"abc".to_vec(), b"d".to_vec()]);
        // The start of the next frame stays.
        assert_eq!(incoming, [0, 5, b'e']);
        incoming.extend_from_slice(b"fghi");
        assert_eq!(frames(&mut incoming), [b"efghi".to_vec()]);
        assert!(incoming.is_empty());
        let mut one = vec![0];
        assert!(frames(&mut one).is_empty());
        assert_eq!(one, [0]);
    }

    #[test]
    fn tells_ice_from_http_and_tls() {
        assert!(looks_like_ice(0));
        assert!(looks_like_ice(1));
        for first in [b'G', b'P', b'D', b'O', b'H', 0x16, b'\r'] {
            assert!(!looks_like_ice(first), "{first:#x}");
        }
    }

    #[test]
    fn a_full_connection_drops_whole_packets_and_reads_framed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (server, peer) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("non-blocking");
        let mut connections = Connections::default();
        connections.opened(peer, 1, server);
        // Nobody reads: the kernel's buffers fill, then the queue, then packets are dropped.
        let packet = vec![7u8; 1200];
        let mut sent = 0usize;
        for _ in 0..5_000 {
            connections.send(peer, &packet);
            connections.flush();
            sent += 1;
        }
        let outgoing = &connections.by_peer[&peer];
        assert!(outgoing.queue.len() <= MAX_QUEUED);
        // What arrives is whole frames, each 1200 bytes of sevens.
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut incoming = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut received = 0;
        for _ in 0..10_000 {
            match (&client).read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => incoming.extend_from_slice(&chunk[..n]),
            }
            for frame in frames(&mut incoming) {
                assert_eq!(frame, packet);
                received += 1;
            }
            connections.flush();
        }
        assert!(received > 0 && received < sent, "{received} of {sent}");
        connections.refuse(peer);
        assert!(connections.by_peer.is_empty());
    }
}
