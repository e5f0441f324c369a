//! The frame vocabulary of rtcgear and the sources that produce frames.
//!
//! Every other rtcgear crate speaks in the types defined here: a [`Frame`] is a picture with its
//! [`PixelFormat`], planes with strides, its number in the stream and its [`CaptureTime`]; a
//! [`Source`] is anything that yields frames one at a time.
#![deny(missing_docs)]

mod convert;
mod error;
mod frame;
mod pattern;
mod source;
mod stamp;

pub use error::CaptureError;
pub use frame::{packed_len, wall_clock_us, CaptureTime, Frame, PixelFormat, Plane};
pub use pattern::{TestPattern, TestPatternBuilder};
pub use source::{FrameRate, Source, SourceInfo};
pub use stamp::Stamp;
