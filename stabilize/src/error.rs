//! The crate's error type.

use rtcgear_capture::CaptureError;

/// What can go wrong configuring or feeding a [`Stabilizer`](crate::Stabilizer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StabilizeError {
    /// A setting that cannot be used, with the reason.
    #[error("invalid stabilizer setting: {0}")]
    InvalidConfig(String),
    /// A frame could not be converted to I420 or a new frame could not be made.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}
