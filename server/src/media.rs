//! An RTC thread: owns its viewers' sessions and the UDP socket's sending side, and drives
//! one [`Broadcast`] per stream (its [`Shard`] of it) from channels (datagrams, encoded
//! frames, commands) and timeouts. `rtc_threads.rs` spreads the viewers over such threads.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use rtcgear_capture::Codec;
use rtcgear_rtc::{
    Broadcast, BroadcastConfig, BroadcastEvent, LocalCandidate, Output, RtcError, Shard, Transport,
    ViewerId,
};

use crate::config::{IceServer, Latency};
use crate::ice_tcp::{Connections, TcpEvent};
use crate::rtc_threads::{self, Meter, Router, ShardLoad, StreamFrame, Verdict};
use crate::stream::{StreamShared, Video};
use crate::stun;
use crate::udp::Batch;

/// What the HTTP side asks of the RTC thread.
pub(crate) enum Command {
    /// A new viewer of `stream` with this SDP offer, sent from `viewer` (the HTTP client's
    /// address, when known); the answer or the refusal goes to `reply`.
    Offer {
        stream: usize,
        sdp: String,
        viewer: Option<IpAddr>,
        reply: Sender<Result<(ViewerId, String), OfferError>>,
    },
    /// End one viewer's session (WHEP DELETE); `reply` says what became of it.
    Remove {
        stream: usize,
        viewer: ViewerId,
        reply: Sender<Removal>,
    },
    /// The STUN server `stun` sees the media socket's `base` as `mapped`: announce it as a
    /// server-reflexive candidate from now on.
    Reflexive {
        mapped: SocketAddr,
        base: SocketAddr,
        stun: String,
    },
    /// The `stun` thread got no answer and has given up: datagrams need no longer be looked
    /// at for STUN Binding responses.
    StunGaveUp,
    /// Tests: holds the RTC thread until `until` gets a message or disconnects (at most
    /// 30 s), as a thread stuck in a slow call would be.
    #[cfg(test)]
    Stall { until: Receiver<()> },
    /// Tests: keeps the RTC thread's CPU busy for `time`, as too many viewers would.
    #[cfg(test)]
    Spin { time: Duration },
}

/// What a [`Command::Remove`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The session was there, and is ending now.
    Ended,
    /// The session was answered once but is gone already (ICE failed or timed out, the
    /// browser closed it, an earlier DELETE). Names of sessions never answered on the stream
    /// are refused before they get here (see `session.rs`).
    Gone,
}

/// Why an offer was refused.
#[derive(Debug)]
pub(crate) enum OfferError {
    /// The server-wide viewer limit is reached.
    Full { max: usize },
    /// The offer itself is bad, or cannot be negotiated.
    Rtc(RtcError),
}

/// A datagram as the UDP reader thread hands it over.
pub(crate) struct Datagram {
    pub(crate) received: Instant,
    pub(crate) source: SocketAddr,
    pub(crate) data: Vec<u8>,
}

/// Reads datagrams from the socket and hands each to the RTC thread that owns its viewer
/// (one of `threads`), until shutdown.
pub(crate) fn udp_reader(
    socket: UdpSocket,
    threads: Vec<Sender<Datagram>>,
    shutdown: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 2048];
    let mut router = Router::new(threads.len(), Instant::now());
    while !shutdown.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((len, source)) => {
                let received = Instant::now();
                let data = buf[..len].to_vec();
                let thread = &threads[router.route(received, source, &data)];
                let datagram = Datagram {
                    received,
                    source,
                    data,
                };
                // A full queue means the RTC thread is overloaded: dropping is what the network
                // would do, and WebRTC recovers from it.
                if let Err(crossbeam_channel::TrySendError::Disconnected(_)) =
                    thread.try_send(datagram)
                {
                    return;
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => {
                // ICMP errors from a viewer that went away surface here on Linux; they concern
                // one peer only.
                tracing::trace!("UDP receive: {err}");
            }
        }
    }
}

/// An RTC thread's state.
pub(crate) struct Media {
    /// Which of the RTC threads this is.
    shard: Shard,
    /// Every thread's load; this one's is `loads[shard.index()]`.
    loads: Arc<[ShardLoad]>,
    /// How far behind this thread runs.
    meter: Meter,
    /// The socket's sending side: what each round of polling produced goes out in one batch.
    out: Batch,
    /// The viewers' ICE-TCP connections, written to like the socket.
    tcp: Connections,
    candidates: Candidates,
    broadcasts: Vec<Broadcast>,
    timeouts: Vec<Instant>,
    streams: Vec<Arc<StreamShared>>,
    max_viewers: Option<usize>,
    /// When the streams' [`ViewerPaths`](rtcgear_rtc::ViewerPaths) were last counted.
    paths_counted: Instant,
    /// Where STUN Binding responses go while the `stun` thread waits for one.
    stun_replies: Option<Sender<(SocketAddr, Vec<u8>)>>,
}

/// What every RTC thread is told.
#[derive(Clone)]
pub(crate) struct MediaConfig {
    pub(crate) candidates: Candidates,
    pub(crate) streams: Vec<Arc<StreamShared>>,
    pub(crate) max_viewers: Option<usize>,
    pub(crate) ice_timeout: Duration,
    pub(crate) latency: Latency,
}

impl MediaConfig {
    pub(crate) fn new(
        config: &crate::ServerConfig,
        candidates: Candidates,
        streams: Vec<Arc<StreamShared>>,
    ) -> MediaConfig {
        MediaConfig {
            candidates,
            streams,
            max_viewers: config.max_viewers,
            ice_timeout: config.ice_timeout,
            latency: config.latency,
        }
    }
}

impl Media {
    /// RTC thread `shard` of `loads.len()`.
    pub(crate) fn new(
        socket: UdpSocket,
        config: MediaConfig,
        shard: Shard,
        loads: Arc<[ShardLoad]>,
    ) -> Media {
        let MediaConfig {
            candidates,
            streams,
            max_viewers,
            ice_timeout,
            latency,
        } = config;
        let playout_delay = match latency {
            Latency::Low => Some((Duration::ZERO, Duration::ZERO)),
            _ => None,
        };
        let now = Instant::now();
        let broadcasts = streams
            .iter()
            .map(|stream| {
                // Passed-through H.264: keyframes cannot be asked for, so a GOP cache starts
                // new viewers, and the answer names the stream's own profile.
                // Every host address, so that datagrams are accepted wherever they arrive;
                // each offer's answer announces only what fits its viewer (`for_viewer`).
                let config = BroadcastConfig::new(candidates.hosts.clone())
                    .with_tcp_candidates(candidates.tcp.clone())
                    // VP8 for browsers without H.264, encoded from the stream's frames (a
                    // passed-through stream's decoded first).
                    .with_vp8(true)
                    .with_ice_timeout(ice_timeout)
                    .with_shard(shard)
                    .with_playout_delay(playout_delay)
                    .with_gop_cache(matches!(stream.video, Video::Passthrough { .. }))
                    .with_h264_profile(match stream.video {
                        Video::Encoded => None,
                        Video::Passthrough { profile } => profile,
                    });
                Broadcast::new(now, config)
            })
            .collect::<Vec<_>>();
        Media {
            shard,
            loads,
            meter: Meter::new(now),
            out: Batch::new(socket),
            tcp: Connections::default(),
            timeouts: vec![now; broadcasts.len()],
            candidates,
            broadcasts,
            streams,
            max_viewers,
            paths_counted: now,
            stun_replies: None,
        }
    }

    /// Passes STUN Binding responses to `replies` (the `stun` thread) instead of the viewers,
    /// as long as it listens.
    pub(crate) fn with_stun_replies(mut self, replies: Sender<(SocketAddr, Vec<u8>)>) -> Media {
        self.stun_replies = Some(replies);
        self
    }

    /// Runs until shutdown: select over datagrams, ICE-TCP packets, frames, commands and the
    /// next timeout.
    pub(crate) fn run(
        mut self,
        udp_rx: Receiver<Datagram>,
        mut tcp_rx: Receiver<TcpEvent>,
        media_rx: Receiver<StreamFrame>,
        command_rx: Receiver<Command>,
        shutdown: Arc<AtomicBool>,
    ) {
        for index in 0..self.broadcasts.len() {
            self.drain(index);
        }
        // Wakes the loop now and then to notice shutdown.
        let tick = crossbeam_channel::tick(Duration::from_millis(100));
        loop {
            if shutdown.load(Ordering::Relaxed) {
                break;
            }
            let deadline = self.timeouts.iter().min().copied();
            let timer = crossbeam_channel::at(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(1)),
            );
            // Busy is the time from waking up to waiting again: time on the CPU, and time
            // the thread was ready but not running, which also keeps its viewers waiting.
            let woke;
            select! {
                recv(udp_rx) -> datagram => {
                    woke = Instant::now();
                    let Ok(datagram) = datagram else { break };
                    self.handle_datagram(datagram);
                    // Take what else is queued before looking at timers again.
                    while let Ok(datagram) = udp_rx.try_recv() {
                        self.handle_datagram(datagram);
                    }
                }
                recv(tcp_rx) -> event => {
                    woke = Instant::now();
                    let Ok(event) = event else {
                        // No ICE-TCP (or no more): nothing will come this way.
                        tcp_rx = crossbeam_channel::never();
                        continue;
                    };
                    self.handle_tcp(event);
                    while let Ok(event) = tcp_rx.try_recv() {
                        self.handle_tcp(event);
                    }
                    self.tcp.flush();
                }
                recv(media_rx) -> frame => {
                    woke = Instant::now();
                    let Ok(frame) = frame else { break };
                    self.handle_frame(frame);
                }
                recv(command_rx) -> command => {
                    woke = Instant::now();
                    let Ok(command) = command else { break };
                    self.handle_command(command);
                }
                recv(timer) -> _ => {
                    woke = Instant::now();
                    let now = woke;
                    for index in 0..self.broadcasts.len() {
                        if self.timeouts[index] <= now {
                            self.broadcasts[index].handle_timeout(now);
                            self.drain(index);
                        }
                    }
                }
                recv(tick) -> _ => woke = Instant::now(),
            }
            let done = Instant::now();
            self.meter.busy(done - woke);
            self.once_a_second(done);
        }
        self.close_all();
    }

    fn handle_datagram(&mut self, datagram: Datagram) {
        if let Some(replies) = &self.stun_replies {
            if stun::is_binding_response(&datagram.data) {
                let reply = (datagram.source, datagram.data);
                if let Err(crossbeam_channel::TrySendError::Disconnected(_)) =
                    replies.try_send(reply)
                {
                    self.stun_replies = None;
                }
                return;
            }
        }
        let destination = self.local_address_for(datagram.source);
        for index in 0..self.broadcasts.len() {
            if self.broadcasts[index].handle_receive(
                datagram.received,
                datagram.source,
                destination,
                &datagram.data,
            ) {
                self.drain(index);
                return;
            }
        }
        tracing::trace!("datagram from {} belongs to no viewer", datagram.source);
    }

    /// Once a second: counts how each stream's viewers reach the server (for
    /// `/api/streams`), and weighs how far behind the thread runs: one that falls behind
    /// takes no new viewers until it keeps up again.
    fn once_a_second(&mut self, now: Instant) {
        if now.duration_since(self.paths_counted) < Duration::from_secs(1) {
            return;
        }
        self.paths_counted = now;
        let shard = self.shard.index();
        for (broadcast, shared) in self.broadcasts.iter().zip(&self.streams) {
            *crate::stream::lock(&shared.paths[shard]) = broadcast.viewer_paths();
        }
        let viewers = self.viewer_count();
        let load = &self.loads[shard];
        let verdict = self.meter.tick(now, viewers);
        let (busy, late) = self.meter.last;
        load.busy_permille
            .store((busy * 1000.0) as usize, Ordering::Relaxed);
        load.late_us
            .store(late.as_micros() as usize, Ordering::Relaxed);
        match verdict {
            Some(Verdict::Behind {
                capacity,
                late,
                busy,
            }) => {
                tracing::warn!(
                    "RTC thread {shard} is behind (frames {} ms late, busy {:.0}% of the \
                     time, {viewers} viewers): it takes at most {capacity} viewers until it \
                     keeps up; further offers get 503",
                    late.as_millis(),
                    busy * 100.0
                );
                load.capacity.store(capacity, Ordering::Relaxed);
            }
            Some(Verdict::KeepsUp) => {
                tracing::info!("RTC thread {shard} keeps up again: it takes new viewers");
                load.capacity.store(usize::MAX, Ordering::Relaxed);
            }
            None => {}
        }
    }

    /// Viewers of every stream on this thread.
    fn viewer_count(&self) -> usize {
        self.broadcasts.iter().map(Broadcast::viewer_count).sum()
    }

    fn handle_tcp(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Opened { peer, id, stream } => self.tcp.opened(peer, id, stream),
            TcpEvent::Closed { peer, id } => {
                if self.tcp.closed(peer, id) {
                    for broadcast in &mut self.broadcasts {
                        broadcast.forget_route(Transport::Tcp, peer);
                    }
                }
            }
            TcpEvent::Packet {
                received,
                peer,
                local,
                data,
            } => {
                for index in 0..self.broadcasts.len() {
                    if self.broadcasts[index].handle_receive_over(
                        received,
                        Transport::Tcp,
                        peer,
                        local,
                        &data,
                    ) {
                        self.drain(index);
                        return;
                    }
                }
                self.tcp.refuse(peer);
            }
        }
    }

    fn handle_frame(&mut self, stream_frame: StreamFrame) {
        let StreamFrame {
            stream,
            frame,
            sent,
        } = stream_frame;
        let Some(broadcast) = self.broadcasts.get_mut(stream) else {
            return;
        };
        broadcast.handle_packetized(Instant::now(), &frame);
        self.drain(stream);
        self.meter.frame(sent.elapsed());
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Offer {
                stream,
                sdp,
                viewer,
                reply,
            } => {
                // Every thread's count, this one's as of now.
                let total = rtc_threads::total_viewers(&self.loads)
                    - self.loads[self.shard.index()]
                        .viewers
                        .load(Ordering::Relaxed)
                    + self.viewer_count();
                let result = match self.max_viewers {
                    Some(max) if total >= max => Err(OfferError::Full { max }),
                    _ => match self.broadcasts.get_mut(stream) {
                        Some(broadcast) => broadcast
                            .handle_offer_with_candidates(
                                Instant::now(),
                                &sdp,
                                &self.candidates.for_viewer(viewer),
                            )
                            .map_err(OfferError::Rtc),
                        None => Err(OfferError::Rtc(RtcError::NoVideo)),
                    },
                };
                if let Ok((viewer, _)) = &result {
                    tracing::info!(stream = %self.streams[stream].label(), "{viewer} offered");
                }
                // Counted before the answer leaves, so the next offer sees this viewer.
                self.drain(stream);
                let _ = reply.send(result);
            }
            Command::Remove {
                stream,
                viewer,
                reply,
            } => {
                // Only sessions this server answered get here (HTTP checks their signed
                // names), so one that is no viewer now has ended already.
                let removed = self
                    .broadcasts
                    .get_mut(stream)
                    .is_some_and(|b| b.remove_viewer(viewer));
                let removal = if removed {
                    Removal::Ended
                } else {
                    Removal::Gone
                };
                let _ = reply.send(removal);
                if stream < self.broadcasts.len() {
                    self.drain(stream);
                }
            }
            Command::Reflexive { mapped, base, stun } => {
                // The answer is in: no more datagrams are looked at for it.
                self.stun_replies = None;
                let known = self.candidates.hosts.contains(&mapped);
                if !known {
                    self.candidates.reflexive = Some((mapped, base));
                }
                // Every thread is told; the first one says so for all.
                if self.shard.index() > 0 {
                } else if known {
                    tracing::info!(
                        "STUN server {stun} sees the media port as {mapped}, already announced"
                    );
                } else {
                    tracing::info!(
                        "STUN server {stun} sees the media port ({base}) as {mapped}; \
                         announcing it as a server-reflexive candidate"
                    );
                }
            }
            Command::StunGaveUp => self.stun_replies = None,
            #[cfg(test)]
            Command::Stall { until } => {
                let _ = until.recv_timeout(Duration::from_secs(30));
            }
            #[cfg(test)]
            Command::Spin { time } => {
                let until = Instant::now() + time.min(Duration::from_secs(5));
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Polls one broadcast until it has nothing more, acting on what it says.
    fn drain(&mut self, index: usize) {
        loop {
            match self.broadcasts[index].poll_output() {
                Output::Transmit {
                    transport: Transport::Udp,
                    destination,
                    contents,
                    ..
                } => {
                    self.out.push(destination, contents);
                }
                Output::Transmit {
                    transport: Transport::Tcp,
                    destination,
                    contents,
                    ..
                } => {
                    self.tcp.send(destination, &contents);
                }
                Output::Event(event) => self.handle_event(index, event),
                Output::Timeout(at) => {
                    self.out.flush();
                    self.tcp.flush();
                    self.timeouts[index] = at;
                    // Counted as soon as an offer is answered, so an idle stream starts
                    // capturing and encoding (in the codec the viewer takes) while the viewer
                    // is still connecting.
                    let (h264, vp8) = self.broadcasts[index].viewer_counts();
                    let shard = self.shard.index();
                    self.streams[index].counts[shard].store(h264, vp8);
                    let viewers = self.viewer_count();
                    self.loads[shard].viewers.store(viewers, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    fn handle_event(&mut self, index: usize, event: BroadcastEvent) {
        let shared = &self.streams[index];
        match event {
            BroadcastEvent::ViewerConnected(viewer) => {
                tracing::info!(stream = %shared.label(), "{viewer} connected");
            }
            BroadcastEvent::ViewerDisconnected(viewer, reason) => {
                tracing::info!(stream = %shared.label(), "{viewer} left: {reason}");
            }
            BroadcastEvent::KeyframeNeeded(Codec::Vp8) => {
                shared.vp8_keyframe_requested.store(true, Ordering::Relaxed);
            }
            BroadcastEvent::KeyframeNeeded(_) => {
                shared.keyframe_requested.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The local address a datagram from `source` arrived at. The socket may be bound to every
    /// interface, so this picks the candidate the peer most likely used: its own address when
    /// it is one of ours (loopback or this host), else the first of the same family.
    fn local_address_for(&self, source: SocketAddr) -> SocketAddr {
        let hosts = &self.candidates.hosts;
        let same_family = |c: &&SocketAddr| c.is_ipv4() == source.is_ipv4();
        hosts
            .iter()
            .find(|c| c.ip() == source.ip())
            .or_else(|| {
                hosts
                    .iter()
                    .filter(same_family)
                    .find(|c| c.ip().is_loopback() == source.ip().is_loopback())
            })
            .or_else(|| hosts.iter().find(same_family))
            .or(hosts.first())
            .copied()
            .unwrap_or(source)
    }

    fn close_all(&mut self) {
        for index in 0..self.broadcasts.len() {
            let viewers = self.broadcasts[index].viewer_ids();
            for viewer in viewers {
                self.broadcasts[index].remove_viewer(viewer);
            }
            self.drain(index);
        }
    }
}

/// The addresses the server announces, and which of them each viewer gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Candidates {
    /// Host candidates: the media socket's addresses (the bound one, or every interface's
    /// when bound to all) and the public addresses given, loopback last.
    pub(crate) hosts: Vec<SocketAddr>,
    /// Which of `hosts` were given as public addresses: announced to every viewer, even a
    /// loopback one (a port forward into a VM may well be `127.0.0.1`).
    pub(crate) public: Vec<SocketAddr>,
    /// Passive ICE-TCP candidates: the addresses of `hosts` with the ICE-TCP port, when on.
    pub(crate) tcp: Vec<SocketAddr>,
    /// The media socket's address as a STUN server saw it, and its base (the local address it
    /// maps), once known.
    pub(crate) reflexive: Option<(SocketAddr, SocketAddr)>,
}

impl Candidates {
    /// The candidates for a socket bound to `bind:port`: every interface's address when
    /// `bind` is unspecified, and the `public` addresses (of a family the socket can use);
    /// with `tcp_port`, the same addresses with that port as ICE-TCP candidates.
    pub(crate) fn gather(
        bind: IpAddr,
        port: u16,
        tcp_port: Option<u16>,
        public: &[IpAddr],
    ) -> Candidates {
        let mut ips: Vec<IpAddr> = if bind.is_unspecified() {
            match if_addrs::get_if_addrs() {
                Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
                Err(err) => {
                    tracing::warn!(
                        "cannot list network interfaces ({err}); announcing loopback only"
                    );
                    vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)]
                }
            }
        } else {
            vec![bind]
        };
        ips.retain(|&ip| usable_with(bind, ip));
        let mut public_ips = Vec::new();
        for &ip in public {
            let ip = ip.to_canonical();
            if usable_with(bind, ip) {
                public_ips.push(ip);
            } else {
                tracing::warn!("public address {ip} cannot reach a media socket bound to {bind}; not announcing it");
            }
        }
        Candidates::of(ips, public_ips, port, tcp_port)
    }

    fn of(
        mut ips: Vec<IpAddr>,
        public: Vec<IpAddr>,
        port: u16,
        tcp_port: Option<u16>,
    ) -> Candidates {
        ips.extend(&public);
        // Stable: interfaces in the system's order, then the public addresses; loopback last.
        ips.sort_by_key(|ip| ip.is_loopback());
        let mut hosts: Vec<SocketAddr> = Vec::new();
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            if !hosts.contains(&addr) {
                hosts.push(addr);
            }
        }
        let tcp = match tcp_port {
            Some(tcp_port) => hosts
                .iter()
                .map(|addr| SocketAddr::new(addr.ip(), tcp_port))
                .collect(),
            None => Vec::new(),
        };
        Candidates {
            hosts,
            public: public
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
            tcp,
            reflexive: None,
        }
    }

    /// What to announce to a viewer whose offer came from `viewer`.
    ///
    /// The viewer's address is the HTTP request's: the TCP peer that the gate saw, which no
    /// client can forge. The offer's own candidates would be no better: browsers hide their
    /// host addresses behind mDNS names, never offer loopback ones, and a WHEP client may
    /// trickle them later or send none. A reverse proxy on this host makes every viewer look
    /// like a loopback one; that is why a loopback peer gets everything (its real viewers may
    /// be anywhere), while a peer elsewhere gets no loopback address, which would only send
    /// its checks to its own machine. When nothing but loopback is left to announce (the
    /// server bound to `127.0.0.1` behind a port forward), everyone gets it. An unknown peer
    /// gets everything too.
    pub(crate) fn for_viewer(&self, viewer: Option<IpAddr>) -> Vec<LocalCandidate> {
        let everything = |_: &&SocketAddr| true;
        let remote = viewer.is_some_and(|ip| !ip.to_canonical().is_loopback());
        let not_loopback = |addr: &&SocketAddr| {
            !addr.ip().is_loopback() || self.public.iter().any(|p| p.ip() == addr.ip())
        };
        // UDP first, then TCP, which browsers use only when UDP fails.
        let pick = |keep: &dyn Fn(&&SocketAddr) -> bool| -> Vec<LocalCandidate> {
            let mut picked: Vec<LocalCandidate> = self
                .hosts
                .iter()
                .filter(keep)
                .map(|&addr| LocalCandidate::Host(addr))
                .collect();
            if let Some((addr, base)) = self.reflexive {
                picked.push(LocalCandidate::ServerReflexive { addr, base });
            }
            picked.extend(
                self.tcp
                    .iter()
                    .filter(keep)
                    .map(|&addr| LocalCandidate::TcpHost(addr)),
            );
            picked
        };
        if remote {
            let picked = pick(&not_loopback);
            if picked.iter().any(|c| matches!(c, LocalCandidate::Host(_))) {
                return picked;
            }
        }
        pick(&everything)
    }
}

/// Whether a socket bound to `bind` can take datagrams sent to `ip`: of its family (a socket
/// on `::` takes both), and no IPv6 link-local address, which needs a scope id that SDP
/// cannot carry well.
fn usable_with(bind: IpAddr, ip: IpAddr) -> bool {
    let family = ip.is_ipv4() == bind.is_ipv4() || (bind.is_ipv6() && bind.is_unspecified());
    let link_local = match ip {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(_) => false,
    };
    family && !link_local
}

/// How long the STUN server has to answer, over all retransmissions.
const STUN_WAIT: Duration = Duration::from_millis(1500);

/// The `stun` thread: asks the STUN server `stun` for the media port's public address,
/// sending from `socket` (a clone of the media socket) while the RTC thread hands the answers
/// over through `replies`, and tells that thread the server-reflexive candidate it found. A
/// failure is logged and otherwise ignored: the server works on its host candidates. Nothing
/// waits for it: viewers that come before the answer get the host candidates alone.
pub(crate) fn find_reflexive(
    socket: UdpSocket,
    stun: IceServer,
    replies: Receiver<(SocketAddr, Vec<u8>)>,
    threads: Vec<Sender<Command>>,
    shutdown: Arc<AtomicBool>,
) {
    // Every RTC thread answers offers, so every one announces the candidate.
    let tell = |command: &dyn Fn() -> Command| {
        threads.iter().all(|thread| {
            thread
                .send_timeout(command(), Duration::from_secs(5))
                .is_ok()
        })
    };
    match stun::ask(&socket, &stun, &replies, STUN_WAIT, &shutdown) {
        Ok((mapped, base)) => {
            let command = || Command::Reflexive {
                mapped,
                base,
                stun: stun.to_string(),
            };
            if !tell(&command) {
                tracing::debug!("an RTC thread took no server-reflexive candidate");
            }
        }
        Err(reason) => {
            tracing::warn!("no server-reflexive candidate from STUN server {stun}: {reason}");
            tell(&|| Command::StunGaveUp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an IP address")
    }

    fn addrs(candidates: &[LocalCandidate]) -> Vec<String> {
        candidates
            .iter()
            .map(|c| match c {
                LocalCandidate::Host(addr) => format!("host {addr}"),
                LocalCandidate::TcpHost(addr) => format!("tcp {addr}"),
                LocalCandidate::ServerReflexive { addr, base } => format!("srflx {addr} {base}"),
            })
            .collect()
    }

    #[test]
    fn loopback_goes_to_loopback_viewers_only() {
        let mut candidates = Candidates::of(
            vec![ip("127.0.0.1"), ip("192.168.1.5"), ip("10.0.0.2")],
            vec![ip("203.0.113.5")],
            4000,
            None,
        );
        assert_eq!(
            candidates.hosts,
            [
                "192.168.1.5:4000",
                "10.0.0.2:4000",
                "203.0.113.5:4000",
                "127.0.0.1:4000"
            ]
            .map(|a| a.parse::<SocketAddr>().unwrap())
        );
        let everything = [
            "host 192.168.1.5:4000",
            "host 10.0.0.2:4000",
            "host 203.0.113.5:4000",
            "host 127.0.0.1:4000",
        ];
        let remote = &everything[..3];
        assert_eq!(
            addrs(&candidates.for_viewer(Some(ip("127.0.0.1")))),
            everything
        );
        assert_eq!(
            addrs(&candidates.for_viewer(Some(ip("::ffff:127.0.0.1")))),
            everything
        );
        assert_eq!(addrs(&candidates.for_viewer(Some(ip("::1")))), everything);
        assert_eq!(addrs(&candidates.for_viewer(None)), everything);
        assert_eq!(addrs(&candidates.for_viewer(Some(ip("192.0.2.9")))), remote);
        assert_eq!(
            addrs(&candidates.for_viewer(Some(ip("2001:db8::9")))),
            remote
        );

        candidates.reflexive = Some((
            "198.51.100.1:4100".parse().unwrap(),
            "192.168.1.5:4000".parse().unwrap(),
        ));
        let remote = addrs(&candidates.for_viewer(Some(ip("192.0.2.9"))));
        assert_eq!(remote.len(), 4, "{remote:?}");
        assert_eq!(remote[3], "srflx 198.51.100.1:4100 192.168.1.5:4000");
        assert_eq!(candidates.for_viewer(Some(ip("127.0.0.1"))).len(), 5);
    }

    #[test]
    fn tcp_candidates_follow_the_udp_ones_with_the_same_choice_of_address() {
        let candidates = Candidates::of(
            vec![ip("127.0.0.1"), ip("192.168.1.5")],
            vec![ip("203.0.113.5")],
            4000,
            Some(8000),
        );
        assert_eq!(
            addrs(&candidates.for_viewer(Some(ip("192.0.2.9")))),
            [
                "host 192.168.1.5:4000",
                "host 203.0.113.5:4000",
                "tcp 192.168.1.5:8000",
                "tcp 203.0.113.5:8000"
            ]
        );
        assert_eq!(
            addrs(&candidates.for_viewer(Some(ip("127.0.0.1")))),
            [
                "host 192.168.1.5:4000",
                "host 203.0.113.5:4000",
                "host 127.0.0.1:4000",
                "tcp 192.168.1.5:8000",
                "tcp 203.0.113.5:8000",
                "tcp 127.0.0.1:8000"
            ]
        );
    }

    #[test]
    fn a_public_loopback_address_and_a_lone_loopback_go_to_everyone() {
        // A VM's port forward: `--public-ip 127.0.0.1` is what its host's browser uses.
        let forwarded = Candidates::of(vec![ip("10.0.2.15")], vec![ip("127.0.0.1")], 4000, None);
        assert_eq!(
            addrs(&forwarded.for_viewer(Some(ip("10.0.2.2")))),
            ["host 10.0.2.15:4000", "host 127.0.0.1:4000"]
        );
        // Bound to loopback, reached through a forward: nothing else to offer.
        let lone = Candidates::of(vec![ip("127.0.0.1")], Vec::new(), 4000, None);
        assert_eq!(
            addrs(&lone.for_viewer(Some(ip("192.0.2.9")))),
            ["host 127.0.0.1:4000"]
        );
    }

    #[test]
    fn gathering_keeps_what_the_socket_can_use() {
        let v4 = Candidates::gather(
            ip("127.0.0.1"),
            4000,
            None,
            &[ip("203.0.113.5"), ip("2001:db8::5"), ip("203.0.113.5")],
        );
        assert_eq!(
            v4.hosts,
            ["203.0.113.5:4000", "127.0.0.1:4000"].map(|a| a.parse::<SocketAddr>().unwrap())
        );
        let v6 = Candidates::gather(
            ip("::1"),
            4000,
            None,
            &[ip("::ffff:203.0.113.5"), ip("2001:db8::5")],
        );
        assert_eq!(
            v6.hosts,
            ["[2001:db8::5]:4000", "[::1]:4000"].map(|a| a.parse::<SocketAddr>().unwrap())
        );
        assert!(usable_with(ip("::"), ip("203.0.113.5")));
        assert!(!usable_with(ip("0.0.0.0"), ip("2001:db8::5")));
        assert!(!usable_with(ip("::"), ip("fe80::1")));
        // Bound to every interface: at least the loopback one, never unspecified.
        let all = Candidates::gather(ip("0.0.0.0"), 4000, None, &[]);
        assert!(
            all.hosts
                .iter()
                .all(|a| a.is_ipv4() && !a.ip().is_unspecified()),
            "{:?}",
            all.hosts
        );
    }
}
