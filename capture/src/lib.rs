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
//! - [`SourceSpec`] parses the one source string (`test`, a camera, a file, a URL), and [`open`]
//!   opens it as `rtcgear serve --source` does (passed through or decoded, with
//!   [`OpenOptions`]' hints), and says whether it is live ([`Opened`]);
//! - video that is H.264 already can skip decoding and encoding: an [`EncodedSource`] yields
//!   [`AccessUnit`]s, and [`h264`] has the bitstream helpers;
//! - [`Stamp`] paints and reads the timestamp barcode from which any receiver measures latency
//!   and loss.
//!
//! The sources of real video are modules, each behind its cargo feature:
//!
//! - `ffmpeg` (feature `ffmpeg`): files and network streams through FFmpeg's libraries, decoded
//!   (`ffmpeg::FfmpegSource`) or passed through (`ffmpeg::FfmpegH264Source`, whose
//!   `open_or_decode` opens one once and decodes it when it cannot be passed through);
//! - `v4l2` (feature `v4l2`, Linux): cameras, their raw or MJPEG pictures
//!   (`v4l2::V4l2Source`, which also lists the cameras) or their own H.264
//!   (`v4l2::V4l2H264Source`);
//! - `rpicam` (feature `rpicam`, Unix): Raspberry Pi cameras through `rpicam-vid`, raw
//!   (`rpicam::RpicamSource`) or the hardware encoder's H.264 (`rpicam::RpicamH264Source`);
//! - [`ytdlp`]: a video site's page resolved to its media stream by `yt-dlp`, as [`open`] does.
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
pub mod rpicam;
mod source;
mod spec;
mod stamp;
mod transform;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;
pub mod ytdlp;

pub use encoded::{AccessUnit, Bytes, Codec, EncodedInfo, EncodedSource};
pub use error::CaptureError;
pub use frame::{packed_len, wall_clock_us, CaptureTime, Frame, PixelFormat, Plane};
pub use open::{open, OpenOptions, Opened, OpenedSource, PiCodec};
pub use pattern::{TestPattern, TestPatternBuilder};
pub use source::{FrameRate, Source, SourceInfo};
pub use spec::{SourceSpec, NETWORK_SCHEMES};
pub use stamp::Stamp;
pub use transform::{Grayscale, MapFrames, Resize, SourceExt, Transform, Transformed};
