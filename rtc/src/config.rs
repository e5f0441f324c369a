//! [`BroadcastConfig`]: everything a [`Broadcast`](crate::Broadcast) is told up front.

use std::net::SocketAddr;
use std::time::Duration;

use rtcgear_capture::h264::H264Profile;

use crate::output::Transport;
use crate::shard::Shard;

/// Configuration of a [`Broadcast`](crate::Broadcast).
///
/// Build it with [`BroadcastConfig::new`] and the `with_*` methods, or set the public fields.
///
/// ```
/// use std::time::Duration;
/// use rtcgear_rtc::BroadcastConfig;
///
/// let config = BroadcastConfig::new(vec!["192.0.2.10:3478".parse().unwrap()])
///     .with_max_viewers(Some(200))
///     .with_keyframe_interval(Duration::from_millis(500));
/// assert!(config.ice_lite);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastConfig {
    /// Addresses of the local UDP socket(s) the driver reads and writes, announced to every
    /// viewer as ICE host candidates. A browser must be able to reach at least one of them.
    pub host_candidates: Vec<SocketAddr>,

    /// Addresses at which the driver accepts TCP connections for ICE-TCP (RFC 6544), announced
    /// to every viewer as passive TCP host candidates, after the UDP ones (default none: UDP
    /// only). A viewer whose UDP is blocked then connects over TCP; see
    /// [`Transport`](crate::Transport).
    pub tcp_candidates: Vec<SocketAddr>,

    /// Answer as an ICE-lite agent (default `true`).
    ///
    /// A server with a reachable address never needs to send connectivity checks itself: it
    /// answers the browser's checks. That is cheaper and has fewer states.
    pub ice_lite: bool,

    /// The shortest time between two [`KeyframeNeeded`](crate::BroadcastEvent::KeyframeNeeded)
    /// events caused by keyframe requests (PLI/FIR) from viewers (default 250 ms).
    ///
    /// A viewer that has just connected does not wait for this: its request goes out at once,
    /// unless an earlier request is still waiting for its keyframe, which then serves it too.
    pub keyframe_interval: Duration,

    /// How long a requested keyframe may take before a viewer that is still waiting for one
    /// asks again (default 1 s). Until then, further requests are folded into the first.
    pub keyframe_retry: Duration,

    /// The most viewers at once, or `None` for no limit (default `None`).
    pub max_viewers: Option<usize>,

    /// A viewer from which no datagram at all has arrived for this long is dropped
    /// (default 15 s). Browsers send ICE consent checks every few seconds and RTCP reports
    /// every second, so silence this long means the viewer has gone. It also bounds the time
    /// from the answer to the first datagram.
    pub ice_timeout: Duration,

    /// Keep the frames since the last keyframe (a GOP cache) and send them to each viewer as
    /// it connects, so its picture starts at once without a new keyframe (default `false`).
    ///
    /// Meant for streams whose keyframes cannot be asked for: H.264 passed through from a
    /// file, a network stream or a camera's own encoder. The cached frames go out in one burst
    /// with their timestamps squeezed just before the newest one's, so the viewer's decoder
    /// catches up and shows the live picture without added delay. A GOP longer than
    /// [`GOP_CACHE_MAX_FRAMES`](crate::GOP_CACHE_MAX_FRAMES) frames or
    /// [`GOP_CACHE_MAX_BYTES`](crate::GOP_CACHE_MAX_BYTES) is not cached: viewers then wait
    /// for the next keyframe.
    pub gop_cache: bool,

    /// The profile of the H.264 the driver sends, from its SPS (e.g. High 4.1, `640029`), or
    /// `None` for Constrained Baseline, what rtcgear's encoder makes (default `None`).
    ///
    /// The answer then offers the browser's payload type for that profile: Constrained
    /// Baseline streams go to any H.264 payload type with packetization mode 1 that decodes
    /// them; Baseline, Main and High streams need the browser to offer that profile (or High,
    /// for Main), else the offer fails with [`RtcError::ProfileNotOffered`](crate::RtcError).
    pub h264_profile: Option<H264Profile>,

    /// Answer offers without usable H.264 (Firefox without its OpenH264 plugin, say) with VP8
    /// (default `false`). The driver then needs a VP8 encoder for those viewers:
    /// [`KeyframeNeeded`](crate::BroadcastEvent::KeyframeNeeded) names the codec, and
    /// [`viewer_counts`](crate::Broadcast::viewer_counts) says whether anyone watches
    /// in VP8. Offers with H.264 still get H.264.
    pub vp8: bool,

    /// The playout delay to ask each browser for, `(min, max)`, in the RTP header extension of
    /// that name (`http://www.webrtc.org/experiments/rtp-hdrext/playout-delay`, in 10 ms steps
    /// up to 40.95 s), when its offer has it (default `None`: the browser chooses). `(0, 0)`
    /// asks Chromium to show each frame as soon as it is decoded, with no jitter buffer
    /// beyond what reassembly needs: the lowest latency, at the cost of smoothness on a
    /// jittery network.
    pub playout_delay: Option<(Duration, Duration)>,

    /// Which of several broadcasts of the same stream this is, when a driver spreads the
    /// viewers over threads (default: the only one). Its viewer ids and ICE ufrags then say
    /// which shard they belong to; see [`Shard`].
    pub shard: Shard,
}

impl BroadcastConfig {
    /// A configuration that announces `host_candidates` and uses the defaults for the rest.
    pub fn new(host_candidates: Vec<SocketAddr>) -> Self {
        BroadcastConfig {
            host_candidates,
            tcp_candidates: Vec::new(),
            ice_lite: true,
            keyframe_interval: Duration::from_millis(250),
            keyframe_retry: Duration::from_secs(1),
            max_viewers: None,
            ice_timeout: Duration::from_secs(15),
            gop_cache: false,
            h264_profile: None,
            vp8: false,
            playout_delay: None,
            shard: Shard::default(),
        }
    }

    /// Sets [`tcp_candidates`](Self::tcp_candidates).
    pub fn with_tcp_candidates(mut self, tcp_candidates: Vec<SocketAddr>) -> Self {
        self.tcp_candidates = tcp_candidates;
        self
    }

    /// Sets [`ice_lite`](Self::ice_lite).
    pub fn with_ice_lite(mut self, ice_lite: bool) -> Self {
        self.ice_lite = ice_lite;
        self
    }

    /// Sets [`keyframe_interval`](Self::keyframe_interval).
    pub fn with_keyframe_interval(mut self, interval: Duration) -> Self {
        self.keyframe_interval = interval;
        self
    }

    /// Sets [`keyframe_retry`](Self::keyframe_retry).
    pub fn with_keyframe_retry(mut self, retry: Duration) -> Self {
        self.keyframe_retry = retry;
        self
    }

    /// Sets [`max_viewers`](Self::max_viewers).
    pub fn with_max_viewers(mut self, max_viewers: Option<usize>) -> Self {
        self.max_viewers = max_viewers;
        self
    }

    /// Sets [`gop_cache`](Self::gop_cache).
    pub fn with_gop_cache(mut self, gop_cache: bool) -> Self {
        self.gop_cache = gop_cache;
        self
    }

    /// Sets [`h264_profile`](Self::h264_profile).
    pub fn with_h264_profile(mut self, profile: Option<H264Profile>) -> Self {
        self.h264_profile = profile;
        self
    }

    /// Sets [`playout_delay`](Self::playout_delay).
    pub fn with_playout_delay(mut self, delay: Option<(Duration, Duration)>) -> Self {
        self.playout_delay = delay;
        self
    }

    /// Sets [`vp8`](Self::vp8).
    pub fn with_vp8(mut self, vp8: bool) -> Self {
        self.vp8 = vp8;
        self
    }

    /// Sets [`shard`](Self::shard).
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Sets [`ice_timeout`](Self::ice_timeout).
    pub fn with_ice_timeout(mut self, timeout: Duration) -> Self {
        self.ice_timeout = timeout;
        self
    }
}

impl Default for BroadcastConfig {
    /// No host candidates: fill in [`host_candidates`](Self::host_candidates) before use.
    fn default() -> Self {
        BroadcastConfig::new(Vec::new())
    }
}

/// An address announced to one viewer as an ICE candidate, for
/// [`Broadcast::handle_offer_with_candidates`](crate::Broadcast::handle_offer_with_candidates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalCandidate {
    /// An address of the driver's own UDP socket (`typ host`), or one that reaches it
    /// unchanged (a public address that a router forwards to it).
    Host(SocketAddr),
    /// An address at which the driver accepts TCP connections for ICE-TCP (`tcp ... typ host
    /// tcptype passive`), or one that reaches it unchanged.
    TcpHost(SocketAddr),
    /// The address a NAT maps the driver's socket to, as a STUN server saw it (`typ srflx`),
    /// with `base`, the local address it maps (written as `raddr`/`rport`).
    ServerReflexive {
        /// The mapped (public) address.
        addr: SocketAddr,
        /// The local address of the socket the mapping belongs to.
        base: SocketAddr,
    },
}

impl LocalCandidate {
    /// The address the viewer sends to.
    pub fn addr(&self) -> SocketAddr {
        match *self {
            LocalCandidate::Host(addr)
            | LocalCandidate::TcpHost(addr)
            | LocalCandidate::ServerReflexive { addr, .. } => addr,
        }
    }

    /// How the viewer reaches it.
    pub fn transport(&self) -> Transport {
        match self {
            LocalCandidate::TcpHost(_) => Transport::Tcp,
            LocalCandidate::Host(_) | LocalCandidate::ServerReflexive { .. } => Transport::Udp,
        }
    }
}
