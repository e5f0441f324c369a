//! An in-memory network: one `Broadcast` and str0m client peers, simulated time, no sockets.
//!
//! Datagrams travel instantly, unless a client sits behind a [`Link`]: `str0m-netem` on each
//! way, with loss, delay, jitter (so reordering), duplication or a rate cap, all seeded. A client
//! can go offline, after which everything to and from it is lost and its timers stop, as when a
//! laptop lid closes.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rtcgear_capture::{h264, AccessUnit, CaptureTime, Codec};
use rtcgear_rtc::{
    Broadcast, BroadcastConfig, BroadcastEvent, Output, RtcError, Transport, ViewerId,
};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::stats::MediaIngressStats;
use str0m::{Candidate, Event, Input, Rtc, RtcConfig};
use str0m_netem::{Netem, NetemConfig};

pub const FPS: u32 = 30;
pub const FRAME: Duration = Duration::from_nanos(1_000_000_000 / FPS as u64);

pub fn server_addr() -> SocketAddr {
    (Ipv4Addr::new(192, 0, 2, 1), 4000).into()
}

/// A test configuration: one host candidate, a short ICE timeout.
pub fn config() -> BroadcastConfig {
    BroadcastConfig::new(vec![server_addr()]).with_ice_timeout(Duration::from_secs(5))
}

/// Where a frame comes from: a real encoder or a fake.
pub trait FrameSource {
    /// The next access unit; an IDR (with SPS/PPS) if `keyframe`.
    fn next(&mut self, keyframe: bool) -> (bool, Vec<u8>);
}

/// Access units with the right NAL unit types and made-up contents; enough for routing tests.
pub struct FakeFrames {
    counter: u32,
}

impl FakeFrames {
    pub fn new() -> Self {
        FakeFrames { counter: 0 }
    }
}

impl FrameSource for FakeFrames {
    fn next(&mut self, keyframe: bool) -> (bool, Vec<u8>) {
        self.counter += 1;
        // Contents never hold a zero byte, so they never fake a start code.
        let fill = |len: usize, seed: u32| -> Vec<u8> {
            (0..len)
                .map(|i| ((i as u32 * 7 + seed) % 255 + 1) as u8)
                .collect()
        };
        let mut au = Vec::new();
        if keyframe {
            au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
            au.extend(fill(4000, self.counter));
        } else {
            au.extend_from_slice(&[0, 0, 0, 1, 0x41]);
            au.extend(fill(700, self.counter));
        }
        (keyframe, au)
    }
}

pub struct Client {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    /// UDP, or ICE-TCP: the client's candidate is an active TCP one, and everything between
    /// it and the broadcast is a packet on one TCP connection (framing left out here).
    pub transport: Transport,
    pub id: ViewerId,
    pub mid: Mid,
    pub online: bool,
    pub timeout: Instant,
    pub connected_at: Option<Instant>,
    /// The broadcast closed the session (DTLS close_notify).
    pub closed: bool,
    /// Whether the broadcast should take everything this client sends.
    pub routed: bool,
    pub frames: Vec<(Instant, MediaData)>,
    /// What a decoder would make of `frames`.
    pub playback: Playback,
    /// Send a PLI when a picture is lost, as a browser does.
    pub sends_pli: bool,
    /// PLIs sent because a picture was lost.
    pub plis: usize,
    pli_due: bool,
    /// The network between the broadcast and this client; `None` is a perfect one.
    pub link: Option<Link>,
    /// str0m's latest receive statistics (NACKs and PLIs sent, loss), once a second.
    pub ingress: Option<MediaIngressStats>,
}

/// A decoder's view of the frames a client received: a frame can be shown if it is an IDR, or
/// if it follows a frame that could, with nothing missing in between.
#[derive(Debug, Default)]
pub struct Playback {
    intact: bool,
    last_pli: Option<Instant>,
    /// The receive time of every frame that can be shown.
    pub shown: Vec<Instant>,
    /// Where those frames are in the client's `frames`.
    pub shown_frames: Vec<usize>,
    /// Frames that arrived while the picture was broken (after a gap, before the next IDR).
    pub broken: usize,
}

/// A browser asks again for a keyframe after this long if the picture is still broken.
const PLI_REPEAT: Duration = Duration::from_millis(500);

/// A browser whose picture has not moved for this long asks for a keyframe.
const STALL: Duration = Duration::from_secs(1);

impl Playback {
    /// Takes the next frame; `true` if a PLI should go out now.
    fn take(&mut self, now: Instant, index: usize, data: &MediaData) -> bool {
        self.intact = h264::is_keyframe(&data.data) || (self.intact && data.contiguous);
        if self.intact {
            self.shown.push(now);
            self.shown_frames.push(index);
            return false;
        }
        self.broken += 1;
        let due = self.last_pli.is_none_or(|last| now >= last + PLI_REPEAT);
        if due {
            self.last_pli = Some(now);
        }
        due
    }

    /// Whether the picture, once it has started, has stood still for [`STALL`], so a browser
    /// would ask for a keyframe now; like [`Playback::take`], at most every [`PLI_REPEAT`].
    fn stalled(&mut self, now: Instant) -> bool {
        let Some(&last) = self.shown.last() else {
            return false;
        };
        let due = now >= last + STALL && self.last_pli.is_none_or(|t| now >= t + PLI_REPEAT);
        if due {
            self.last_pli = Some(now);
        }
        due
    }

    /// Frames shown in `[from, to)`.
    pub fn shown_between(&self, from: Instant, to: Instant) -> usize {
        self.shown.iter().filter(|&&t| t >= from && t < to).count()
    }
}

/// A network path, one `str0m-netem` each way, with what went in and what came out.
pub struct Link {
    down: Netem<Datagram>,
    up: Netem<Datagram>,
    /// Datagrams the broadcast sent this client.
    pub down_sent: u64,
    /// Distinct datagrams that reached the client (duplicates count once).
    pub down_delivered: HashSet<u64>,
    /// Datagrams the client sent the broadcast.
    pub up_sent: u64,
    pub up_delivered: HashSet<u64>,
}

impl Link {
    pub fn new(down: NetemConfig, up: NetemConfig) -> Self {
        Link {
            down: Netem::new(down),
            up: Netem::new(up),
            down_sent: 0,
            down_delivered: HashSet::new(),
            up_sent: 0,
            up_delivered: HashSet::new(),
        }
    }

    /// Datagrams to the client that the link dropped.
    pub fn down_lost(&self) -> u64 {
        self.down_sent - self.down_delivered.len() as u64
    }

    pub fn up_lost(&self) -> u64 {
        self.up_sent - self.up_delivered.len() as u64
    }

    fn next_timeout(&self) -> Instant {
        self.down.poll_timeout().min(self.up.poll_timeout())
    }
}

#[derive(Clone)]
struct Datagram {
    /// Numbers every datagram, so duplicates can be told from originals.
    serial: u64,
    transport: Transport,
    source: SocketAddr,
    destination: SocketAddr,
    contents: Vec<u8>,
}

impl AsRef<[u8]> for Datagram {
    fn as_ref(&self) -> &[u8] {
        &self.contents
    }
}

pub struct Sim {
    pub now: Instant,
    pub broadcast: Broadcast,
    pub clients: Vec<Client>,
    pub events: Vec<(Instant, BroadcastEvent)>,
    /// Every access unit handed to `handle_frame`, with its send time.
    pub sent: Vec<(Instant, bool, Vec<u8>)>,
    broadcast_timeout: Instant,
    to_clients: VecDeque<Datagram>,
    serial: u64,
    /// Events up to here have been looked at for keyframe requests.
    seen_events: usize,
    keyframe_wanted: bool,
    /// Keyframes come only every `gop` frames, whatever the broadcast asks: a source passed
    /// through.
    pub ignore_keyframe_requests: bool,
}

impl Sim {
    pub fn new(config: BroadcastConfig) -> Self {
        let now = Instant::now();
        Sim {
            now,
            broadcast: Broadcast::new(now, config),
            clients: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            broadcast_timeout: now,
            to_clients: VecDeque::new(),
            serial: 0,
            seen_events: 0,
            keyframe_wanted: false,
            ignore_keyframe_requests: false,
        }
    }

    /// A receive-only client like a browser's WHEP player, with `codecs` applied to its
    /// config; returns its index in `clients`.
    pub fn add_client(&mut self) -> usize {
        self.try_add_client(|config| config)
            .expect("the broadcast accepts a browser-like offer")
    }

    pub fn try_add_client(
        &mut self,
        codecs: impl FnOnce(RtcConfig) -> RtcConfig,
    ) -> Result<usize, RtcError> {
        self.try_add_client_over(Transport::Udp, codecs)
    }

    /// [`try_add_client`](Self::try_add_client) for a client that reaches the broadcast over
    /// `transport`.
    pub fn try_add_client_over(
        &mut self,
        transport: Transport,
        codecs: impl FnOnce(RtcConfig) -> RtcConfig,
    ) -> Result<usize, RtcError> {
        let index = self.clients.len();
        let addr: SocketAddr = (Ipv4Addr::new(10, 0, 0, 10 + index as u8), 5000).into();
        let (mut rtc, mid, offer) = client_offer_over(self.now, transport, addr, codecs);
        let (id, answer) = self
            .broadcast
            .handle_offer(self.now, &offer.0.to_sdp_string())?;
        let answer = SdpAnswer::from_sdp_string(&answer).expect("our answer parses");
        rtc.sdp_api()
            .accept_answer(offer.1, answer)
            .expect("the client accepts our answer");
        self.clients.push(Client {
            rtc,
            addr,
            transport,
            id,
            mid,
            online: true,
            timeout: self.now,
            connected_at: None,
            closed: false,
            routed: true,
            frames: Vec::new(),
            playback: Playback::default(),
            sends_pli: false,
            plis: 0,
            pli_due: false,
            link: None,
            ingress: None,
        });
        self.drain_client(index);
        self.settle();
        Ok(index)
    }

    /// Puts client `index` behind `link`, from now on, and makes it ask for keyframes when a
    /// picture is lost, as a browser does.
    pub fn set_link(&mut self, index: usize, link: Link) {
        self.clients[index].link = Some(link);
        self.clients[index].sends_pli = true;
    }

    /// Lets time run to `target` without video.
    pub fn run_until(&mut self, target: Instant) {
        loop {
            self.settle();
            if self.now >= target {
                break;
            }
            let mut next = target.min(self.broadcast_timeout);
            for client in self.clients.iter().filter(|c| c.online) {
                next = next.min(client.timeout);
                if let Some(link) = &client.link {
                    next = next.min(link.next_timeout());
                }
            }
            self.now = next.max(self.now + Duration::from_millis(1)).min(target);
            if self.broadcast_timeout <= self.now {
                self.broadcast.handle_timeout(self.now);
                self.drain_broadcast();
            }
            for index in 0..self.clients.len() {
                let client = &mut self.clients[index];
                if client.online && client.timeout <= self.now {
                    client
                        .rtc
                        .handle_input(Input::Timeout(self.now))
                        .expect("client timeout");
                    self.drain_client(index);
                }
            }
        }
    }

    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Runs until every online client is connected, or panics after 5 s.
    pub fn connect_all(&mut self) {
        let deadline = self.now + Duration::from_secs(5);
        while self
            .clients
            .iter()
            .any(|c| c.online && c.connected_at.is_none())
        {
            assert!(self.now < deadline, "clients did not connect within 5 s");
            self.run_for(Duration::from_millis(10));
        }
    }

    /// Streams video for `duration` at 30 fps. A keyframe goes out every `gop` frames (never
    /// if `None`) and whenever the broadcast asked for one since the last frame, as a driver
    /// with a real encoder would do.
    pub fn stream(&mut self, frames: &mut dyn FrameSource, duration: Duration, gop: Option<u32>) {
        let end = self.now + duration;
        while self.now + FRAME <= end {
            self.run_for(FRAME);
            self.send_frame(frames, gop);
        }
        self.run_until(end);
    }

    pub fn send_frame(&mut self, frames: &mut dyn FrameSource, gop: Option<u32>) {
        self.note_keyframe_requests();
        let periodic = gop.is_some_and(|gop| self.sent.len().is_multiple_of(gop as usize));
        let asked = self.keyframe_wanted && !self.ignore_keyframe_requests;
        let (keyframe, data) = frames.next(asked || periodic);
        self.keyframe_wanted = false;
        let unit = access_unit(self.now, self.sent.len() as u64, keyframe, &data);
        self.broadcast.handle_frame(self.now, &unit);
        self.sent.push((self.now, keyframe, data));
        self.drain_broadcast();
        self.settle();
    }

    /// Hands `unit` (of any codec) to the broadcast as it is, and lets everything settle.
    pub fn send_unit(&mut self, unit: &AccessUnit) {
        self.broadcast.handle_frame(self.now, unit);
        self.drain_broadcast();
        self.settle();
    }

    /// Sends a PLI from client `index`.
    pub fn send_pli(&mut self, index: usize) {
        let client = &mut self.clients[index];
        let mut writer = client
            .rtc
            .writer(client.mid)
            .expect("the client's video m-line");
        assert!(writer.is_request_keyframe_possible(KeyframeRequestKind::Pli));
        writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .expect("a PLI");
        self.drain_client(index);
        self.settle();
    }

    /// Client `index` hangs up properly.
    pub fn close(&mut self, index: usize) {
        self.clients[index].routed = false;
        self.clients[index].rtc.close().expect("a close");
        self.drain_client(index);
        self.settle();
    }

    /// Client `index` vanishes without a word.
    pub fn vanish(&mut self, index: usize) {
        self.clients[index].online = false;
    }

    pub fn keyframe_requests(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter(|(_, e)| *e == BroadcastEvent::KeyframeNeeded(Codec::H264))
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn event_time(&self, wanted: &BroadcastEvent) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, e)| e == wanted)
            .map(|(t, _)| *t)
    }

    fn note_keyframe_requests(&mut self) {
        let new = &self.events[self.seen_events..];
        self.keyframe_wanted |= new
            .iter()
            .any(|(_, e)| *e == BroadcastEvent::KeyframeNeeded(Codec::H264));
        self.seen_events = self.events.len();
    }

    /// Delivers datagrams until the network is quiet (apart from what links hold back).
    fn settle(&mut self) {
        loop {
            self.drain_broadcast();
            let mut progress = false;
            while let Some(datagram) = self.to_clients.pop_front() {
                progress = true;
                let Some(index) = self
                    .clients
                    .iter()
                    .position(|c| c.addr == datagram.destination && c.online)
                else {
                    continue;
                };
                match &mut self.clients[index].link {
                    Some(link) => {
                        link.down_sent += 1;
                        link.down
                            .handle_input(str0m_netem::Input::Packet(self.now, datagram));
                    }
                    None => self.deliver(index, datagram),
                }
            }
            for index in 0..self.clients.len() {
                progress |= self.release(index);
            }
            if !progress {
                break;
            }
        }
    }

    /// Passes on what client `index`'s link lets through by now, both ways, and the PLI its
    /// playback asked for; `true` if anything happened.
    fn release(&mut self, index: usize) -> bool {
        let now = self.now;
        let client = &mut self.clients[index];
        if !client.online {
            return false;
        }
        let mut down = Vec::new();
        let mut up = Vec::new();
        if let Some(link) = &mut client.link {
            for (netem, out) in [(&mut link.down, &mut down), (&mut link.up, &mut up)] {
                netem.handle_input(str0m_netem::Input::Timeout(now));
                while let Some(output) = netem.poll_output() {
                    if let str0m_netem::Output::Packet(datagram) = output {
                        out.push(datagram);
                    }
                }
            }
            link.down_delivered
                .extend(down.iter().map(|d: &Datagram| d.serial));
            link.up_delivered
                .extend(up.iter().map(|d: &Datagram| d.serial));
        }
        if client.sends_pli {
            client.pli_due |= client.playback.stalled(now);
        }
        let pli = std::mem::take(&mut client.pli_due);
        let progress = pli || !down.is_empty() || !up.is_empty();
        for datagram in up {
            self.pass_to_broadcast(index, datagram);
        }
        for datagram in down {
            self.deliver(index, datagram);
        }
        if pli {
            let client = &mut self.clients[index];
            client.plis += 1;
            let mut writer = client
                .rtc
                .writer(client.mid)
                .expect("the client's video m-line");
            writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .expect("a PLI");
            self.drain_client(index);
        }
        progress
    }

    fn deliver(&mut self, index: usize, datagram: Datagram) {
        assert_eq!(
            datagram.transport, self.clients[index].transport,
            "the broadcast answers over the client's transport"
        );
        let protocol = match datagram.transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let receive = Receive::new(
            protocol,
            datagram.source,
            datagram.destination,
            &datagram.contents,
        )
        .expect("the broadcast sends parseable datagrams");
        self.clients[index]
            .rtc
            .handle_input(Input::Receive(self.now, receive))
            .expect("client input");
        self.drain_client(index);
    }

    fn pass_to_broadcast(&mut self, index: usize, datagram: Datagram) {
        let accepted = self.broadcast.handle_receive_over(
            self.now,
            datagram.transport,
            datagram.source,
            datagram.destination,
            &datagram.contents,
        );
        assert!(
            accepted || !self.clients[index].routed,
            "the broadcast routes every client datagram"
        );
        self.drain_broadcast();
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn drain_broadcast(&mut self) {
        loop {
            match self.broadcast.poll_output() {
                Output::Transmit {
                    transport,
                    source,
                    destination,
                    contents,
                } => {
                    assert_eq!(source, server_addr());
                    let serial = self.next_serial();
                    self.to_clients.push_back(Datagram {
                        serial,
                        transport,
                        source,
                        destination,
                        contents,
                    });
                }
                Output::Event(event) => self.events.push((self.now, event)),
                Output::Timeout(timeout) => {
                    self.broadcast_timeout = timeout;
                    break;
                }
            }
        }
    }

    /// Drains client `index`; what it sends goes straight into the broadcast.
    fn drain_client(&mut self, index: usize) {
        loop {
            let serial = self.next_serial();
            let client = &mut self.clients[index];
            match client.rtc.poll_output().expect("client output") {
                str0m::Output::Transmit(transmit) => {
                    if !client.online {
                        continue;
                    }
                    let datagram = Datagram {
                        serial,
                        transport: client.transport,
                        source: transmit.source,
                        destination: transmit.destination,
                        contents: transmit.contents.into(),
                    };
                    match &mut client.link {
                        Some(link) => {
                            link.up_sent += 1;
                            link.up
                                .handle_input(str0m_netem::Input::Packet(self.now, datagram));
                        }
                        None => self.pass_to_broadcast(index, datagram),
                    }
                }
                str0m::Output::Event(Event::Connected) => client.connected_at = Some(self.now),
                str0m::Output::Event(Event::MediaData(data)) => {
                    client.pli_due |= client.playback.take(self.now, client.frames.len(), &data)
                        && client.sends_pli;
                    client.frames.push((self.now, data))
                }
                str0m::Output::Event(Event::Closed) => client.closed = true,
                str0m::Output::Event(Event::MediaIngressStats(stats)) => {
                    client.ingress = Some(stats)
                }
                str0m::Output::Event(_) => {}
                str0m::Output::Timeout(timeout) => {
                    client.timeout = timeout;
                    break;
                }
            }
        }
    }
}

/// An H.264 access unit captured at `now`, as a driver hands it to the broadcast.
pub fn access_unit(now: Instant, counter: u64, keyframe: bool, data: &[u8]) -> AccessUnit {
    let time = CaptureTime {
        wall_us: 1_700_000_000_000_000 + counter * 33_333,
        instant: now,
    };
    AccessUnit::h264(data.to_vec(), keyframe, counter, time)
}

/// A browser-like receive-only offer from a str0m peer at `addr`.
pub fn client_offer(
    now: Instant,
    addr: SocketAddr,
    codecs: impl FnOnce(RtcConfig) -> RtcConfig,
) -> (
    Rtc,
    Mid,
    (str0m::change::SdpOffer, str0m::change::SdpPendingOffer),
) {
    client_offer_over(now, Transport::Udp, addr, codecs)
}

/// [`client_offer`] with a candidate of `transport`: over TCP an active one, as browsers
/// gather them.
pub fn client_offer_over(
    now: Instant,
    transport: Transport,
    addr: SocketAddr,
    codecs: impl FnOnce(RtcConfig) -> RtcConfig,
) -> (
    Rtc,
    Mid,
    (str0m::change::SdpOffer, str0m::change::SdpPendingOffer),
) {
    let config = Rtc::builder().set_stats_interval(Some(Duration::from_secs(1)));
    let mut rtc = codecs(config).build(now);
    let candidate = match transport {
        Transport::Udp => Candidate::host(addr, "udp"),
        Transport::Tcp => Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(TcpType::Active)
            .build(),
    };
    rtc.add_local_candidate(candidate.expect("a host candidate"));
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let offer = change.apply().expect("an offer");
    (rtc, mid, offer)
}

/// The NAL units of an Annex B access unit, without start codes: what was sent and what
/// arrived compare equal when every NAL unit came through intact.
pub fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    h264::nal_units(au).collect()
}
