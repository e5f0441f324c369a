//! The public vocabulary of a broadcast's output: viewer ids, [`Output`], events and
//! disconnect reasons.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use rtcgear_capture::Codec;

/// Identifies one viewer (one browser session) of a [`Broadcast`](crate::Broadcast).
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
    /// no viewer has is harmless: [`Broadcast::remove_viewer`](crate::Broadcast::remove_viewer)
    /// answers `false` for it.
    pub fn from_raw(number: u64) -> ViewerId {
        ViewerId(number)
    }
}

impl fmt::Display for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "viewer-{}", self.0)
    }
}

/// What [`Broadcast::poll_output`](crate::Broadcast::poll_output) hands the driver.
#[derive(Debug)]
pub enum Output {
    /// Send `contents` from the local address `source` to `destination`.
    Transmit {
        /// UDP, or the TCP connection from `destination` to `source` (ICE-TCP).
        transport: Transport,
        /// One of the host candidates.
        source: SocketAddr,
        /// The viewer's address.
        destination: SocketAddr,
        /// One UDP datagram, or over TCP one packet that the driver frames (RFC 4571: a
        /// two-byte length in network order, then the packet).
        contents: Vec<u8>,
    },
    /// Something the driver should know about.
    Event(BroadcastEvent),
    /// Nothing more is pending: call
    /// [`Broadcast::handle_timeout`](crate::Broadcast::handle_timeout) at this instant at the
    /// latest, or earlier when a datagram, a frame or an offer arrives.
    Timeout(Instant),
}

/// How a packet travels between a viewer and the driver's sockets.
///
/// Over [`Tcp`](Transport::Tcp) (ICE-TCP, RFC 6544) the viewer connects to a passive TCP
/// candidate, and each packet on the connection is framed as RFC 4571 says: two bytes of
/// length in network order, then the packet. The driver owns the connections, takes the
/// framing off what it reads and puts it on what it writes; the broadcast sees packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// A TCP connection that the viewer opened to a passive TCP candidate.
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// How many connected viewers reach the broadcast each way, from
/// [`Broadcast::viewer_paths`](crate::Broadcast::viewer_paths).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerPaths {
    /// Straight over UDP.
    pub udp: usize,
    /// Over ICE-TCP.
    pub tcp: usize,
    /// Through a TURN server: packets come from an address the viewer's offer gave as a
    /// relayed candidate (a relay the offer did not list counts as UDP).
    pub relay: usize,
}

/// Events of a [`Broadcast`](crate::Broadcast).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BroadcastEvent {
    /// ICE and DTLS are up; the viewer gets video from the next keyframe on.
    ViewerConnected(ViewerId),
    /// The viewer is gone and its id is forgotten. Every id that
    /// [`Broadcast::handle_offer`](crate::Broadcast::handle_offer) returned ends with exactly
    /// one of these.
    ViewerDisconnected(ViewerId, DisconnectReason),
    /// Ask the encoder of this codec for a keyframe (an IDR for H.264): a viewer has joined,
    /// or one lost pictures (PLI/FIR).
    ///
    /// Requests are coalesced and rate limited, for each codec on its own (see
    /// [`BroadcastConfig::keyframe_interval`](crate::BroadcastConfig::keyframe_interval)), so
    /// the driver can pass each one straight on to the encoder.
    KeyframeNeeded(Codec),
}

/// Why a viewer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// [`Broadcast::remove_viewer`](crate::Broadcast::remove_viewer) was called.
    Removed,
    /// Nothing arrived from the viewer for
    /// [`BroadcastConfig::ice_timeout`](crate::BroadcastConfig::ice_timeout), or ICE gave up on
    /// every candidate pair.
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
