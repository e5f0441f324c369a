//! The frame vocabulary of rtcgear and the sources that produce frames.
//!
//! Every other rtcgear crate speaks in the types defined here, and this crate depends on none of
//! them:
//!
//! - a [`Frame`] is a picture: its size, its [`PixelFormat`], planes with strides, its number in
//!   the stream and its [`CaptureTime`] (wall clock for latency, monotonic instant for pacing);
//! - a [`Source`] yields frames one at a time, as an iterator of `Result<Frame, CaptureError>`;
//!   the built-in [`TestPattern`] is one, and you can write your own (see [`Source`]);
//! - [`SourceExt`] adds transforms to any source: [`SourceExt::scale`], [`SourceExt::resize`],
//!   [`SourceExt::grayscale`] and your own closures with [`SourceExt::map_frames`];
//! - [`Frame::to_format`] converts between pixel formats through SIMD kernels;
//! - [`SourceSpec`] parses the one source string (`test`, a camera, a file, a URL), [`open`]
//!   opens it as `rtcgear serve --source` does (passed through or decoded, with
//!   [`OpenOptions`]' hints), and with
//!   the `ffmpeg` feature `FfmpegSource` plays files and network streams, and with the `v4l2`
//!   feature (Linux) `V4l2Source` captures from cameras and lists them, and with the `rpicam`
//!   feature `RpicamSource` and `RpicamH264Source` run Raspberry Pi cameras through
//!   `rpicam-vid`;
//! - video that is H.264 already can skip decoding and encoding: an [`EncodedSource`] yields
//!   [`AccessUnit`]s (with the `ffmpeg` feature, `FfmpegH264Source` passes files and network
//!   streams through, and its `open_or_decode` opens one once and decodes it when it cannot be
//!   passed through; with `v4l2`, `V4l2H264Source` passes through the H.264 of cameras that
//!   encode it themselves), and [`h264`] has the bitstream helpers;
//! - [`Stamp`] paints and reads the timestamp barcode from which any receiver measures latency
//!   and loss.
//!
//! I420 is the pipeline's native format: the encoder takes it as it is, and every other format
//! converts to it.
//!
//! ```
//! use rtcgear_capture::{PixelFormat, Source, SourceExt, Stamp, TestPattern};
//!
//! // The test pattern at 1280x720, reduced to half size, three frames, as fast as possible.
//! let source = TestPattern::builder()
//!     .size(1280, 720)
//!     .paced(false)
//!     .frames(3)
//!     .build()?
//!     .scale(50);
//! assert_eq!(source.info().width, 640);
//! for frame in source {
//!     let frame = frame?;
//!     assert_eq!(frame.format(), PixelFormat::I420);
//!     let stamp = Stamp::read(&frame).expect("the stamp survives scaling");
//!     assert_eq!(u64::from(stamp.counter), frame.counter());
//! }
//! # Ok::<(), rtcgear_capture::CaptureError>(())
//! ```
#![deny(missing_docs)]

mod convert;
mod encoded;
mod error;
#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
mod frame;
pub mod h264;
mod open;
mod pattern;
#[cfg(all(feature = "rpicam", unix))]
mod rpicam;
mod source;
mod spec;
mod stamp;
mod transform;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;
mod ytdlp;

pub use encoded::{AccessUnit, EncodedInfo, EncodedSource};
pub use error::CaptureError;
#[cfg(feature = "ffmpeg")]
pub use ffmpeg::{FfmpegH264Source, FfmpegOpened, FfmpegOptions, FfmpegSource, UrlResolver};
pub use frame::{packed_len, wall_clock_us, CaptureTime, Frame, PixelFormat, Plane};
pub use open::{open, OpenOptions, OpenedSource, PiCodec};
pub use pattern::{TestPattern, TestPatternBuilder};
#[cfg(all(feature = "rpicam", unix))]
pub use rpicam::{
    has_hardware_h264, RpicamH264Source, RpicamOptions, RpicamSource, RPICAM_VID_ENV,
};
pub use source::{FrameRate, Source, SourceInfo};
pub use spec::{SourceSpec, NETWORK_SCHEMES};
pub use stamp::Stamp;
pub use transform::{Grayscale, MapFrames, Resize, SourceExt, Transform, Transformed};
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub use v4l2::{
    DeviceInfo, FormatInfo, SizeInfo, V4l2Format, V4l2H264Source, V4l2Options, V4l2Source,
};
pub use ytdlp::{
    format_selector, is_streaming_site, resolve_with_ytdlp, STREAMING_SITES, YT_DLP_ENV,
};
