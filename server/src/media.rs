//! The RTC thread: owns the UDP socket and every viewer session, and drives one
//! [`Broadcast`] per stream from channels (datagrams, encoded frames, commands) and timeouts.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use rtcgear_rtc::{Broadcast, BroadcastConfig, BroadcastEvent, Output, RtcError, ViewerId};

use crate::config::IceServer;
use crate::stream::{StreamFrame, StreamShared, Video};
use crate::stun;
use crate::udp::Batch;

/// What the HTTP side asks of the RTC thread.
pub(crate) enum Command {
    /// A new viewer of `stream` with this SDP offer; the answer or the refusal goes to `reply`.
    Offer {
        stream: usize,
        sdp: String,
        reply: Sender<Result<(ViewerId, String), OfferError>>,
    },
    /// End one viewer's session (WHEP DELETE); `reply` says whether it existed.
    Remove {
        stream: usize,
        viewer: ViewerId,
        reply: Sender<bool>,
    },
    /// Tests: holds the RTC thread until `until` gets a message or disconnects (at most
    /// 30 s), as a thread stuck in a slow call would be.
    #[cfg(test)]
    Stall { until: Receiver<()> },
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

/// Reads datagrams from the socket and hands them to the RTC thread, until shutdown.
pub(crate) fn udp_reader(socket: UdpSocket, tx: Sender<Datagram>, shutdown: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 2048];
    while !shutdown.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((len, source)) => {
                let datagram = Datagram {
                    received: Instant::now(),
                    source,
                    data: buf[..len].to_vec(),
                };
                // A full queue means the RTC thread is overloaded: dropping is what the network
                // would do, and WebRTC recovers from it.
                if let Err(crossbeam_channel::TrySendError::Disconnected(_)) = tx.try_send(datagram)
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

/// The RTC thread's state.
pub(crate) struct Media {
    /// The socket's sending side: what each round of polling produced goes out in one batch.
    out: Batch,
    candidates: Vec<SocketAddr>,
    broadcasts: Vec<Broadcast>,
    timeouts: Vec<Instant>,
    streams: Vec<Arc<StreamShared>>,
    max_viewers: Option<usize>,
}

impl Media {
    pub(crate) fn new(
        socket: UdpSocket,
        candidates: Vec<SocketAddr>,
        streams: Vec<Arc<StreamShared>>,
        max_viewers: Option<usize>,
        ice_timeout: Duration,
    ) -> Media {
        let now = Instant::now();
        let broadcasts = streams
            .iter()
            .map(|stream| {
                // Passed-through H.264: keyframes cannot be asked for, so a GOP cache starts
                // new viewers, and the answer names the stream's own profile.
                let config = BroadcastConfig::new(candidates.clone())
                    .with_ice_timeout(ice_timeout)
                    .with_gop_cache(matches!(stream.video, Video::Passthrough { .. }))
                    .with_h264_profile(match stream.video {
                        Video::Encoded => None,
                        Video::Passthrough { profile } => profile,
                    });
                Broadcast::new(now, config)
            })
            .collect::<Vec<_>>();
        Media {
            out: Batch::new(socket),
            timeouts: vec![now; broadcasts.len()],
            candidates,
            broadcasts,
            streams,
            max_viewers,
        }
    }

    /// Runs until shutdown: select over datagrams, frames, commands and the next timeout.
    pub(crate) fn run(
        mut self,
        udp_rx: Receiver<Datagram>,
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
            select! {
                recv(udp_rx) -> datagram => {
                    let Ok(datagram) = datagram else { break };
                    self.handle_datagram(datagram);
                    // Take what else is queued before looking at timers again.
                    while let Ok(datagram) = udp_rx.try_recv() {
                        self.handle_datagram(datagram);
                    }
                }
                recv(media_rx) -> frame => {
                    let Ok(frame) = frame else { break };
                    self.handle_frame(frame);
                }
                recv(command_rx) -> command => {
                    let Ok(command) = command else { break };
                    self.handle_command(command);
                }
                recv(timer) -> _ => {
                    let now = Instant::now();
                    for index in 0..self.broadcasts.len() {
                        if self.timeouts[index] <= now {
                            self.broadcasts[index].handle_timeout(now);
                            self.drain(index);
                        }
                    }
                }
                recv(tick) -> _ => {}
            }
        }
        self.close_all();
    }

    fn handle_datagram(&mut self, datagram: Datagram) {
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

    fn handle_frame(&mut self, stream_frame: StreamFrame) {
        let StreamFrame { stream, unit } = stream_frame;
        let Some(broadcast) = self.broadcasts.get_mut(stream) else {
            return;
        };
        broadcast.handle_frame(Instant::now(), &unit);
        self.drain(stream);
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Offer { stream, sdp, reply } => {
                let total: usize = self.broadcasts.iter().map(Broadcast::viewer_count).sum();
                let result = match self.max_viewers {
                    Some(max) if total >= max => Err(OfferError::Full { max }),
                    _ => match self.broadcasts.get_mut(stream) {
                        Some(broadcast) => broadcast
                            .handle_offer(Instant::now(), &sdp)
                            .map_err(OfferError::Rtc),
                        None => Err(OfferError::Rtc(RtcError::NoVideo)),
                    },
                };
                if let Ok((viewer, _)) = &result {
                    tracing::info!(stream = %self.streams[stream].label(), "{viewer} offered");
                }
                let _ = reply.send(result);
                self.drain(stream);
            }
            Command::Remove {
                stream,
                viewer,
                reply,
            } => {
                let removed = self
                    .broadcasts
                    .get_mut(stream)
                    .is_some_and(|b| b.remove_viewer(viewer));
                let _ = reply.send(removed);
                if stream < self.broadcasts.len() {
                    self.drain(stream);
                }
            }
            #[cfg(test)]
            Command::Stall { until } => {
                let _ = until.recv_timeout(Duration::from_secs(30));
            }
        }
    }

    /// Polls one broadcast until it has nothing more, acting on what it says.
    fn drain(&mut self, index: usize) {
        loop {
            match self.broadcasts[index].poll_output() {
                Output::Transmit {
                    destination,
                    contents,
                    ..
                } => {
                    self.out.push(destination, contents);
                }
                Output::Event(event) => self.handle_event(index, event),
                Output::Timeout(at) => {
                    self.out.flush();
                    self.timeouts[index] = at;
                    // Counted as soon as an offer is answered, so an idle stream starts
                    // capturing and encoding while the viewer is still connecting.
                    self.streams[index]
                        .viewers
                        .store(self.broadcasts[index].viewer_count(), Ordering::Relaxed);
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
            BroadcastEvent::KeyframeNeeded => {
                shared.keyframe_requested.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The local address a datagram from `source` arrived at. The socket may be bound to every
    /// interface, so this picks the candidate the peer most likely used: its own address when
    /// it is one of ours (loopback or this host), else the first of the same family.
    fn local_address_for(&self, source: SocketAddr) -> SocketAddr {
        let same_family = |c: &&SocketAddr| c.is_ipv4() == source.is_ipv4();
        self.candidates
            .iter()
            .find(|c| c.ip() == source.ip())
            .or_else(|| {
                self.candidates
                    .iter()
                    .filter(same_family)
                    .find(|c| c.ip().is_loopback() == source.ip().is_loopback())
            })
            .or_else(|| self.candidates.iter().find(same_family))
            .or(self.candidates.first())
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

/// The addresses to announce as host candidates for a socket bound to `bind:port`: every
/// interface's address when `bind` is unspecified, plus a public address if one is given.
pub(crate) fn host_candidates(
    bind: IpAddr,
    port: u16,
    public_ip: Option<IpAddr>,
) -> Vec<SocketAddr> {
    let mut ips: Vec<IpAddr> = if bind.is_unspecified() {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => interfaces
                .into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() == bind.is_ipv4() || bind.is_ipv6())
                // Link-local IPv6 addresses need a scope id that SDP cannot carry well.
                .filter(|ip| match ip {
                    IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                    IpAddr::V4(_) => true,
                })
                .collect(),
            Err(err) => {
                tracing::warn!("cannot list network interfaces ({err}); announcing loopback only");
                vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)]
            }
        }
    } else {
        vec![bind]
    };
    if let Some(public) = public_ip {
        ips.push(public);
    }
    ips.sort_by_key(|ip| ip.is_loopback());
    ips.dedup();
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// How long startup waits for a STUN server's answer, over all retransmissions.
const STUN_WAIT: Duration = Duration::from_millis(1500);

/// Asks the STUN server `stun` for the public address of `socket` (the media socket, before any
/// thread reads it) and adds it to `candidates` if it is new. A failure is logged and otherwise
/// ignored: the server still works on the host candidates.
///
/// The mapped address is announced as a host candidate, as `public_ip` is: the `rtc` crate
/// announces every configured address that way, and browsers connect to it all the same.
pub(crate) fn add_reflexive_candidate(
    socket: &UdpSocket,
    stun: &IceServer,
    candidates: &mut Vec<SocketAddr>,
) {
    match stun::mapped_address(socket, stun, STUN_WAIT) {
        Ok(mapped) if candidates.contains(&mapped) => {
            tracing::info!("STUN server {stun} sees the media port as {mapped}, already announced");
        }
        Ok(mapped) => {
            tracing::info!("STUN server {stun} sees the media port as {mapped}; announcing it");
            candidates.push(mapped);
            // As in host_candidates: loopback last.
            candidates.sort_by_key(|c| c.ip().is_loopback());
        }
        Err(reason) => {
            tracing::warn!("no server-reflexive candidate from STUN server {stun}: {reason}");
        }
    }
}
