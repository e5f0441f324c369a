//! [`Broadcast`]: one encoded stream, many str0m sessions.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Rtc};
use tracing::{debug, info, warn};

use crate::codec;
use crate::health::{self, Health};
use crate::keyframe::KeyframeLimiter;
use crate::offer::{self, Summary};
use crate::packetize::{self, Packet};
use crate::stun;
use crate::{BroadcastConfig, RtcError};

/// Identifies one viewer (one browser session) of a [`Broadcast`].
///
/// Ids are never reused within one `Broadcast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewerId(u64);

impl ViewerId {
    /// The number behind the id, for logs, metrics and URLs.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with this number, as [`ViewerId::get`] gave it (from a URL, say). An id that
    /// no viewer has is harmless: [`Broadcast::remove_viewer`] answers `false` for it.
    pub fn from_raw(number: u64) -> ViewerId {
        ViewerId(number)
    }
}

impl fmt::Display for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "viewer-{}", self.0)
    }
}

/// What [`Broadcast::poll_output`] hands the driver.
#[derive(Debug)]
pub enum Output {
    /// Send `contents` from the local address `source` to `destination`.
    Transmit {
        /// One of the configured host candidates.
        source: SocketAddr,
        /// The viewer's address.
        destination: SocketAddr,
        /// One UDP datagram.
        contents: Vec<u8>,
    },
    /// Something the driver should know about.
    Event(BroadcastEvent),
    /// Nothing more is pending: call [`Broadcast::handle_timeout`] at this instant at the
    /// latest, or earlier when a datagram, a frame or an offer arrives.
    Timeout(Instant),
}

/// Events of a [`Broadcast`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BroadcastEvent {
    /// ICE and DTLS are up; the viewer gets video from the next keyframe on.
    ViewerConnected(ViewerId),
    /// The viewer is gone and its id is forgotten. Every id that
    /// [`Broadcast::handle_offer`] returned ends with exactly one of these.
    ViewerDisconnected(ViewerId, DisconnectReason),
    /// Ask the encoder for an IDR: a viewer has joined, or one lost pictures (PLI/FIR).
    ///
    /// Requests are coalesced and rate limited (see [`BroadcastConfig::keyframe_interval`]),
    /// so the driver can pass each one straight on to the encoder.
    KeyframeNeeded,
}

/// Why a viewer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// [`Broadcast::remove_viewer`] was called.
    Removed,
    /// Nothing arrived from the viewer for [`BroadcastConfig::ice_timeout`], or ICE gave up
    /// on every candidate pair.
    IceTimeout,
    /// The viewer closed the connection (DTLS close_notify).
    Closed,
    /// str0m reported an error for this session; the log has details.
    Failed,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DisconnectReason::Removed => "removed",
            DisconnectReason::IceTimeout => "ICE timed out",
            DisconnectReason::Closed => "closed by the viewer",
            DisconnectReason::Failed => "failed",
        })
    }
}

/// A Sans-IO WebRTC broadcast of one H.264 stream to many browsers.
///
/// See the [crate documentation](crate) for the model and the order of calls.
pub struct Broadcast {
    config: BroadcastConfig,
    viewers: HashMap<ViewerId, Viewer>,
    /// Routing of datagrams by the viewer's address, learned from its first STUN request.
    by_addr: HashMap<SocketAddr, ViewerId>,
    /// Routing of STUN requests by the local ICE ufrag we gave each viewer.
    by_ufrag: HashMap<String, ViewerId>,
    next_id: u64,
    /// The capture instant that maps to RTP time 0.
    epoch: Option<Instant>,
    /// The frames since the last keyframe, when [`BroadcastConfig::gop_cache`] is on.
    gop: GopCache,
    out: Pending,
}

/// The most frames a GOP cache holds (see [`BroadcastConfig::gop_cache`]): 16 s at 30 fps.
/// str0m takes at most 512 frames written between two polls.
pub const GOP_CACHE_MAX_FRAMES: usize = 480;

/// The most bytes a GOP cache holds (see [`BroadcastConfig::gop_cache`]).
pub const GOP_CACHE_MAX_BYTES: usize = 24 << 20;

/// The frames from the last keyframe on, each with its capture instant, RTP time and
/// payloads.
#[derive(Default)]
struct GopCache {
    frames: Vec<(Instant, MediaTime, Arc<[Packet]>)>,
    bytes: usize,
    /// The GOP outgrew the limits: nothing is cached until the next keyframe.
    overflowed: bool,
}

impl GopCache {
    fn add(&mut self, capture: Instant, rtp_time: MediaTime, keyframe: bool, data: Arc<[Packet]>) {
        if keyframe {
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.frames.is_empty() || self.overflowed {
            return;
        }
        let size: usize = data.iter().map(|packet| packet.payload.len()).sum();
        if self.frames.len() >= GOP_CACHE_MAX_FRAMES || self.bytes + size > GOP_CACHE_MAX_BYTES {
            warn!(
                frames = self.frames.len(),
                bytes = self.bytes,
                "the keyframe interval is too long for the GOP cache; new viewers wait for the \
                 next keyframe"
            );
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += size;
        self.frames.push((capture, rtp_time, data));
    }
}

/// Everything output-related, apart from the viewers so both can be borrowed at once.
struct Pending {
    /// The latest `now` the driver has told us.
    now: Instant,
    events: VecDeque<BroadcastEvent>,
    /// Viewers whose `Rtc` was mutated and must be drained before anything else happens to
    /// them (str0m's single-mutation invariant).
    dirty: VecDeque<ViewerId>,
    /// Datagrams drained early because the driver mutated again before polling; normally empty.
    transmits: VecDeque<str0m::net::Transmit>,
    keyframes: KeyframeLimiter,
    /// [`BroadcastConfig::gop_cache`].
    gop_cache: bool,
}

struct Viewer {
    rtc: Rtc,
    state: State,
    /// The video m-line and the H.264 payload type chosen for it.
    media: (Mid, Pt),
    /// The extended RTP sequence number of the next packet.
    next_seq: u64,
    ufrag: String,
    /// Remote addresses that route to this viewer.
    addrs: Vec<SocketAddr>,
    /// str0m's next timeout, valid while `dirty` is false.
    timeout: Instant,
    last_receive: Instant,
    dirty: bool,
    /// Set when we decided to drop the viewer; it goes once drained.
    leaving: Option<DisconnectReason>,
    /// Connected, with the GOP cache to be sent once drained.
    gop_pending: bool,
    /// Whether it keeps up, or skips to the next keyframe.
    health: Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for ICE and DTLS.
    Connecting,
    /// Connected; waiting for a keyframe to start on.
    WaitingKeyframe,
    /// Getting every frame.
    Streaming,
    /// [`Broadcast::remove_viewer`] started a close; draining the close_notify.
    Closing,
}

/// The result of polling one viewer once.
enum Step {
    Transmit(str0m::net::Transmit),
    Again,
    Drained,
}

impl Broadcast {
    /// An empty broadcast; `now` is the current time, as in every other call.
    ///
    /// No I/O happens here or anywhere else in this crate.
    pub fn new(now: Instant, config: BroadcastConfig) -> Self {
        let keyframes = KeyframeLimiter::new(config.keyframe_interval, config.keyframe_retry);
        Broadcast {
            out: Pending {
                now,
                events: VecDeque::new(),
                dirty: VecDeque::new(),
                transmits: VecDeque::new(),
                keyframes,
                gop_cache: config.gop_cache,
            },
            config,
            viewers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            next_id: 1,
            epoch: None,
            gop: GopCache::default(),
        }
    }

    /// Accepts a browser's SDP offer (receive-only video, as from WHEP) and returns the new
    /// viewer's id and the SDP answer to send back.
    ///
    /// The answer carries H.264 packetization-mode 1 in constrained baseline
    /// (`profile-level-id=42e01f`, or baseline if that is all the browser offers), the
    /// configured host candidates, and DTLS-SRTP. The viewer then connects on its own
    /// through [`handle_receive`](Self::handle_receive).
    pub fn handle_offer(
        &mut self,
        now: Instant,
        offer_sdp: &str,
    ) -> Result<(ViewerId, String), RtcError> {
        self.out.now = now;
        if let Some(max) = self.config.max_viewers {
            if self.viewer_count() >= max {
                return Err(RtcError::ViewerLimit { max });
            }
        }
        if self.config.host_candidates.is_empty() {
            return Err(RtcError::NoCandidates);
        }
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| RtcError::MalformedSdp {
            source: tidy_parse_error(&e.to_string()).into(),
        })?;
        let summary = Summary::of(offer_sdp);
        if let Some(setup) = summary.fixed_setup {
            return Err(RtcError::NotAnOffer {
                setup: setup.to_owned(),
            });
        }
        if !summary.video {
            return Err(RtcError::NoVideo);
        }
        if !summary.h264 {
            return Err(RtcError::NoH264);
        }

        // Our ufrag routes the viewer's STUN requests to it, so it must be unique here.
        let creds = loop {
            let creds = IceCreds::new();
            if !self.by_ufrag.contains_key(&creds.ufrag) {
                break creds;
            }
        };
        let ufrag = creds.ufrag.clone();
        // RTP mode: every viewer gets the payloads packetized once for all (see `packetize`).
        // The only header extension is the MID that BUNDLE needs: nothing here estimates
        // bandwidth, so transport-wide congestion feedback (a datagram from every viewer
        // every few tens of milliseconds) and send times would be work for nothing.
        let mut rtc = codec::configure(Rtc::builder(), self.config.h264_profile)
            .clear_extension_map()
            .set_extension(MID_EXTENSION_ID, Extension::RtpMid)
            .set_rtp_mode(true)
            .set_ice_lite(self.config.ice_lite)
            .set_stats_interval(Some(health::STATS_INTERVAL))
            .set_local_ice_credentials(creds)
            .build(now);
        for &addr in &self.config.host_candidates {
            let candidate =
                Candidate::host(addr, "udp").map_err(|e| RtcError::InvalidCandidate {
                    addr,
                    source: Box::new(e),
                })?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| RtcError::Negotiation {
                source: Box::new(e),
            })?;

        // str0m names the negotiated media only once connected (`MediaAdded`), but an offer
        // we cannot serve should fail now, so look the video m-line up in our answer.
        let answer = answer.to_sdp_string();
        let Some(media) = offer::video_mids(&answer)
            .into_iter()
            .find_map(|mid| h264_media(&mut rtc, Mid::from(mid), self.config.h264_profile))
        else {
            return Err(match self.config.h264_profile {
                Some(profile_level_id)
                    if !codec::is_constrained_baseline(Some(profile_level_id)) =>
                {
                    RtcError::ProfileNotOffered { profile_level_id }
                }
                _ => RtcError::NoH264,
            });
        };
        // str0m drops every queued retransmission once they are 15% of the last second's bytes.
        // A browser asks again for a packet until it comes, so at a low bitrate a few losses
        // cross that line, the answers are dropped, and the picture freezes. Retransmissions
        // only load this viewer's own path, so allow them up to half of it.
        new_resend_cache(&mut rtc, media.0);
        let id = ViewerId(self.next_id);
        let mut viewer = Viewer {
            rtc,
            state: State::Connecting,
            media,
            next_seq: first_sequence_number(),
            ufrag,
            addrs: Vec::new(),
            timeout: now,
            last_receive: now,
            dirty: true,
            leaving: None,
            gop_pending: false,
            health: Health::default(),
        };
        // Negotiating was a mutation; str0m wants it drained before the next one.
        let queued = self.out.transmits.len();
        flush(id, &mut viewer, &mut self.out);
        if viewer.leaving.is_some() {
            self.out.transmits.truncate(queued);
            return Err(RtcError::Negotiation {
                source: "str0m failed right after negotiating; see the log".into(),
            });
        }
        self.next_id += 1;
        self.by_ufrag.insert(viewer.ufrag.clone(), id);
        self.viewers.insert(id, viewer);
        info!(%id, viewers = self.viewers.len(), "offer accepted");
        Ok((id, answer))
    }

    /// Feeds one UDP datagram that arrived on a local socket at `destination` from `source`.
    ///
    /// Returns `false` if it belongs to no viewer (stray traffic, or a viewer that is gone);
    /// the driver can ignore it. Datagrams are routed by the sender's address once it is
    /// known, before that by the ICE username in STUN requests.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        self.out.now = now;
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, datagram) else {
            return false;
        };
        let input = Input::Receive(now, receive);
        let Some(id) = self.route(source, datagram, &input) else {
            debug!(%source, len = datagram.len(), "datagram for no viewer");
            return false;
        };
        let Some(viewer) = self.viewers.get_mut(&id) else {
            return false;
        };
        if viewer.dirty {
            flush(id, viewer, &mut self.out);
        }
        viewer.last_receive = now;
        if let Err(e) = viewer.rtc.handle_input(input) {
            warn!(%id, error = %e, "str0m rejected a datagram; dropping the viewer");
            viewer.rtc.disconnect();
            viewer.leaving.get_or_insert(DisconnectReason::Failed);
        }
        if !viewer.addrs.contains(&source) {
            viewer.addrs.push(source);
            self.by_addr.insert(source, id);
        }
        mark_dirty(id, viewer, &mut self.out.dirty);
        true
    }

    /// Sends one encoded access unit to every viewer that can take it.
    ///
    /// `data` is Annex B H.264 with SPS and PPS in front of every IDR; `keyframe` says it is
    /// one. `capture` is the frame's capture time: the first frame's becomes RTP time 0 and
    /// the rest follow on the 90 kHz clock, so pass a steady clock here. Viewers that are
    /// still connecting get nothing, and a viewer that has just connected gets nothing until
    /// the next keyframe, so no decoder ever starts on a P frame.
    ///
    /// The payload is copied once into a shared buffer, not once per viewer.
    pub fn handle_frame(&mut self, now: Instant, capture: Instant, keyframe: bool, data: &[u8]) {
        self.out.now = now;
        if keyframe {
            self.out.keyframes.keyframe_written();
        }
        let epoch = *self.epoch.get_or_insert(capture);
        let rtp_time = media_time(capture.saturating_duration_since(epoch));
        // Packetized once, when the first viewer wants the frame, and shared by all.
        let mut packets: Option<Arc<[Packet]>> = None;
        for (&id, viewer) in &mut self.viewers {
            if viewer.leaving.is_some() || viewer.state == State::Closing {
                continue;
            }
            if viewer.dirty {
                // Draining may connect the viewer and send it the GOP cache, before this frame.
                flush(id, viewer, &mut self.out);
                send_gop(id, viewer, &self.gop, &mut self.out);
            }
            let wanted = match viewer.state {
                State::Streaming => viewer.health.wants(id, keyframe, now),
                State::WaitingKeyframe => keyframe,
                State::Connecting | State::Closing => false,
            };
            if !wanted || viewer.leaving.is_some() || !viewer.rtc.is_alive() {
                continue;
            }
            let packets = packets.get_or_insert_with(|| packetize_frame(data));
            if write_frame(viewer, capture, rtp_time, packets) {
                if viewer.state == State::WaitingKeyframe {
                    debug!(%id, "first keyframe written");
                    viewer.state = State::Streaming;
                }
                // Timestamps the queued packets so the next drain sends them at once.
                send_now(id, viewer, now);
            }
            mark_dirty(id, viewer, &mut self.out.dirty);
        }
        if self.config.gop_cache {
            let packets = packets.unwrap_or_else(|| packetize_frame(data));
            self.gop.add(capture, rtp_time, keyframe, packets);
        }
    }

    /// Lets time pass: str0m's timers, keyframe request slots and ICE timeouts.
    ///
    /// Call it when the last [`Output::Timeout`] has passed. Calling it early does no harm.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.out.now = now;
        if self.out.keyframes.poll(now) {
            self.out.events.push_back(BroadcastEvent::KeyframeNeeded);
        }
        let mut waiting = false;
        for (&id, viewer) in &mut self.viewers {
            waiting |= viewer.state == State::WaitingKeyframe;
            if now >= later(viewer.last_receive, self.config.ice_timeout) {
                if viewer.leaving.is_none() {
                    info!(%id, "nothing heard for the ICE timeout; dropping the viewer");
                }
                viewer.rtc.disconnect();
                viewer.leaving.get_or_insert(DisconnectReason::IceTimeout);
                mark_dirty(id, viewer, &mut self.out.dirty);
                continue;
            }
            // A dirty viewer is drained (and gets a fresh timeout) before its next input.
            if viewer.dirty || now < viewer.timeout {
                continue;
            }
            if let Err(e) = viewer.rtc.handle_input(Input::Timeout(now)) {
                warn!(%id, error = %e, "str0m failed on a timeout; dropping the viewer");
                viewer.rtc.disconnect();
                viewer.leaving.get_or_insert(DisconnectReason::Failed);
            }
            mark_dirty(id, viewer, &mut self.out.dirty);
        }
        // A viewer still waiting for its first keyframe asks again once the last request
        // has had `keyframe_retry` to arrive; the encoder may have missed it.
        if waiting && self.out.keyframes.request(now, true) {
            self.out.events.push_back(BroadcastEvent::KeyframeNeeded);
        }
    }

    /// Disconnects a viewer (for example on a WHEP `DELETE`), telling its browser with a DTLS
    /// close_notify. Returns `false` if there is no such viewer (any more).
    ///
    /// [`BroadcastEvent::ViewerDisconnected`] with [`DisconnectReason::Removed`] follows.
    pub fn remove_viewer(&mut self, id: ViewerId) -> bool {
        let Some(viewer) = self.viewers.get_mut(&id) else {
            return false;
        };
        if viewer.state == State::Closing {
            return false;
        }
        if viewer.dirty {
            flush(id, viewer, &mut self.out);
        }
        let reason = *viewer.leaving.get_or_insert(DisconnectReason::Removed);
        viewer.state = State::Closing;
        if let Err(e) = viewer.rtc.close() {
            debug!(%id, error = %e, "closing failed; disconnecting at once");
            viewer.rtc.disconnect();
        }
        mark_dirty(id, viewer, &mut self.out.dirty);
        self.out
            .events
            .push_back(BroadcastEvent::ViewerDisconnected(id, reason));
        info!(%id, "viewer removed");
        true
    }

    /// Viewers that have an answer and are not leaving, connected or not.
    pub fn viewer_ids(&self) -> Vec<ViewerId> {
        self.viewers.keys().copied().collect()
    }

    /// How many viewers there are, connected or still connecting.
    pub fn viewer_count(&self) -> usize {
        self.viewers
            .values()
            .filter(|viewer| viewer.state != State::Closing && viewer.leaving.is_none())
            .count()
    }

    /// The next thing to do: send a datagram, look at an event, or wait until a deadline.
    ///
    /// Call it until it returns [`Output::Timeout`] after every `handle_*` call.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(transmit) = self.out.transmits.pop_front() {
                return transmit_output(transmit);
            }
            if let Some(event) = self.out.events.pop_front() {
                return Output::Event(event);
            }
            let Some(&id) = self.out.dirty.front() else {
                break;
            };
            let Some(viewer) = self.viewers.get_mut(&id) else {
                self.out.dirty.pop_front();
                continue;
            };
            if !viewer.dirty {
                // A stale entry: the viewer was drained early and is clean.
                self.out.dirty.pop_front();
                continue;
            }
            match poll_viewer(id, viewer, &mut self.out) {
                Step::Transmit(transmit) => return transmit_output(transmit),
                Step::Again => {}
                Step::Drained => {
                    self.out.dirty.pop_front();
                    if viewer.leaving.is_some() || !viewer.rtc.is_alive() {
                        self.drop_viewer(id);
                    } else if viewer.gop_pending {
                        send_gop(id, viewer, &self.gop, &mut self.out);
                    }
                }
            }
        }
        Output::Timeout(self.next_timeout())
    }

    fn route(&self, source: SocketAddr, datagram: &[u8], input: &Input<'_>) -> Option<ViewerId> {
        if let Some(&id) = self.by_addr.get(&source) {
            return Some(id);
        }
        if let Some(ufrag) = stun::local_ufrag(datagram) {
            let ufrag = std::str::from_utf8(ufrag).ok()?;
            return self.by_ufrag.get(ufrag).copied();
        }
        // Rare: non-STUN traffic from an address no STUN request came from yet.
        self.viewers
            .iter()
            .find(|(_, viewer)| viewer.rtc.accepts(input))
            .map(|(&id, _)| id)
    }

    fn drop_viewer(&mut self, id: ViewerId) {
        let Some(mut viewer) = self.viewers.remove(&id) else {
            return;
        };
        viewer.rtc.disconnect();
        for addr in &viewer.addrs {
            if self.by_addr.get(addr) == Some(&id) {
                self.by_addr.remove(addr);
            }
        }
        self.by_ufrag.remove(&viewer.ufrag);
        if viewer.state != State::Closing {
            let reason = viewer.leaving.unwrap_or(DisconnectReason::Closed);
            info!(%id, %reason, viewers = self.viewers.len(), "viewer disconnected");
            self.out
                .events
                .push_back(BroadcastEvent::ViewerDisconnected(id, reason));
        }
    }

    fn next_timeout(&self) -> Instant {
        // With nothing scheduled, come back in a while anyway; that costs nothing.
        let mut next = later(self.out.now, IDLE);
        if let Some(deadline) = self.out.keyframes.deadline() {
            next = next.min(deadline);
        }
        let mut waiting = false;
        for viewer in self.viewers.values() {
            waiting |= viewer.state == State::WaitingKeyframe;
            next = next
                .min(viewer.timeout)
                .min(later(viewer.last_receive, self.config.ice_timeout));
        }
        if waiting {
            if let Some(until) = self.out.keyframes.outstanding_until() {
                next = next.min(until);
            }
        }
        next
    }
}

/// How many sent packets each viewer keeps for retransmission (1 s of a 10 Mbit/s stream),
/// and for how long: several round trips of a slow path (str0m's default is 3 s). The payloads
/// are shared between viewers, but each entry's header is the viewer's own, so this cache is
/// most of a viewer's memory.
const RTX_CACHE_PACKETS: usize = 1024;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);

/// The largest share of a viewer's bytes in the last second that retransmissions may take.
const RTX_MAX_SHARE: f32 = 0.5;

/// The longest [`Output::Timeout`] when nothing is scheduled.
const IDLE: Duration = Duration::from_secs(60);

/// The id str0m's default extension map gives the MID; the offer's own id wins in the answer.
const MID_EXTENSION_ID: u8 = 4;

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("config", &self.config)
            .field("viewers", &self.viewers.len())
            .finish_non_exhaustive()
    }
}

/// Polls `viewer`'s `Rtc` once, handling events on the way.
fn poll_viewer(id: ViewerId, viewer: &mut Viewer, out: &mut Pending) -> Step {
    match viewer.rtc.poll_output() {
        Ok(str0m::Output::Transmit(transmit)) => Step::Transmit(transmit),
        Ok(str0m::Output::Event(event)) => {
            handle_event(id, viewer, event, out);
            Step::Again
        }
        Ok(str0m::Output::Timeout(timeout)) => {
            viewer.timeout = timeout;
            viewer.dirty = false;
            Step::Drained
        }
        Err(e) => {
            warn!(%id, error = %e, "str0m failed; dropping the viewer");
            // A disconnected `Rtc` answers the next poll with a timeout.
            viewer.rtc.disconnect();
            viewer.leaving.get_or_insert(DisconnectReason::Failed);
            Step::Again
        }
    }
}

/// Drains `viewer` into `out.transmits`. Only needed when the driver mutates again before
/// draining with [`Broadcast::poll_output`]; str0m wants every mutation drained first.
fn flush(id: ViewerId, viewer: &mut Viewer, out: &mut Pending) {
    loop {
        match poll_viewer(id, viewer, out) {
            Step::Transmit(transmit) => out.transmits.push_back(transmit),
            Step::Again => {}
            Step::Drained => break,
        }
    }
    if viewer.leaving.is_some() || !viewer.rtc.is_alive() {
        // `poll_output` removes leaving viewers when it drains them.
        mark_dirty(id, viewer, &mut out.dirty);
    }
}

fn handle_event(id: ViewerId, viewer: &mut Viewer, event: Event, out: &mut Pending) {
    match event {
        Event::Connected if viewer.state == State::Connecting => {
            viewer.state = State::WaitingKeyframe;
            out.events.push_back(BroadcastEvent::ViewerConnected(id));
            if out.gop_cache {
                // Sent once the viewer is drained; without a cached GOP it waits for the next
                // keyframe, which the request below may bring sooner.
                viewer.gop_pending = true;
            }
            if out.keyframes.request(out.now, true) {
                out.events.push_back(BroadcastEvent::KeyframeNeeded);
            }
        }
        Event::KeyframeRequest(request) if viewer.state == State::Streaming => {
            debug!(%id, kind = ?request.kind, "keyframe request");
            let (rtc, mid) = (&mut viewer.rtc, viewer.media.0);
            if viewer.health.keyframe_request(id, out.now, rtc, mid)
                && out.keyframes.request(out.now, false)
            {
                out.events.push_back(BroadcastEvent::KeyframeNeeded);
            }
        }
        Event::MediaEgressStats(stats) if viewer.state == State::Streaming => {
            let (rtc, mid) = (&mut viewer.rtc, viewer.media.0);
            viewer.health.loss_report(id, stats.loss, rtc, mid);
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            viewer.rtc.disconnect();
            viewer.leaving.get_or_insert(DisconnectReason::IceTimeout);
        }
        Event::Closed => {
            viewer.leaving.get_or_insert(DisconnectReason::Closed);
        }
        _ => {}
    }
}

/// The m-line `mid` and the payload type to send H.264 on, if `mid` is a video m-line we
/// send on and a usable H.264 payload type was negotiated for it.
fn h264_media(rtc: &mut Rtc, mid: Mid, stream: Option<u32>) -> Option<(Mid, Pt)> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Video || !media.direction().is_sending() || media.disabled() {
        return None;
    }
    let remote = media.remote_pts();
    let (_, pt) = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|params| remote.contains(&params.pt()))
        .filter_map(|params| Some((codec::score(params, stream)?, params.pt())))
        .max_by_key(|&(score, _)| score)?;
    debug!(%mid, %pt, "sending H.264");
    Some((mid, pt))
}

/// Sends the cached GOP to a viewer that has just connected and been drained, so it starts
/// at once. The frames go out in one burst, their RTP times squeezed one tick apart just
/// before the newest frame's own, so the decoder catches up at once and the live frames that
/// follow keep their spacing.
fn send_gop(id: ViewerId, viewer: &mut Viewer, gop: &GopCache, out: &mut Pending) {
    if !viewer.gop_pending || viewer.dirty || viewer.leaving.is_some() {
        return;
    }
    viewer.gop_pending = false;
    let Some(&(newest_capture, newest_rtp, _)) = gop.frames.last() else {
        debug!(%id, "no GOP cached; waiting for the next keyframe");
        return;
    };
    if viewer.state != State::WaitingKeyframe {
        return;
    }
    let count = gop.frames.len() as u64;
    let newest = newest_rtp.numer();
    for (i, (_, _, packets)) in gop.frames.iter().enumerate() {
        let rtp_time = MediaTime::from_90khz(newest.saturating_sub(count - 1 - i as u64));
        if !write_frame(viewer, newest_capture, rtp_time, packets) {
            return;
        }
    }
    send_now(id, viewer, out.now);
    debug!(%id, frames = count, bytes = gop.bytes, "GOP cache sent");
    viewer.state = State::Streaming;
    mark_dirty(id, viewer, &mut out.dirty);
}

/// Gives `rtc`'s video stream on `mid` an empty resend cache of rtcgear's size and share (see
/// [`RTX_CACHE_PACKETS`] and [`RTX_MAX_SHARE`]); str0m makes a new one each time.
pub(crate) fn new_resend_cache(rtc: &mut Rtc, mid: Mid) {
    if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_MAX_SHARE));
    }
}

/// Packetizes an access unit for every viewer at once.
fn packetize_frame(data: &[u8]) -> Arc<[Packet]> {
    packetize::packetize(data, packetize::MAX_PAYLOAD).into()
}

/// Queues one frame's packets on the viewer's video stream, with its own sequence numbers.
/// `false` if the viewer has no video stream to write to (it cannot have frames).
fn write_frame(
    viewer: &mut Viewer,
    capture: Instant,
    rtp_time: MediaTime,
    packets: &[Packet],
) -> bool {
    let (mid, pt) = viewer.media;
    let mut api = viewer.rtc.direct_api();
    let Some(stream) = api.stream_tx_by_mid(mid, None) else {
        return false;
    };
    // RTP time wraps at 32 bits, as the header carries it.
    let time = rtp_time.numer() as u32;
    for packet in packets {
        let seq = SeqNo::from(viewer.next_seq);
        viewer.next_seq += 1;
        stream.write_rtp(
            RtpWrite::new(pt, seq, time, capture, Arc::clone(&packet.payload))
                .marker(packet.marker)
                .nackable(true),
        );
    }
    true
}

/// Lets str0m timestamp what was just written, so that draining the viewer sends it without
/// waiting for the next timeout round.
fn send_now(id: ViewerId, viewer: &mut Viewer, now: Instant) {
    if let Err(e) = viewer.rtc.handle_input(Input::Timeout(now)) {
        warn!(%id, error = %e, "str0m failed sending a frame; dropping the viewer");
        viewer.rtc.disconnect();
        viewer.leaving.get_or_insert(DisconnectReason::Failed);
    }
}

/// A random first sequence number, as RFC 3550 asks, below 2^15 so that the rollover counter
/// starts at 0 however long the first frames are.
fn first_sequence_number() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    random % (1 << 15)
}

fn mark_dirty(id: ViewerId, viewer: &mut Viewer, dirty: &mut VecDeque<ViewerId>) {
    if !viewer.dirty {
        viewer.dirty = true;
        dirty.push_back(id);
    }
}

fn transmit_output(transmit: str0m::net::Transmit) -> Output {
    Output::Transmit {
        source: transmit.source,
        destination: transmit.destination,
        contents: transmit.contents.into(),
    }
}

/// `t + d`, or a time too far ahead to matter if that overflows (a `Duration::MAX` timeout).
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

/// "Never", in practice: a hundred years.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `elapsed` on the 90 kHz RTP video clock.
fn media_time(elapsed: Duration) -> MediaTime {
    let ticks = elapsed.as_secs() * 90_000 + u64::from(elapsed.subsec_nanos()) * 9 / 100_000;
    MediaTime::from_90khz(ticks)
}

/// The SDP parser's message on one line, without the memory address it puts in (which means
/// nothing to whoever sent the offer).
fn tidy_parse_error(message: &str) -> String {
    let mut out = Vec::new();
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = match line.find(" at PointerOffset(") {
            Some(start) => {
                let end = line[start..]
                    .find(')')
                    .map_or(line.len(), |e| start + e + 1);
                format!("{}{}", &line[..start], &line[end..])
            }
            None => line.to_string(),
        };
        out.push(line);
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::tidy_parse_error;

    #[test]
    fn parse_errors_read_on_one_line_without_addresses() {
        let raw = "SDP parse: Parse error at PointerOffset(0x7fb4d8000f60)\nUnexpected `g`\nExpected `v`\nsdp line";
        assert_eq!(
            tidy_parse_error(raw),
            "SDP parse: Parse error; Unexpected `g`; Expected `v`; sdp line"
        );
    }
}
