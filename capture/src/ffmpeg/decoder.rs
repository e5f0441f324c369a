//! [`H264Decoder`]: H.264 access units (as passthrough sources deliver them) back to pictures.

use ff::codec::Id;
use ffmpeg_next as ff;

use super::decode::{even, libc_eagain, to_i420, Scaler};
use super::playback::ffmpeg_error;
use crate::h264;
use crate::{AccessUnit, CaptureError, Codec, Frame};

/// What the decoder's errors name: there is no URL.
const WHAT: &str = "(H.264 access units)";

/// Decodes H.264 access units (Annex B, as [`AccessUnit`]s of passthrough sources carry them)
/// into I420 frames, each with the counter and capture time of the unit it came from.
///
/// For a stream passed through as it came that must also be encoded again, in another codec
/// for a viewer that cannot take H.264: pictures come out as units go in, without frames held
/// back (slice threads only), and decoding starts at the first keyframe; units before it give
/// nothing.
///
/// ```no_run
/// use rtcgear_capture::ffmpeg::{FfmpegH264Source, FfmpegOptions, H264Decoder};
///
/// let source = FfmpegH264Source::open("clip.mp4", FfmpegOptions::default())?;
/// let mut decoder = H264Decoder::new()?;
/// for unit in source.take(30) {
///     if let Some(frame) = decoder.decode(&unit?)? {
///         println!("picture {} is {}x{}", frame.counter(), frame.width(), frame.height());
///     }
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct H264Decoder {
    decoder: ff::decoder::Video,
    scaler: Option<Scaler>,
    /// A keyframe has gone in: what follows decodes.
    started: bool,
    /// Counter and capture time of the units in flight, oldest first: a picture finds its
    /// unit by the counter it carries as its timestamp (pictures may come out in another
    /// order than units went in, with B-frames).
    pending: std::collections::VecDeque<(u64, crate::CaptureTime)>,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder for FFmpeg's H.264 decoder.
    pub fn new() -> Result<H264Decoder, CaptureError> {
        ff::init().map_err(|e| ffmpeg_error("initialising FFmpeg for", WHAT, e))?;
        let codec = ff::decoder::find(Id::H264).ok_or_else(|| CaptureError::Io {
            context: "finding FFmpeg's H.264 decoder".into(),
            source: std::io::Error::other("this FFmpeg has no H.264 decoder"),
        })?;
        let mut context = ff::codec::context::Context::new_with_codec(codec);
        context.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Slice,
            count: 0,
            ..Default::default()
        });
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| ffmpeg_error("opening the H.264 decoder for", WHAT, e))?;
        Ok(H264Decoder {
            decoder,
            scaler: None,
            started: false,
            pending: std::collections::VecDeque::new(),
        })
    }

    /// Decodes one access unit; the picture it completes, if any. A unit of another codec is
    /// an error; a broken one is skipped (the next keyframe mends the picture).
    pub fn decode(&mut self, unit: &AccessUnit) -> Result<Option<Frame>, CaptureError> {
        if unit.codec != Codec::H264 {
            return Err(CaptureError::InvalidArgument(format!(
                "the H.264 decoder was given {}",
                unit.codec
            )));
        }
        if !self.started {
            if !(unit.keyframe || h264::is_keyframe(&unit.data)) {
                return Ok(None);
            }
            self.started = true;
        }
        let mut packet = ff::Packet::copy(&unit.data);
        packet.set_pts(i64::try_from(unit.counter).ok());
        packet.set_dts(None);
        if let Err(err) = self.decoder.send_packet(&packet) {
            tracing::debug!("H.264 decoder refused an access unit: {err}");
            return Ok(None);
        }
        self.pending.push_back((unit.counter, unit.time));
        // At most a handful; bounded so a confused decoder cannot grow it.
        while self.pending.len() > 16 {
            self.pending.pop_front();
        }
        let mut decoded = ff::frame::Video::empty();
        match self.decoder.receive_frame(&mut decoded) {
            Ok(()) => {
                let counter = decoded
                    .timestamp()
                    .or(decoded.pts())
                    .and_then(|pts| u64::try_from(pts).ok());
                let found = match counter {
                    Some(counter) => self.pending.iter().position(|&(c, _)| c == counter),
                    None => (!self.pending.is_empty()).then_some(0),
                };
                let Some((counter, time)) = found.and_then(|i| self.pending.remove(i)) else {
                    return Ok(None);
                };
                let size = (even(decoded.width()), even(decoded.height()));
                let frame = to_i420(&mut self.scaler, &decoded, size, WHAT)?;
                Ok(Some(frame.with_meta(counter, time)))
            }
            Err(ff::Error::Other { errno }) if errno == libc_eagain() => Ok(None),
            Err(err) => {
                tracing::debug!("H.264 decoder: {err}");
                Ok(None)
            }
        }
    }
}
