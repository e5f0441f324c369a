//! [`BroadcastConfig`]: everything a [`Broadcast`](crate::Broadcast) is told up front.

use std::net::SocketAddr;
use std::time::Duration;

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
}

impl BroadcastConfig {
    /// A configuration that announces `host_candidates` and uses the defaults for the rest.
    pub fn new(host_candidates: Vec<SocketAddr>) -> Self {
        BroadcastConfig {
            host_candidates,
            ice_lite: true,
            keyframe_interval: Duration::from_millis(250),
            keyframe_retry: Duration::from_secs(1),
            max_viewers: None,
            ice_timeout: Duration::from_secs(15),
        }
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
