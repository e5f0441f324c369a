//! Encoded video: the access unit every crate hands on (capture's passthrough sources, the
//! encoder, the broadcast), and the sources whose video arrives already encoded (H.264 from a
//! file, a network stream or a camera's own encoder), to pass through to viewers without
//! decoding and encoding again.

use std::fmt;

pub use bytes::Bytes;

use crate::h264::H264Profile;
use crate::{CaptureError, CaptureTime, FrameRate};

/// The codec of an [`AccessUnit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 (AVC) in Annex B form: NAL units behind start codes; see [`crate::h264`].
    H264,
    /// VP8 (RFC 6386): one compressed frame per access unit, as libvpx writes it, with no
    /// container around it; a key frame is one whose frame tag has bit 0 clear.
    Vp8,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::H264 => f.write_str("H.264"),
            Codec::Vp8 => f.write_str("VP8"),
        }
    }
}

/// One encoded picture, as a source, an encoder and a broadcast all see it.
///
/// The bytes are shared ([`Bytes`]): cloning a unit, for a cache or a second consumer, copies
/// no picture data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// The encoded picture. For [`Codec::H264`], NAL units behind start codes, and every IDR
    /// picture carries its SPS and PPS in front.
    pub data: Bytes,
    /// Whether a decoder can start on this picture (for H.264, an IDR picture).
    pub keyframe: bool,
    /// The picture's number in the stream, from 0: a source's count, or for an encoder the
    /// [`Frame::counter`](crate::Frame::counter) of the frame it was encoded from.
    pub counter: u64,
    /// When the picture was captured: due (paced sources), arrived (live ones), or the capture
    /// time of the frame it was encoded from.
    pub time: CaptureTime,
    /// How `data` is encoded.
    pub codec: Codec,
}

impl AccessUnit {
    /// An H.264 access unit in Annex B form; `keyframe` says whether it is an IDR picture
    /// (see [`h264::is_keyframe`](crate::h264::is_keyframe) when the producer does not know).
    pub fn h264(
        data: impl Into<Bytes>,
        keyframe: bool,
        counter: u64,
        time: CaptureTime,
    ) -> AccessUnit {
        AccessUnit {
            data: data.into(),
            keyframe,
            counter,
            time,
            codec: Codec::H264,
        }
    }
}

/// What an [`EncodedSource`] delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedInfo {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// The nominal frame rate.
    pub fps: FrameRate,
    /// The H.264 profile and level from the stream's SPS, when known before the first picture.
    pub profile: Option<H264Profile>,
}

/// A producer of H.264 access units: the encoded counterpart of [`Source`](crate::Source).
///
/// Each call to `next` blocks until the next picture is due. Pictures are in decoding order,
/// which for passthrough is also display order: a stream with B-frames is not passed through
/// (browsers' WebRTC decoders expect none), so sources refuse it when they open.
///
/// ```
/// use rtcgear_capture::{AccessUnit, CaptureError, CaptureTime, EncodedInfo, EncodedSource, FrameRate};
///
/// /// Access units from memory, e.g. recorded earlier.
/// struct Replay(std::vec::IntoIter<AccessUnit>);
///
/// impl Iterator for Replay {
///     type Item = Result<AccessUnit, CaptureError>;
///     fn next(&mut self) -> Option<Self::Item> {
///         self.0.next().map(Ok)
///     }
/// }
///
/// impl EncodedSource for Replay {
///     fn info(&self) -> EncodedInfo {
///         EncodedInfo { width: 640, height: 480, fps: FrameRate::from_int(30).unwrap(), profile: None }
///     }
/// }
///
/// let unit = AccessUnit::h264(vec![0, 0, 0, 1, 0x65, 0x88], true, 0, CaptureTime::now());
/// let mut replay = Replay(vec![unit].into_iter());
/// assert_eq!(replay.info().width, 640);
/// assert!(replay.next().unwrap()?.keyframe);
/// # Ok::<(), CaptureError>(())
/// ```
pub trait EncodedSource: Iterator<Item = Result<AccessUnit, CaptureError>> + Send {
    /// The size, rate and profile of the stream.
    fn info(&self) -> EncodedInfo;
}

impl<S: EncodedSource + ?Sized> EncodedSource for Box<S> {
    fn info(&self) -> EncodedInfo {
        (**self).info()
    }
}
