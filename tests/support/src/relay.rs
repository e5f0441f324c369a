//! A lossy UDP relay on loopback, for end-to-end tests of what a bad network does: it drops,
//! delays, reorders and duplicates datagrams, seeded, and can cap the rate toward the client
//! behind a bounded queue, as a thin link does.
//!
//! One relay carries one client. The client sends to [`Relay::addr`] instead of the server's
//! candidate (rewrite the candidate in the SDP answer the client receives); the relay forwards
//! to the server from a socket of its own and passes the server's datagrams back. To the
//! server the relay's socket is simply the client's address, so ICE, DTLS and SRTP go through
//! it untouched. The relay's thread ends when the relay is dropped, or by itself after
//! [`RelayConfig::lifetime`], so no test can leave it running.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the relay does to datagrams. Loss, delay, jitter, reordering and duplication apply
/// both ways; the rate cap only toward the client.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// The probability that a datagram is dropped.
    pub loss: f64,
    /// The base one-way delay.
    pub delay: Duration,
    /// Each datagram's delay varies by up to this much either way (uniformly), so datagrams
    /// close together overtake each other.
    pub jitter: Duration,
    /// The probability that a datagram is held back [`RelayConfig::reorder_delay`] more, so
    /// later ones overtake it.
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_delay: Duration,
    /// The probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Toward the client: at most this many bits a second, with at most `queue` bytes waiting
    /// (tail drop beyond).
    pub rate: Option<RateCap>,
    /// Seeds the relay's random numbers: the same seed, the same decisions.
    pub seed: u64,
    /// The relay stops by itself after this long.
    pub lifetime: Duration,
}

/// A bottleneck toward the client: its rate and its queue.
#[derive(Debug, Clone, Copy)]
pub struct RateCap {
    /// Bits a second.
    pub bits_per_second: u64,
    /// The most bytes waiting to go out; datagrams beyond are dropped.
    pub queue_bytes: usize,
}

impl RelayConfig {
    /// A perfect relay (no loss, no delay) seeded with `seed`, living at most 60 s.
    pub fn new(seed: u64) -> RelayConfig {
        RelayConfig {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(15),
            duplicate: 0.0,
            rate: None,
            seed,
            lifetime: Duration::from_secs(60),
        }
    }

    /// Drops each datagram with probability `loss`.
    pub fn loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }

    /// Delays datagrams by `delay`, give or take `jitter`.
    pub fn delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.delay = delay;
        self.jitter = jitter;
        self
    }

    /// Holds back a share `reorder` of datagrams long enough for later ones to overtake them.
    pub fn reorder(mut self, reorder: f64) -> Self {
        self.reorder = reorder;
        self
    }

    /// Sends a share `duplicate` of datagrams twice.
    pub fn duplicate(mut self, duplicate: f64) -> Self {
        self.duplicate = duplicate;
        self
    }

    /// Caps the rate toward the client behind a queue of `queue_bytes`.
    pub fn rate(mut self, bits_per_second: u64, queue_bytes: usize) -> Self {
        self.rate = Some(RateCap {
            bits_per_second,
            queue_bytes,
        });
        self
    }

    /// Stops the relay by itself after `lifetime`.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }
}

/// Counts for one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Datagrams that came in.
    pub received: u64,
    /// Datagrams dropped at random.
    pub dropped: u64,
    /// Datagrams dropped because the rate cap's queue was full.
    pub overflowed: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams held back to be overtaken.
    pub reordered: u64,
    /// Datagrams sent on (copies included).
    pub sent: u64,
    /// The most bytes the rate cap's queue held.
    pub max_queue_bytes: usize,
}

/// What a relay has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// From the server to the client.
    pub to_client: FlowStats,
    /// From the client to the server.
    pub to_server: FlowStats,
}

/// A running relay; stopped and joined on drop.
pub struct Relay {
    addr: SocketAddr,
    stats: Arc<Mutex<RelayStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay on a free loopback port in front of `server` (a UDP address on loopback).
    pub fn start(server: SocketAddr, config: RelayConfig) -> Relay {
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback UDP port");
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback UDP port");
        for socket in [&front, &back] {
            socket.set_nonblocking(true).expect("a non-blocking socket");
        }
        let addr = front.local_addr().expect("a bound socket has an address");
        let stats = Arc::new(Mutex::new(RelayStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
            thread::Builder::new()
                .name("test-relay".into())
                .spawn(move || {
                    Forwarder::new(front, back, server, config, stats).run(&stop);
                })
                .expect("a relay thread")
        };
        Relay {
            addr,
            stats,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the client should send: the relay's front socket.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counts so far.
    pub fn stats(&self) -> RelayStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A script for [`crate::webdriver::Browser::on_new_document`] that makes the page send to
    /// this relay instead of the server's host candidate on `server_udp_port` (at 127.0.0.1):
    /// it rewrites the candidate in every SDP answer the page applies.
    pub fn answer_rewrite_script(&self, server_udp_port: u16) -> String {
        format!(
            "(() => {{ \
               const apply = RTCPeerConnection.prototype.setRemoteDescription; \
               window.__relayRewrites = 0; \
               RTCPeerConnection.prototype.setRemoteDescription = function (d, ...rest) {{ \
                 if (d && typeof d.sdp === 'string') {{ \
                   const sdp = d.sdp.replace(/ 127\\.0\\.0\\.1 {server_udp_port} typ host/g, \
                     () => {{ window.__relayRewrites++; return ' 127.0.0.1 {relay} typ host'; }}); \
                   d = {{ type: d.type, sdp }}; \
                 }} \
                 return apply.call(this, d, ...rest); \
               }}; \
             }})();",
            relay = self.addr.port()
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A datagram waiting for its time: (when, order of arrival, toward the client, bytes).
type Queued = Reverse<(Instant, u64, bool, Vec<u8>)>;

struct Forwarder {
    front: UdpSocket,
    back: UdpSocket,
    server: SocketAddr,
    client: Option<SocketAddr>,
    config: RelayConfig,
    rng: SplitMix,
    queue: BinaryHeap<Queued>,
    order: u64,
    /// When the rate-capped link toward the client is free again.
    link_free_at: Option<Instant>,
    /// Bytes toward the client waiting behind the rate cap.
    capped_bytes: usize,
    counts: RelayStats,
    shared: Arc<Mutex<RelayStats>>,
}

impl Forwarder {
    fn new(
        front: UdpSocket,
        back: UdpSocket,
        server: SocketAddr,
        config: RelayConfig,
        shared: Arc<Mutex<RelayStats>>,
    ) -> Self {
        Forwarder {
            front,
            back,
            server,
            client: None,
            rng: SplitMix(config.seed),
            config,
            queue: BinaryHeap::new(),
            order: 0,
            link_free_at: None,
            capped_bytes: 0,
            counts: RelayStats::default(),
            shared,
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let deadline = Instant::now() + self.config.lifetime;
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            // Bounded batches, so one flood cannot starve the other direction or the sends.
            for _ in 0..256 {
                match self.front.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        self.client = Some(from);
                        self.take(false, &buf[..len]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            for _ in 0..256 {
                match self.back.recv_from(&mut buf) {
                    Ok((len, from)) if from == self.server => self.take(true, &buf[..len]),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            while self
                .queue
                .peek()
                .is_some_and(|Reverse((at, ..))| *at <= now)
            {
                let Some(Reverse((_, _, to_client, data))) = self.queue.pop() else {
                    break;
                };
                self.send(to_client, &data);
            }
            *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = self.counts;
            let next = self
                .queue
                .peek()
                .map_or(Duration::from_millis(1), |Reverse((at, ..))| {
                    at.saturating_duration_since(now)
                });
            thread::sleep(next.clamp(Duration::from_micros(200), Duration::from_millis(1)));
        }
    }

    /// One datagram in: dropped, delayed, maybe duplicated or held back, queued.
    fn take(&mut self, to_client: bool, data: &[u8]) {
        let now = Instant::now();
        let flow = self.flow(to_client);
        flow.received += 1;
        if self.rng.chance(self.config.loss) {
            self.flow(to_client).dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.flow(to_client).duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = now + self.delay();
            if self.rng.chance(self.config.reorder) {
                self.flow(to_client).reordered += 1;
                at += self.config.reorder_delay;
            }
            if let (true, Some(cap)) = (to_client, self.config.rate) {
                if self.capped_bytes + data.len() > cap.queue_bytes {
                    self.flow(true).overflowed += 1;
                    continue;
                }
                let transmit = Duration::from_secs_f64(
                    data.len() as f64 * 8.0 / cap.bits_per_second.max(1) as f64,
                );
                let start = self.link_free_at.map_or(at, |free| free.max(at));
                at = start + transmit;
                self.link_free_at = Some(at);
                self.capped_bytes += data.len();
                let queued = self.capped_bytes;
                let flow = self.flow(true);
                flow.max_queue_bytes = flow.max_queue_bytes.max(queued);
            }
            self.order += 1;
            self.queue
                .push(Reverse((at, self.order, to_client, data.to_vec())));
        }
    }

    fn send(&mut self, to_client: bool, data: &[u8]) {
        if to_client && self.config.rate.is_some() {
            self.capped_bytes = self.capped_bytes.saturating_sub(data.len());
        }
        let sent = if to_client {
            match self.client {
                Some(client) => self.front.send_to(data, client).is_ok(),
                None => false,
            }
        } else {
            self.back.send_to(data, self.server).is_ok()
        };
        if sent {
            self.flow(to_client).sent += 1;
        }
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.config.jitter.as_secs_f64() * (2.0 * self.rng.unit() - 1.0);
        Duration::from_secs_f64((self.config.delay.as_secs_f64() + jitter).max(0.0))
    }

    fn flow(&mut self, to_client: bool) -> &mut FlowStats {
        if to_client {
            &mut self.counts.to_client
        } else {
            &mut self.counts.to_server
        }
    }
}

/// SplitMix64: small, seeded, good enough to decide the fate of datagrams.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.unit() < probability
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client and an echo server through the relay: loss, duplication and the rate cap's
    /// queue do what they say, within the bounds of chance.
    #[test]
    fn drops_duplicates_and_caps() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a port");
        let server_addr = server.local_addr().expect("an address");
        server
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a timeout");
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut echoed = 0;
            while Instant::now() < deadline {
                if let Ok((len, from)) = server.recv_from(&mut buf) {
                    if &buf[..len] == b"end" {
                        break;
                    }
                    let _ = server.send_to(&buf[..len], from);
                    echoed += 1;
                }
            }
            echoed
        });
        let relay = Relay::start(
            server_addr,
            RelayConfig::new(42)
                .loss(0.1)
                .duplicate(0.1)
                .delay(Duration::from_millis(2), Duration::from_millis(1))
                .reorder(0.05)
                .rate(8 * 100_000, 20_000),
        );
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a port");
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a timeout");
        for i in 0..2000u32 {
            let mut datagram = vec![0u8; 1000];
            datagram[..4].copy_from_slice(&i.to_be_bytes());
            client.send_to(&datagram, relay.addr()).expect("sent");
            // Slowly enough that no socket buffer overflows: only the relay drops.
            if i % 10 == 9 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let mut back = 0;
        let mut buf = [0u8; 2048];
        while client.recv_from(&mut buf).is_ok() {
            back += 1;
        }
        client.send_to(b"end", server_addr).expect("sent");
        let echoed = echo.join().expect("the echo thread");
        let stats = relay.stats();
        assert_eq!(stats.to_server.received, 2000);
        let dropped = stats.to_server.dropped;
        assert!((120..=280).contains(&dropped), "{dropped} of 2000 dropped");
        assert!(stats.to_server.duplicated > 100, "{stats:?}");
        assert!(stats.to_server.reordered > 40, "{stats:?}");
        assert_eq!(echoed, stats.to_server.sent);
        // 2 MB offered toward the client at 100 kB/s in about 0.3 s: the queue fills and drops.
        assert!(stats.to_client.overflowed > 500, "{stats:?}");
        assert!(stats.to_client.max_queue_bytes <= 20_000, "{stats:?}");
        assert_eq!(back, stats.to_client.sent);
    }
}
