//! The one error type of the crate.

use rtcgear_capture::{CaptureError, PixelFormat};

/// What can go wrong configuring the encoder or encoding a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A configuration value that the encoder cannot use, named with the reason.
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(String),
    /// x264 does not know the preset or tune name.
    #[error("x264 has no preset {preset:?} with tune {tune:?}")]
    UnknownPreset {
        /// The preset asked for.
        preset: String,
        /// The tune asked for.
        tune: Option<String>,
    },
    /// x264 refused the profile for the other settings (for example interlacing with baseline).
    #[error("x264 cannot apply profile {0:?} to these settings")]
    Profile(crate::Profile),
    /// `x264_encoder_open` failed; the settings passed its parameter checks.
    #[error("x264 could not open an encoder for {width}x{height}")]
    Open {
        /// The configured width.
        width: u32,
        /// The configured height.
        height: u32,
    },
    /// A frame whose size differs from the configured one.
    #[error("frame is {got_width}x{got_height}, the encoder is configured for {width}x{height}")]
    FrameSize {
        /// The configured width.
        width: u32,
        /// The configured height.
        height: u32,
        /// The frame's width.
        got_width: u32,
        /// The frame's height.
        got_height: u32,
    },
    /// The frame's pixel format could not be converted to I420.
    #[error("cannot convert a {format} frame to I420 for the encoder: {source}")]
    Conversion {
        /// The frame's format.
        format: PixelFormat,
        /// Why the conversion failed.
        #[source]
        source: CaptureError,
    },
    /// `x264_encoder_encode` returned an error code.
    #[error("x264_encoder_encode failed with code {0}")]
    Encode(i32),
    /// The codec library returned a picture whose pts the encoder never sent, which would be a
    /// bug in the library or in this crate.
    #[error("the encoder returned a picture with pts {0}, which was never sent")]
    UnknownPts(i64),
    /// libvpx, through FFmpeg, failed or is missing: what the encoder was doing, and FFmpeg's
    /// reason (or the option it refused).
    #[error("VP8 encoder (FFmpeg's libvpx) failed {action}: {reason}")]
    Vp8 {
        /// What the encoder was doing: "opening the encoder", "encoding a frame", ...
        action: &'static str,
        /// FFmpeg's words.
        reason: String,
    },
    /// A frame was sent after [`Encoder::flush`](crate::Encoder::flush).
    #[error("the encoder was flushed; make a new one to encode more frames")]
    Flushed,
}
