//! Real-time video stabilization for rtcgear: vidgear's Stabilizer, steadier and faster.
//!
//! # The model
//!
//! For every frame the [`Stabilizer`]:
//!
//! 1. scales the luma plane down to at most [`StabilizerConfig::tracking_width`] pixels wide
//!    (by a power of two) and builds a pyramid of it;
//! 2. tracks the previous frame's corners (FAST, the strongest in each cell of a grid, from
//!    `imageproc`) into this frame with a pyramidal Lucas-Kanade optical flow, and back again,
//!    dropping every point that does not return to where it started;
//! 3. fits the inter-frame similarity (shift and rotation, optionally zoom) with RANSAC and a
//!    least-squares refit over the inliers;
//! 4. checks that the fit can be trusted (enough agreeing points, spread over the picture, a
//!    tight fit, a plausible size). If not (a flat or low-texture frame, a scene cut) it takes
//!    the motion as none and says why in a `trace` log: warping by a wrong estimate makes video
//!    shakier than leaving it alone, which is what vidgear does on low-texture scenes;
//! 5. adds the motion to the camera path and smooths the path, by default with vidgear's moving
//!    average over [`StabilizerConfig::smoothing_radius`] frames either side (so output lags by
//!    that many frames), or with [`Smoothing::Causal`], a filter without look-ahead for live
//!    streams;
//! 6. warps all three I420 planes from the actual pose to the smoothed one in a single bilinear
//!    pass, with vidgear's border options (border size, crop-and-zoom, border type).
//!
//! Frames of another pixel format are converted to I420. A frame of a new size releases the
//! frames held for look-ahead and starts a new path. Nothing here panics on odd input.
//!
//! The API has the encoder's send/receive shape ([`Stabilizer::send_frame`],
//! [`Stabilizer::receive_frame`], [`Stabilizer::flush`]), because the moving average needs
//! frames from the future; [`Stabilized`] wraps any [`Source`](rtcgear_capture::Source) in it.
//!
//! # Example
//!
//! ```
//! use rtcgear_capture::{Source, TestPattern};
//! use rtcgear_stabilize::{Stabilizer, StabilizerConfig, Stabilized};
//!
//! // Send/receive: frames come out `smoothing_radius` frames late, the rest at `flush`.
//! let mut stabilizer = Stabilizer::new(StabilizerConfig::new().smoothing_radius(5))?;
//! let source = TestPattern::builder().size(320, 240).paced(false).frames(12).build()?;
//! let mut out = Vec::new();
//! for frame in source {
//!     stabilizer.send_frame(frame?)?;
//!     while let Some(frame) = stabilizer.receive_frame() {
//!         out.push(frame);
//!     }
//! }
//! assert_eq!(out.len(), 12 - 5);
//! stabilizer.flush();
//! while let Some(frame) = stabilizer.receive_frame() {
//!     out.push(frame);
//! }
//! assert_eq!(out.len(), 12);
//! assert!(out.iter().enumerate().all(|(i, frame)| frame.counter() == i as u64));
//!
//! // As a source adapter: the same, in one line.
//! let source = TestPattern::builder().size(320, 240).paced(false).frames(12).build()?;
//! let stabilized = Stabilized::new(source, StabilizerConfig::new().border_size(8))?;
//! assert_eq!((stabilized.info().width, stabilized.info().height), (336, 256));
//! assert_eq!(stabilized.count(), 12);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod motion;
mod source;
mod stabilizer;
mod track;
mod warp;

pub use config::{BorderType, Smoothing, StabilizerConfig};
pub use error::StabilizeError;
pub use source::Stabilized;
pub use stabilizer::{Motion, Stabilizer, Stats};

#[cfg(test)]
mod tests;
