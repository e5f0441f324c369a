use std::io;

/// What can go wrong making, converting or capturing frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// A size, stride or plane count that does not fit the pixel format.
    #[error("invalid frame geometry: {0}")]
    InvalidGeometry(String),
    /// A setting or argument that cannot be used, with the reason.
    #[error("{0}")]
    InvalidArgument(String),
    /// A pixel-format conversion or resize failed.
    #[error("cannot convert {from} to {to}: {reason}")]
    Conversion {
        /// The format converted from.
        from: crate::PixelFormat,
        /// The format converted to.
        to: crate::PixelFormat,
        /// What the converter said.
        reason: String,
    },
    /// A camera that cannot be used as asked: missing, busy, not a capture device, unplugged,
    /// or without a mode that fits.
    #[error("{path}: {reason}")]
    Device {
        /// The device, e.g. `/dev/video0`.
        path: String,
        /// What is wrong, in words for the user.
        reason: String,
    },
    /// Encoded video that cannot be passed through to browsers as it is (another codec,
    /// B-frames, a profile browsers do not decode), with the reason. Decoding and encoding
    /// again is the way round it.
    #[error("cannot pass through: {0}")]
    NotPassthrough(String),
    /// An I/O error from a device, file or child process.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
