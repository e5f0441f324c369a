//! [`Broadcast`]: one encoded stream, many str0m sessions. The state machine: it routes
//! datagrams to viewers, moves each viewer through its states, hands frames to those that
//! want them and drains their sessions. What one viewer is and how frames are written to it
//! is in `viewer`, the cache of the last GOP in `gop`, whether a viewer keeps up in `health`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtcgear_capture::{AccessUnit, Codec};
use str0m::change::SdpOffer;
use str0m::media::Mid;
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Rtc};
use tracing::{debug, info, warn};

use crate::codec;
use crate::config::{BroadcastConfig, LocalCandidate};
use crate::error::RtcError;
use crate::gop::GopCache;
use crate::health;
use crate::keyframe::KeyframeLimiter;
use crate::offer::{self, Summary};
use crate::output::{BroadcastEvent, DisconnectReason, Output, Transport, ViewerId, ViewerPaths};
use crate::shard::{Packetized, Packetizer};
use crate::stun;
use crate::time::{later, media_time};
use crate::viewer::{h264_media, new_resend_cache, vp8_media, State, Viewer, RTX_CACHE_AGE};

/// A Sans-IO WebRTC broadcast of one stream to many browsers: H.264, and VP8 to those without
/// it.
///
/// See the [crate documentation](crate) for the model and the order of calls.
pub struct Broadcast {
    config: BroadcastConfig,
    viewers: HashMap<ViewerId, Viewer>,
    /// Routing of packets by the viewer's address and transport, learned from its first STUN
    /// request.
    by_addr: HashMap<(Transport, SocketAddr), ViewerId>,
    /// Routing of STUN requests by the local ICE ufrag we gave each viewer.
    by_ufrag: HashMap<String, ViewerId>,
    next_id: u64,
    /// The capture instant that maps to RTP time 0.
    epoch: Option<Instant>,
    /// The frames since the last keyframe, when [`BroadcastConfig::gop_cache`] is on.
    gop: GopCache,
    /// Cuts the access units given to [`Broadcast::handle_frame`] into RTP payloads.
    packetizer: Packetizer,
    out: Pending,
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
    keyframes: Keyframes,
    /// [`BroadcastConfig::gop_cache`].
    gop_cache: bool,
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
        let limiter = || KeyframeLimiter::new(config.keyframe_interval, config.keyframe_retry);
        let keyframes = Keyframes([limiter(), limiter()]);
        let first_viewer = config.shard.first_viewer();
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
            next_id: first_viewer,
            epoch: None,
            gop: GopCache::default(),
            packetizer: Packetizer::default(),
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
        let udp = self.config.host_candidates.iter().copied();
        let tcp = self.config.tcp_candidates.iter().copied();
        let candidates: Vec<LocalCandidate> = udp
            .map(LocalCandidate::Host)
            .chain(tcp.map(LocalCandidate::TcpHost))
            .collect();
        self.handle_offer_with_candidates(now, offer_sdp, &candidates)
    }

    /// [`handle_offer`](Self::handle_offer), announcing `candidates` to this viewer instead of
    /// the configured host candidates: the driver picks what fits the viewer (no loopback
    /// address for a browser on another host, say) and adds server-reflexive ones.
    ///
    /// The session still accepts datagrams that arrive at any configured host candidate (and
    /// at any host address in `candidates`): which local address a datagram reached says
    /// nothing about which candidate the browser used once a NAT is in between. A
    /// [`LocalCandidate::ServerReflexive`] is only written into the answer; its datagrams
    /// arrive at its base. At least one host address, configured or given, is needed.
    pub fn handle_offer_with_candidates(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        candidates: &[LocalCandidate],
    ) -> Result<(ViewerId, String), RtcError> {
        self.out.now = now;
        if let Some(max) = self.config.max_viewers {
            if self.viewer_count() >= max {
                return Err(RtcError::ViewerLimit { max });
            }
        }
        let mut hosts = self.config.host_candidates.clone();
        let mut tcp_hosts = self.config.tcp_candidates.clone();
        for candidate in candidates {
            let (list, addr) = match *candidate {
                LocalCandidate::Host(addr) => (&mut hosts, addr),
                LocalCandidate::TcpHost(addr) => (&mut tcp_hosts, addr),
                LocalCandidate::ServerReflexive { .. } => continue,
            };
            if !list.contains(&addr) {
                list.push(addr);
            }
        }
        if (hosts.is_empty() && tcp_hosts.is_empty()) || candidates.is_empty() {
            return Err(RtcError::NoCandidates);
        }
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| RtcError::MalformedSdp {
            source: offer::tidy_parse_error(&e.to_string()).into(),
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
        let vp8 = self.config.vp8 && summary.vp8;
        if !summary.h264 && !vp8 {
            return Err(self.no_codec());
        }

        // Our ufrag routes the viewer's STUN requests to it, so it must be unique here.
        let creds = loop {
            let mut creds = IceCreds::new();
            if let Some(tag) = self.config.shard.ufrag_tag() {
                // The driver routes the viewer's STUN requests to this shard by it.
                creds.ufrag.insert(0, tag);
            }
            if !self.by_ufrag.contains_key(&creds.ufrag) {
                break creds;
            }
        };
        let ufrag = creds.ufrag.clone();
        // RTP mode: every viewer gets the payloads packetized once for all (see `packetize`).
        // The only header extension is the MID that BUNDLE needs: nothing here estimates
        // bandwidth, so transport-wide congestion feedback (a datagram from every viewer
        // every few tens of milliseconds) and send times would be work for nothing.
        let mut builder = codec::configure(Rtc::builder(), self.config.h264_profile)
            .enable_vp8(self.config.vp8)
            .clear_extension_map()
            .set_extension(MID_EXTENSION_ID, Extension::RtpMid);
        if self.config.playout_delay.is_some() {
            builder = builder.set_extension(PLAYOUT_DELAY_EXTENSION_ID, Extension::PlayoutDelay);
        }
        let mut rtc = builder
            .set_rtp_mode(true)
            .set_ice_lite(self.config.ice_lite)
            .set_stats_interval(Some(health::STATS_INTERVAL))
            .set_local_ice_credentials(creds)
            .build(now);
        // UDP first: browsers prefer it, and str0m gives TCP a lower priority too.
        for &addr in &hosts {
            let candidate =
                Candidate::host(addr, "udp").map_err(|e| RtcError::InvalidCandidate {
                    addr,
                    source: Box::new(e),
                })?;
            rtc.add_local_candidate(candidate);
        }
        for &addr in &tcp_hosts {
            let candidate = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| RtcError::InvalidCandidate {
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
        let answer = offer::announce(&answer.to_sdp_string(), candidates);
        // H.264 where the offer takes it, VP8 (when on) where it does not.
        let mids = offer::video_mids(&answer);
        let h264 = mids
            .iter()
            .find_map(|mid| h264_media(&mut rtc, Mid::from(*mid), self.config.h264_profile))
            .map(|media| (Codec::H264, media));
        let chosen = h264.or_else(|| {
            mids.iter()
                .filter(|_| self.config.vp8)
                .find_map(|mid| vp8_media(&mut rtc, Mid::from(*mid)))
                .map(|media| (Codec::Vp8, media))
        });
        let Some((video_codec, media)) = chosen else {
            return Err(match self.config.h264_profile {
                Some(profile) if !codec::is_constrained_baseline(Some(profile)) => {
                    RtcError::ProfileNotOffered { profile }
                }
                _ => self.no_codec(),
            });
        };
        // str0m drops every queued retransmission once they are 15% of the last second's bytes.
        // A browser asks again for a packet until it comes, so at a low bitrate a few losses
        // cross that line, the answers are dropped, and the picture freezes. Retransmissions
        // only load this viewer's own path, so allow them up to half of it.
        new_resend_cache(&mut rtc, media.0, RTX_CACHE_AGE);
        let id = ViewerId::from_raw(self.next_id);
        let mut viewer = Viewer::new(rtc, video_codec, media, ufrag, summary.relays, now);
        viewer.playout_delay = self.config.playout_delay;
        // Negotiating was a mutation; str0m wants it drained before the next one.
        let queued = self.out.transmits.len();
        flush(id, &mut viewer, &mut self.out);
        if viewer.leaving.is_some() {
            self.out.transmits.truncate(queued);
            return Err(RtcError::Negotiation {
                source: "str0m failed right after negotiating; see the log".into(),
            });
        }
        self.next_id += self.config.shard.count() as u64;
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
        self.handle_receive_over(now, Transport::Udp, source, destination, datagram)
    }

    /// [`handle_receive`](Self::handle_receive) for a packet that came over `transport`: for
    /// [`Transport::Tcp`], one packet with its RFC 4571 framing taken off, read from the TCP
    /// connection from `source` (the viewer) to `destination` (one of
    /// [`tcp_candidates`](BroadcastConfig::tcp_candidates), or of the TCP host candidates an
    /// offer was answered with).
    ///
    /// A driver may hand over the first packets of any connection: one whose first packet is
    /// not a STUN request for a viewer here is refused (`false`), and the driver can close it.
    pub fn handle_receive_over(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        packet: &[u8],
    ) -> bool {
        self.out.now = now;
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let Ok(receive) = Receive::new(protocol, source, destination, packet) else {
            return false;
        };
        let input = Input::Receive(now, receive);
        let Some(id) = self.route(transport, source, packet, &input) else {
            debug!(%source, %transport, len = packet.len(), "packet for no viewer");
            return false;
        };
        let Some(viewer) = self.viewers.get_mut(&id) else {
            return false;
        };
        if viewer.dirty {
            flush(id, viewer, &mut self.out);
        }
        viewer.last_receive = now;
        viewer.last_from = Some((transport, source));
        if let Err(e) = viewer.rtc.handle_input(input) {
            warn!(%id, error = %e, "str0m rejected a datagram; dropping the viewer");
            viewer.rtc.disconnect();
            viewer.leaving.get_or_insert(DisconnectReason::Failed);
        }
        if !viewer.addrs.contains(&(transport, source)) {
            viewer.addrs.push((transport, source));
            self.by_addr.insert((transport, source), id);
        }
        viewer.mark_dirty(id, &mut self.out.dirty);
        true
    }

    /// Sends one encoded access unit to every viewer of its codec that can take it.
    ///
    /// The unit is H.264 in Annex B form with SPS and PPS in front of every IDR (as capture's
    /// sources and rtcgear's encoder make them), or one VP8 frame for the viewers answered
    /// with VP8 (see [`BroadcastConfig::vp8`]); a unit of another codec is dropped with a
    /// warning. Its capture time (`unit.time.instant`) sets the RTP time: the first unit's
    /// becomes RTP time 0 and the rest follow on the 90 kHz clock. Viewers that are still
    /// connecting get nothing, and a viewer that has just connected gets nothing until the
    /// next keyframe, so no decoder ever starts on a P frame.
    ///
    /// The payload is copied once into shared buffers, not once per viewer. A driver with
    /// several broadcasts of one stream (see [`Shard`](crate::Shard)) packetizes once for all
    /// with a [`Packetizer`] and calls [`handle_packetized`](Self::handle_packetized) instead.
    pub fn handle_frame(&mut self, now: Instant, unit: &AccessUnit) {
        match self.packetizer.packetize(unit) {
            Some(packetized) => self.handle_packetized(now, &packetized),
            None => {
                let codec = unit.codec;
                warn!(%codec, "dropping an access unit of a codec this broadcast cannot send");
            }
        }
    }

    /// [`handle_frame`](Self::handle_frame) for a picture already cut into RTP payloads, shared
    /// with other broadcasts.
    pub fn handle_packetized(&mut self, now: Instant, frame: &Packetized) {
        let (codec, capture, keyframe) = (frame.codec, frame.capture, frame.keyframe);
        self.out.now = now;
        if keyframe {
            self.out.keyframes.of(codec).keyframe_written();
        }
        let epoch = *self.epoch.get_or_insert(capture);
        let rtp_time = media_time(capture.saturating_duration_since(epoch));
        let packets = &frame.packets;
        for (&id, viewer) in &mut self.viewers {
            if viewer.leaving.is_some() || viewer.state == State::Closing || viewer.codec != codec {
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
            if viewer.write_frame(capture, rtp_time, packets) {
                if viewer.state == State::WaitingKeyframe {
                    debug!(%id, "first keyframe written");
                    viewer.state = State::Streaming;
                }
                // Timestamps the queued packets so the next drain sends them at once.
                viewer.send_now(id, now);
            }
            viewer.mark_dirty(id, &mut self.out.dirty);
        }
        if self.config.gop_cache && codec == Codec::H264 {
            self.gop.add(capture, rtp_time, keyframe, packets.clone());
        }
    }

    /// Lets time pass: str0m's timers, keyframe request slots and ICE timeouts.
    ///
    /// Call it when the last [`Output::Timeout`] has passed. Calling it early does no harm.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.out.now = now;
        for codec in CODECS {
            if self.out.keyframes.of(codec).poll(now) {
                self.out
                    .events
                    .push_back(BroadcastEvent::KeyframeNeeded(codec));
            }
        }
        let mut waiting = Vec::new();
        for (&id, viewer) in &mut self.viewers {
            if viewer.state == State::WaitingKeyframe && !waiting.contains(&viewer.codec) {
                waiting.push(viewer.codec);
            }
            if now >= later(viewer.last_receive, self.config.ice_timeout) {
                if viewer.leaving.is_none() {
                    info!(%id, "nothing heard for the ICE timeout; dropping the viewer");
                }
                viewer.rtc.disconnect();
                viewer.leaving.get_or_insert(DisconnectReason::IceTimeout);
                viewer.mark_dirty(id, &mut self.out.dirty);
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
            viewer.mark_dirty(id, &mut self.out.dirty);
        }
        // A viewer still waiting for its first keyframe asks again once the last request
        // has had `keyframe_retry` to arrive; the encoder may have missed it.
        for codec in waiting {
            if self.out.keyframes.of(codec).request(now, true) {
                self.out
                    .events
                    .push_back(BroadcastEvent::KeyframeNeeded(codec));
            }
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
        viewer.mark_dirty(id, &mut self.out.dirty);
        self.out
            .events
            .push_back(BroadcastEvent::ViewerDisconnected(id, reason));
        info!(%id, "viewer removed");
        true
    }

    /// How many viewers watch in each codec, connected or still connecting, in one pass:
    /// `(H.264, VP8)`. A driver runs a codec's encoder while its count is above zero.
    pub fn viewer_counts(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for viewer in self.viewers.values() {
            if viewer.state == State::Closing || viewer.leaving.is_some() {
                continue;
            }
            match viewer.codec {
                Codec::Vp8 => counts.1 += 1,
                _ => counts.0 += 1,
            }
        }
        counts
    }

    /// Forgets that packets from `addr` over `transport` belong to a viewer: for a TCP
    /// connection that closed, whose address a new connection may reuse. The viewer itself
    /// stays (it may go on over another path) until its ICE timeout.
    pub fn forget_route(&mut self, transport: Transport, addr: SocketAddr) {
        if let Some(id) = self.by_addr.remove(&(transport, addr)) {
            if let Some(viewer) = self.viewers.get_mut(&id) {
                viewer.addrs.retain(|route| *route != (transport, addr));
            }
        }
    }

    /// The refusal of an offer with no codec this broadcast sends.
    fn no_codec(&self) -> RtcError {
        if self.config.vp8 {
            RtcError::NoCodec
        } else {
            RtcError::NoH264
        }
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

    /// How the connected viewers reach the broadcast: over UDP, ICE-TCP or a TURN relay, by
    /// where each one's latest packet came from. It goes through every viewer: call it now
    /// and then (for a status page), not for every packet.
    pub fn viewer_paths(&self) -> ViewerPaths {
        let mut paths = ViewerPaths::default();
        for viewer in self.viewers.values() {
            let connected = matches!(viewer.state, State::WaitingKeyframe | State::Streaming);
            if !connected || viewer.leaving.is_some() {
                continue;
            }
            match viewer.last_from {
                Some((Transport::Tcp, _)) => paths.tcp += 1,
                Some((Transport::Udp, from)) if viewer.relays.contains(&from) => paths.relay += 1,
                Some((Transport::Udp, _)) | None => paths.udp += 1,
            }
        }
        paths
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

    fn route(
        &self,
        transport: Transport,
        source: SocketAddr,
        datagram: &[u8],
        input: &Input<'_>,
    ) -> Option<ViewerId> {
        if let Some(&id) = self.by_addr.get(&(transport, source)) {
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
        for codec in CODECS {
            if let Some(deadline) = self.out.keyframes.get(codec).deadline() {
                next = next.min(deadline);
            }
        }
        let mut waiting = [false; CODECS.len()];
        for viewer in self.viewers.values() {
            if viewer.state == State::WaitingKeyframe {
                waiting[Keyframes::index(viewer.codec)] = true;
            }
            next = next
                .min(viewer.timeout)
                .min(later(viewer.last_receive, self.config.ice_timeout));
        }
        for codec in CODECS {
            if waiting[Keyframes::index(codec)] {
                if let Some(until) = self.out.keyframes.get(codec).outstanding_until() {
                    next = next.min(until);
                }
            }
        }
        next
    }
}

/// The longest [`Output::Timeout`] when nothing is scheduled.
const IDLE: Duration = Duration::from_secs(60);

/// The id str0m's default extension map gives the MID; the offer's own id wins in the answer.
const MID_EXTENSION_ID: u8 = 4;
/// The id for the playout delay (Chromium's own offer uses 5; the offer's id wins anyway).
const PLAYOUT_DELAY_EXTENSION_ID: u8 = 5;

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
        viewer.mark_dirty(id, &mut out.dirty);
    }
}

fn handle_event(id: ViewerId, viewer: &mut Viewer, event: Event, out: &mut Pending) {
    match event {
        Event::Connected if viewer.state == State::Connecting => {
            viewer.state = State::WaitingKeyframe;
            out.events.push_back(BroadcastEvent::ViewerConnected(id));
            // The cache holds H.264: a VP8 viewer starts on its encoder's next keyframe.
            if out.gop_cache && viewer.codec == Codec::H264 {
                // Sent once the viewer is drained; without a cached GOP it waits for the next
                // keyframe, which the request below may bring sooner.
                viewer.gop_pending = true;
            }
            if out.keyframes.of(viewer.codec).request(out.now, true) {
                out.events
                    .push_back(BroadcastEvent::KeyframeNeeded(viewer.codec));
            }
        }
        Event::KeyframeRequest(request) if viewer.state == State::Streaming => {
            debug!(%id, kind = ?request.kind, "keyframe request");
            let verdict = viewer.health.keyframe_request(id, out.now);
            if verdict.fell_behind {
                // Nothing it skips is sent again (see `health`).
                viewer.forget_resends();
            }
            if verdict.pass_on && out.keyframes.of(viewer.codec).request(out.now, false) {
                out.events
                    .push_back(BroadcastEvent::KeyframeNeeded(viewer.codec));
            }
        }
        Event::MediaEgressStats(stats) if viewer.state == State::Streaming => {
            let verdict = viewer.health.loss_report(id, stats.loss);
            if verdict.fell_behind {
                viewer.forget_resends();
            } else {
                viewer.fit_resends(id, stats.rtt, stats.nacks);
            }
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

/// Sends the cached GOP to a viewer that has just connected and been drained, so it starts
/// at once. The frames go out in one burst (see [`GopCache::squeezed`]).
fn send_gop(id: ViewerId, viewer: &mut Viewer, gop: &GopCache, out: &mut Pending) {
    if !viewer.gop_pending || viewer.dirty || viewer.leaving.is_some() {
        return;
    }
    viewer.gop_pending = false;
    let Some(newest_capture) = gop.newest_capture() else {
        debug!(%id, "no GOP cached; waiting for the next keyframe");
        return;
    };
    if viewer.state != State::WaitingKeyframe {
        return;
    }
    for (rtp_time, packets) in gop.squeezed() {
        if !viewer.write_frame(newest_capture, rtp_time, packets) {
            return;
        }
    }
    viewer.send_now(id, out.now);
    debug!(%id, frames = gop.len(), bytes = gop.bytes(), "GOP cache sent");
    viewer.state = State::Streaming;
    viewer.mark_dirty(id, &mut out.dirty);
}

/// Packetizes an access unit for every viewer at once.
/// The codecs a broadcast sends.
const CODECS: [Codec; 2] = [Codec::H264, Codec::Vp8];

/// One keyframe limiter for each codec: each has its own encoder.
struct Keyframes([KeyframeLimiter; CODECS.len()]);

impl Keyframes {
    fn index(codec: Codec) -> usize {
        match codec {
            Codec::Vp8 => 1,
            _ => 0,
        }
    }

    fn of(&mut self, codec: Codec) -> &mut KeyframeLimiter {
        &mut self.0[Keyframes::index(codec)]
    }

    fn get(&self, codec: Codec) -> &KeyframeLimiter {
        &self.0[Keyframes::index(codec)]
    }
}

fn transmit_output(transmit: str0m::net::Transmit) -> Output {
    Output::Transmit {
        transport: match transmit.proto {
            Protocol::Udp => Transport::Udp,
            // str0m answers on the pair the packet came in on; only TCP ones are added.
            Protocol::Tcp | Protocol::SslTcp | Protocol::Tls => Transport::Tcp,
        },
        source: transmit.source,
        destination: transmit.destination,
        contents: transmit.contents.into(),
    }
}
