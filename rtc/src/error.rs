//! The crate's one error type.

use std::error::Error as StdError;
use std::net::SocketAddr;

use rtcgear_capture::h264::H264Profile;

/// Why [`Broadcast::handle_offer`](crate::Broadcast::handle_offer) refused an offer.
///
/// Every variant is a problem with the input or the configuration; none of them leaves the
/// [`Broadcast`](crate::Broadcast) in a bad state, and the other viewers are not affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtcError {
    /// The offer is not valid SDP.
    #[error("malformed SDP offer: {source}")]
    MalformedSdp {
        /// The parser's complaint.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },

    /// The SDP is an answer (or a re-offer with a fixed DTLS role), not an initial offer.
    ///
    /// An offerer must say `a=setup:actpass` (RFC 8842); this one said `a=setup:{setup}`.
    #[error("the SDP is not an offer: it says a=setup:{setup}, an offer says a=setup:actpass")]
    NotAnOffer {
        /// The DTLS role the SDP asked for.
        setup: String,
    },

    /// The offer has no video m-line.
    #[error("the offer has no video m-line")]
    NoVideo,

    /// The offer has video, but no H.264 with packetization-mode=1 in a baseline profile.
    #[error(
        "the offer has no usable H.264 (need packetization-mode=1, constrained baseline or baseline)"
    )]
    NoH264,

    /// The offer has video, but neither usable H.264 nor VP8 (with
    /// [`BroadcastConfig::vp8`](crate::BroadcastConfig::vp8) on).
    #[error(
        "the offer has neither usable H.264 (packetization-mode=1, constrained baseline or \
         baseline) nor VP8"
    )]
    NoCodec,

    /// The stream is H.264 in a profile (passed through as it came) that the offer does not
    /// list with packetization-mode=1.
    #[error(
        "the offer has no H.264 payload type for this stream's profile, {profile} \
         (profile-level-id {:06x}, packetization-mode=1)",
        profile.profile_level_id()
    )]
    ProfileNotOffered {
        /// The stream's profile.
        profile: H264Profile,
    },

    /// str0m could not negotiate the offer.
    #[error("could not negotiate the offer: {source}")]
    Negotiation {
        /// str0m's error.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },

    /// [`BroadcastConfig::max_viewers`](crate::BroadcastConfig::max_viewers) viewers are
    /// already watching.
    #[error("viewer limit reached ({max} viewers)")]
    ViewerLimit {
        /// The configured limit.
        max: usize,
    },

    /// The configuration has no local host candidate, so no browser could reach us.
    #[error("no local host candidates are configured")]
    NoCandidates,

    /// A configured host candidate address cannot be used (for example `0.0.0.0`).
    #[error("invalid host candidate {addr}: {source}")]
    InvalidCandidate {
        /// The configured address.
        addr: SocketAddr,
        /// str0m's error.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
}
