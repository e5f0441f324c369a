//! One viewer: its str0m session, where it stands, and writing frames to it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtcgear_capture::h264::H264Profile;
use rtcgear_capture::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Input, Rtc};
use tracing::{debug, warn};

use crate::codec;
use crate::health::Health;
use crate::output::{DisconnectReason, Transport, ViewerId};
use crate::packetize::Packet;

/// One viewer's session and what the broadcast knows about it.
pub(crate) struct Viewer {
    pub(crate) rtc: Rtc,
    pub(crate) state: State,
    /// What it is sent: H.264, or VP8 for a viewer whose offer has no usable H.264.
    pub(crate) codec: Codec,
    /// The video m-line and the payload type chosen for it.
    pub(crate) media: (Mid, Pt),
    /// The extended RTP sequence number of the next packet.
    next_seq: u64,
    pub(crate) ufrag: String,
    /// Remote addresses (with their transport) that route to this viewer.
    pub(crate) addrs: Vec<(Transport, SocketAddr)>,
    /// Where its latest packet came from.
    pub(crate) last_from: Option<(Transport, SocketAddr)>,
    /// Its offer's relayed candidates (see [`ViewerPaths`](crate::ViewerPaths)).
    pub(crate) relays: Vec<SocketAddr>,
    /// str0m's next timeout, valid while `dirty` is false.
    pub(crate) timeout: Instant,
    pub(crate) last_receive: Instant,
    pub(crate) dirty: bool,
    /// Set when we decided to drop the viewer; it goes once drained.
    pub(crate) leaving: Option<DisconnectReason>,
    /// Connected, with the GOP cache to be sent once drained.
    pub(crate) gop_pending: bool,
    /// Whether it keeps up, or skips to the next keyframe.
    pub(crate) health: Health,
    /// [`BroadcastConfig::playout_delay`](crate::BroadcastConfig::playout_delay).
    pub(crate) playout_delay: Option<(Duration, Duration)>,
    /// How long sent packets are kept for retransmission now (see [`resend_age`]).
    resend_age: Duration,
    /// NACKs the viewer had sent at its last receiver report.
    nacks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for ICE and DTLS.
    Connecting,
    /// Connected; waiting for a keyframe to start on.
    WaitingKeyframe,
    /// Getting every frame.
    Streaming,
    /// [`Broadcast::remove_viewer`](crate::Broadcast::remove_viewer) started a close; draining
    /// the close_notify.
    Closing,
}

/// How many sent packets each viewer keeps for retransmission at most (1 s of a 10 Mbit/s
/// stream). The payloads are shared between viewers, but each entry's header is the viewer's
/// own (about 440 bytes), so this cache is most of a viewer's memory: how long packets stay
/// in it follows the viewer's round trip ([`resend_age`]).
const RTX_CACHE_PACKETS: usize = 1024;
/// How long sent packets are kept until the viewer's round trip is known: every retry of a
/// round trip up to 100 ms, a few of a longer one (str0m's default is 3 s).
pub(crate) const RTX_CACHE_AGE: Duration = Duration::from_millis(400);
/// The longest resend history, for round trips of 225 ms and more.
const RTX_CACHE_MAX_AGE: Duration = Duration::from_secs(1);

/// How long to keep sent packets for a viewer whose round trip is `rtt`: a browser asks again
/// for a lost packet about once a round trip, and a packet older than a few of them is one its
/// jitter buffer has given up on. So four round trips and 100 ms, in steps of 100 ms, between
/// 200 ms and [`RTX_CACHE_MAX_AGE`].
pub(crate) fn resend_age(rtt: Duration) -> Duration {
    let wanted = rtt.saturating_mul(4) + Duration::from_millis(100);
    let steps = wanted.as_millis().div_ceil(100) as u64;
    Duration::from_millis(steps * 100).clamp(Duration::from_millis(200), RTX_CACHE_MAX_AGE)
}

/// The largest share of a viewer's bytes in the last second that retransmissions may take.
const RTX_MAX_SHARE: f32 = 0.5;

impl Viewer {
    /// A viewer that has just been sent its answer, sending H.264 on `media`; it still has to
    /// be drained (negotiating was a mutation).
    pub(crate) fn new(
        rtc: Rtc,
        codec: Codec,
        media: (Mid, Pt),
        ufrag: String,
        relays: Vec<SocketAddr>,
        now: Instant,
    ) -> Self {
        Viewer {
            rtc,
            state: State::Connecting,
            codec,
            media,
            next_seq: first_sequence_number(),
            ufrag,
            addrs: Vec::new(),
            last_from: None,
            relays,
            timeout: now,
            last_receive: now,
            dirty: true,
            leaving: None,
            gop_pending: false,
            health: Health::default(),
            playout_delay: None,
            resend_age: RTX_CACHE_AGE,
            nacks: 0,
        }
    }

    /// Gives the video stream an empty resend cache: nothing written so far is sent again.
    pub(crate) fn forget_resends(&mut self) {
        new_resend_cache(&mut self.rtc, self.media.0, self.resend_age);
    }

    /// Fits the resend history to the viewer's round trip from its latest receiver report
    /// (`rtt`, and `nacks`, the NACKs it has sent so far). str0m starts an empty history when
    /// it is resized, so that happens only after a report period without NACKs, when nothing
    /// is being asked for again: a lossy viewer keeps what it has.
    pub(crate) fn fit_resends(&mut self, id: ViewerId, rtt: Option<Duration>, nacks: u64) {
        let quiet = nacks == self.nacks;
        self.nacks = nacks;
        let Some(rtt) = rtt else {
            return;
        };
        let age = resend_age(rtt);
        // Longer at once; shorter only by two steps or more, so a round trip at a step's edge
        // does not resize it every report.
        let change = age > self.resend_age || age + Duration::from_millis(200) <= self.resend_age;
        if quiet && change {
            debug!(%id, ?rtt, ?age, "resend history fitted to the round trip");
            self.resend_age = age;
            self.forget_resends();
        }
    }

    /// Queues one frame's packets on the viewer's video stream, with its own sequence
    /// numbers. `false` if the viewer has no video stream to write to (it cannot have frames).
    pub(crate) fn write_frame(
        &mut self,
        capture: Instant,
        rtp_time: MediaTime,
        packets: &[Packet],
    ) -> bool {
        let (mid, pt) = self.media;
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        // RTP time wraps at 32 bits, as the header carries it.
        let time = rtp_time.numer() as u32;
        // Header extension values only when there are any: most streams write none.
        let ext_vals = self.playout_delay.map(|(min, max)| {
            // The extension counts in 10 ms steps.
            let steps = |d: Duration| MediaTime::from_hundredths((d.as_millis() / 10) as u64);
            ExtensionValues {
                play_delay_min: Some(steps(min)),
                play_delay_max: Some(steps(max)),
                ..Default::default()
            }
        });
        for packet in packets {
            let seq = SeqNo::from(self.next_seq);
            self.next_seq += 1;
            let mut write = RtpWrite::new(pt, seq, time, capture, Arc::clone(&packet.payload))
                .marker(packet.marker)
                .nackable(true);
            if let Some(ext_vals) = &ext_vals {
                write = write.ext_vals(ext_vals.clone());
            }
            stream.write_rtp(write);
        }
        true
    }

    /// Lets str0m timestamp what was just written, so that draining the viewer sends it
    /// without waiting for the next timeout round.
    pub(crate) fn send_now(&mut self, id: ViewerId, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            warn!(%id, error = %e, "str0m failed sending a frame; dropping the viewer");
            self.rtc.disconnect();
            self.leaving.get_or_insert(DisconnectReason::Failed);
        }
    }

    /// Notes that the viewer's `Rtc` was mutated and must be drained, queuing `id` in `dirty`
    /// unless it is queued already.
    pub(crate) fn mark_dirty(&mut self, id: ViewerId, dirty: &mut VecDeque<ViewerId>) {
        if !self.dirty {
            self.dirty = true;
            dirty.push_back(id);
        }
    }
}

/// The m-line `mid` and the payload type to send H.264 on, if `mid` is a video m-line we
/// send on and a usable H.264 payload type was negotiated for it.
pub(crate) fn h264_media(
    rtc: &mut Rtc,
    mid: Mid,
    stream: Option<H264Profile>,
) -> Option<(Mid, Pt)> {
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

/// The m-line `mid` and the payload type to send VP8 on, if `mid` is a video m-line we send
/// on and VP8 was negotiated for it.
pub(crate) fn vp8_media(rtc: &mut Rtc, mid: Mid) -> Option<(Mid, Pt)> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Video || !media.direction().is_sending() || media.disabled() {
        return None;
    }
    let remote = media.remote_pts();
    let pt = rtc
        .codec_config()
        .params()
        .iter()
        .find(|params| {
            remote.contains(&params.pt()) && params.spec().codec == str0m::format::Codec::Vp8
        })?
        .pt();
    debug!(%mid, %pt, "sending VP8");
    Some((mid, pt))
}

/// Gives `rtc`'s video stream on `mid` an empty resend cache of rtcgear's size and share (see
/// [`RTX_CACHE_PACKETS`] and [`RTX_MAX_SHARE`]); str0m makes a new one each time.
pub(crate) fn new_resend_cache(rtc: &mut Rtc, mid: Mid, age: Duration) {
    if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        stream.set_rtx_cache(RTX_CACHE_PACKETS, age, Some(RTX_MAX_SHARE));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::ViewerId;

    #[test]
    fn the_resend_history_spans_four_round_trips_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(resend_age(ms(1)), ms(200));
        assert_eq!(resend_age(ms(30)), ms(300));
        assert_eq!(resend_age(ms(50)), ms(300));
        assert_eq!(resend_age(ms(51)), ms(400));
        assert_eq!(resend_age(ms(150)), ms(700));
        assert_eq!(resend_age(ms(225)), RTX_CACHE_MAX_AGE);
        assert_eq!(resend_age(ms(400)), RTX_CACHE_MAX_AGE);
    }

    #[test]
    fn the_history_is_refitted_only_between_reports_without_nacks() {
        let ms = Duration::from_millis;
        let now = Instant::now();
        let rtc = Rtc::builder().build(now);
        let media = (Mid::from("0"), Pt::from(96));
        let mut viewer = Viewer::new(rtc, Codec::H264, media, "u".into(), Vec::new(), now);
        let id = ViewerId::from_raw(1);
        // NACKs since the last report: left alone.
        viewer.fit_resends(id, Some(ms(2)), 3);
        assert_eq!(viewer.resend_age, RTX_CACHE_AGE);
        // No round trip yet: left alone.
        viewer.fit_resends(id, None, 3);
        assert_eq!(viewer.resend_age, RTX_CACHE_AGE);
        // Quiet, and a short round trip: shortened.
        viewer.fit_resends(id, Some(ms(2)), 3);
        assert_eq!(viewer.resend_age, ms(200));
        // One step more is not worth a new history unless it is longer.
        viewer.fit_resends(id, Some(ms(30)), 3);
        assert_eq!(viewer.resend_age, ms(300));
        viewer.fit_resends(id, Some(ms(2)), 3);
        assert_eq!(viewer.resend_age, ms(300));
        viewer.fit_resends(id, Some(ms(300)), 4);
        assert_eq!(viewer.resend_age, ms(300));
    }
}
