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

/// How many sent packets each viewer keeps for retransmission (1 s of a 10 Mbit/s stream),
/// and for how long: several round trips of a slow path (str0m's default is 3 s). The payloads
/// are shared between viewers, but each entry's header is the viewer's own, so this cache is
/// most of a viewer's memory.
const RTX_CACHE_PACKETS: usize = 1024;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);

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
        }
    }

    /// Gives the video stream an empty resend cache: nothing written so far is sent again.
    pub(crate) fn forget_resends(&mut self) {
        new_resend_cache(&mut self.rtc, self.media.0);
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
pub(crate) fn new_resend_cache(rtc: &mut Rtc, mid: Mid) {
    if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_MAX_SHARE));
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
