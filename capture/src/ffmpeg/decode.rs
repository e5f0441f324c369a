//! [`FfmpegSource`]: a file or network stream decoded into I420 frames.

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::playback::{ffmpeg_error, init, open_context, stream_rate, Demux, Playback};
use super::FfmpegOptions;
use crate::{CaptureError, CaptureTime, Frame, PixelFormat, Plane, Source, SourceInfo};

/// A video file or network stream (`rtsp://`, `rtmp://`, `http(s)://`, `srt://`, `udp://`, …)
/// decoded by FFmpeg into I420 frames.
///
/// Frames come at the pace of the stream's timestamps; a file can loop without a jump in the
/// frame counter or the capture times, and a network stream that drops is reopened with
/// backoff while the source yields errors that say why.
///
/// ```no_run
/// use rtcgear_capture::ffmpeg::{FfmpegOptions, FfmpegSource};
/// use rtcgear_capture::Source;
///
/// let mut options = FfmpegOptions::default();
/// options.looping = true;
/// let source = FfmpegSource::open("clip.mp4", options)?;
/// println!("{:?}", source.info());
/// for frame in source.take(10) {
///     println!("frame {}", frame?.counter());
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct FfmpegSource {
    info: SourceInfo,
    playback: Playback<Input>,
    counter: u64,
}

/// One open input: the demuxer, the decoder and the conversion to I420.
struct Input {
    context: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream: usize,
    time_base: f64,
    scaler: Option<Scaler>,
    draining: bool,
}

impl Demux for Input {
    type Item = ff::frame::Video;

    fn open(
        target: &str,
        url: &str,
        network: bool,
        options: &FfmpegOptions,
    ) -> Result<Input, CaptureError> {
        decoding_input(open_context(target, url, network, options)?, url)
    }

    fn read(&mut self, url: &str) -> Result<Option<(ff::frame::Video, f64)>, CaptureError> {
        loop {
            let mut decoded = ff::frame::Video::empty();
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => {
                    let pts = decoded.timestamp().or(decoded.pts()).unwrap_or(0);
                    return Ok(Some((decoded, pts as f64 * self.time_base)));
                }
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::Other { errno }) if errno == libc_eagain() => {}
                Err(err) => return Err(ffmpeg_error("decoding", url, err)),
            }
            if self.draining {
                return Ok(None);
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.context) {
                Ok(()) => {
                    if packet.stream() == self.stream {
                        // A damaged packet costs a picture, not the stream.
                        if let Err(err) = self.decoder.send_packet(&packet) {
                            tracing::debug!("{url}: decoder refused a packet: {err}");
                        }
                    }
                }
                Err(ff::Error::Eof) => {
                    self.draining = true;
                    let _ = self.decoder.send_eof();
                }
                Err(err) => return Err(ffmpeg_error("reading", url, err)),
            }
        }
    }

    fn rewind(&mut self, url: &str) -> Result<(), CaptureError> {
        self.context
            .seek(0, ..)
            .map_err(|e| ffmpeg_error("seeking to the start", url, e))?;
        self.decoder.flush();
        self.draining = false;
        Ok(())
    }
}

/// FFmpeg's scaler, owned by one source.
pub(super) struct Scaler(scaling::Context);

// SAFETY: an SwsContext has no tie to the thread that made it; it is only unsafe to use from
// two threads at once, and a `Scaler` is owned by one `Input`, reached only through `&mut`.
unsafe impl Send for Scaler {}

impl std::fmt::Debug for FfmpegSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegSource")
            .field("url", &self.playback.url)
            .field("info", &self.info)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl FfmpegSource {
    /// Opens `url` (a path or a URL FFmpeg understands, or one the options' resolver turns
    /// into one) and finds its video stream.
    pub fn open(url: &str, options: FfmpegOptions) -> Result<FfmpegSource, CaptureError> {
        let (target, network) = init(url, &options)?;
        let context = open_context(&target, url, network, &options)?;
        FfmpegSource::from_context(url, options, network, context)
    }

    /// Decodes the video of an input already open (`url`, found a network stream or not by
    /// [`init`]).
    pub(super) fn from_context(
        url: &str,
        options: FfmpegOptions,
        network: bool,
        context: ff::format::context::Input,
    ) -> Result<FfmpegSource, CaptureError> {
        let input = decoding_input(context, url)?;
        let info = SourceInfo {
            width: even(input.decoder.width()),
            height: even(input.decoder.height()),
            format: PixelFormat::I420,
            fps: stream_rate(input.context.stream(input.stream)),
        };
        tracing::info!(
            "opened {url}: {}x{} {:?} at {} fps",
            info.width,
            info.height,
            input.decoder.id(),
            info.fps
        );
        Ok(FfmpegSource {
            info,
            playback: Playback::new(url, options, network, input, info.fps),
            counter: 0,
        })
    }

    /// The path or URL this source reads.
    pub fn url(&self) -> &str {
        &self.playback.url
    }

    /// Turns a decoded picture into an I420 [`Frame`] of `width` x `height`.
    fn convert(
        input: &mut Input,
        decoded: &ff::frame::Video,
        size: (u32, u32),
        url: &str,
    ) -> Result<Frame, CaptureError> {
        to_i420(&mut input.scaler, decoded, size, url)
    }
}

/// A decoded picture as an I420 [`Frame`] of `width` x `height`, converted (and scaled) by the
/// `scaler` kept in its slot for the next picture, unless it is I420 of that size already.
/// Errors name `url`.
pub(super) fn to_i420(
    scaler: &mut Option<Scaler>,
    decoded: &ff::frame::Video,
    (width, height): (u32, u32),
    url: &str,
) -> Result<Frame, CaptureError> {
    let direct = decoded.format() == Pixel::YUV420P
        && (decoded.width(), decoded.height()) == (width, height);
    let converted;
    let source = if direct {
        decoded
    } else {
        let scaler = match scaler {
            Some(Scaler(scaler))
                if scaler.input().format == decoded.format()
                    && (scaler.input().width, scaler.input().height)
                        == (decoded.width(), decoded.height()) =>
            {
                scaler
            }
            slot => {
                &mut slot
                    .insert(Scaler(
                        scaling::Context::get(
                            decoded.format(),
                            decoded.width(),
                            decoded.height(),
                            Pixel::YUV420P,
                            width,
                            height,
                            scaling::Flags::BILINEAR,
                        )
                        .map_err(|e| ffmpeg_error("setting up the conversion to I420", url, e))?,
                    ))
                    .0
            }
        };
        let mut out = ff::frame::Video::empty();
        scaler
            .run(decoded, &mut out)
            .map_err(|e| ffmpeg_error("converting to I420", url, e))?;
        converted = out;
        &converted
    };
    let mut planes = Vec::with_capacity(3);
    for index in 0..3 {
        let (row_bytes, rows) = PixelFormat::I420
            .plane_size(index, width, height)
            .unwrap_or((0, 0));
        let stride = source.stride(index);
        let data = source.data(index);
        let needed = stride * rows.saturating_sub(1) + row_bytes;
        let data = data.get(..needed).unwrap_or(data).to_vec();
        planes.push(Plane::new(data, stride, row_bytes, rows)?);
    }
    Frame::from_planes(width, height, PixelFormat::I420, planes)
}

impl Iterator for FfmpegSource {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let size = (self.info.width, self.info.height);
        let frame = self
            .playback
            .next(|input, decoded, url| FfmpegSource::convert(input, &decoded, size, url))?;
        Some(frame.map(|frame| {
            let frame = frame.with_meta(self.counter, CaptureTime::now());
            self.counter += 1;
            frame
        }))
    }
}

impl Source for FfmpegSource {
    fn info(&self) -> SourceInfo {
        self.info
    }
}

/// Finds the video stream of an open input and its decoder; errors name `url`.
fn decoding_input(context: ff::format::context::Input, url: &str) -> Result<Input, CaptureError> {
    let stream = context
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| CaptureError::InvalidArgument(format!("{url} has no video stream")))?;
    let index = stream.index();
    let tb = stream.time_base();
    let time_base = f64::from(tb.numerator()) / f64::from(tb.denominator().max(1));
    let mut codec = ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| ffmpeg_error("reading the stream's codec", url, e))?;
    // Slice threads decode each picture on every core without holding frames back, as frame
    // threads would: lower latency for live streams.
    codec.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Slice,
        count: 0,
        ..Default::default()
    });
    let decoder = codec
        .decoder()
        .video()
        .map_err(|e| ffmpeg_error("opening the decoder", url, e))?;
    if decoder.width() < 2 || decoder.height() < 2 {
        return Err(CaptureError::InvalidArgument(format!(
            "{url}: the video stream has no usable size ({}x{})",
            decoder.width(),
            decoder.height()
        )));
    }
    Ok(Input {
        context,
        decoder,
        stream: index,
        time_base,
        scaler: None,
        draining: false,
    })
}

/// The largest even number not above `side` (4:2:0 needs even sizes), at least 2.
pub(super) fn even(side: u32) -> u32 {
    (side & !1).max(2)
}

pub(super) fn libc_eagain() -> i32 {
    // EAGAIN on Linux; ffmpeg-next reports "try again" as Error::Other { errno: EAGAIN }.
    11
}
