//! Video that arrives already encoded: H.264 access units from a file, a network stream or a
//! camera's own encoder, to pass through to viewers without decoding and encoding again.

use crate::h264::H264Profile;
use crate::{CaptureError, CaptureTime, FrameRate};

/// One encoded picture: an H.264 access unit in Annex B form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL units behind start codes. Every IDR picture carries its SPS and PPS in front.
    pub data: Vec<u8>,
    /// Whether this is an IDR picture, from which a decoder can start.
    pub keyframe: bool,
    /// The picture's number in the stream, from 0.
    pub counter: u64,
    /// When the picture is due (paced sources) or arrived (live ones).
    pub time: CaptureTime,
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
/// let unit = AccessUnit { data: vec![0, 0, 0, 1, 0x65, 0x88], keyframe: true, counter: 0, time: CaptureTime::now() };
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
