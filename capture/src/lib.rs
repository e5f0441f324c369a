//! The frame vocabulary of rtcgear and the sources that produce frames.
//!
//! Every other rtcgear crate speaks in the types defined here: a [`Frame`] is a picture with its
//! [`PixelFormat`], planes with strides, its number in the stream and its [`CaptureTime`]; a
//! [`Source`] is anything that yields frames one at a time.
#![deny(missing_docs)]

mod error;
mod frame;
mod source;

pub use error::CaptureError;
pub use frame::{packed_len, wall_clock_us, CaptureTime, Frame, PixelFormat, Plane};
pub use source::{FrameRate, Source, SourceInfo};
