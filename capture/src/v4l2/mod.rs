//! V4L2 cameras (feature `v4l2`, Linux): `/dev/videoN` through the `v4l` crate.
//!
//! [`V4l2Source`] negotiates a mode (pixel format, size, frame rate) from what the camera lists,
//! taking the nearest size and then the nearest rate when the exact ones are missing, and
//! memory-maps the driver's buffers. Raw formats (YUYV, NV12, YU12) become frames of the same
//! layout with one copy; MJPEG is decoded by `zune-jpeg` into RGB frames. Cameras with their
//! own H.264 encoder (UVC 1.5 cameras, some Logitech ones) are read by [`V4l2H264Source`],
//! whose access units are passed through to viewers without decoding. [`V4l2Source::list`]
//! lists the cameras with their modes ([`DeviceInfo`]).
//!
//! A camera that goes away mid-stream (unplugged, driver reset) makes the source yield an error
//! and then try to open it again, with a growing pause between tries (at most two seconds),
//! until it is back. Every call to `next` returns within about the frame timeout plus that
//! pause, so a caller can always show what is going on.
//!
//! The files, one job each: `list` (what [`V4l2Source::list`] finds), `negotiate` (the
//! formats and the choice of a mode), `link` (an open camera that is reopened when it comes
//! back), `raw` ([`V4l2Source`]), `h264` ([`V4l2H264Source`]) and `convert` (buffers into
//! frames).

mod convert;
mod h264;
mod link;
mod list;
mod negotiate;
mod raw;

pub use h264::V4l2H264Source;
pub use link::V4l2Options;
pub use list::{DeviceInfo, FormatInfo, SizeInfo};
pub use negotiate::V4l2Format;
pub use raw::V4l2Source;
