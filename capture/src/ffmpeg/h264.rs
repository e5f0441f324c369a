//! [`FfmpegH264Source`]: H.264 passthrough from files and network streams: FFmpeg demuxes,
//! nothing decodes.

use ff::codec::Id;
use ffmpeg_next as ff;

use super::playback::{ffmpeg_error, init, open_context, stream_rate, Demux, Playback};
use super::{FfmpegOptions, FfmpegSource};
use crate::encoded::{AccessUnit, EncodedInfo, EncodedSource};
use crate::h264::{self, AvcConfig, ParameterSets};
use crate::{CaptureError, CaptureTime};

/// A file or network stream opened once by [`FfmpegH264Source::open_or_decode`]: passed
/// through, or decoded.
#[derive(Debug)]
pub enum FfmpegOpened {
    /// Its H.264 goes on as it is.
    Passthrough(FfmpegH264Source),
    /// Its pictures are decoded, for the reason given (why passthrough was refused).
    Decoded(FfmpegSource, String),
}

/// H.264 from a file or network stream, passed on as it is: access units in Annex B form, read
/// by FFmpeg's demuxers and never decoded, so serving it costs next to no CPU.
///
/// [`open`](Self::open) refuses ([`CaptureError::NotPassthrough`], with the reason) what
/// browsers could not play as it is: another codec, B-frames, a profile other than Baseline,
/// Main or High, a picture format other than 8-bit 4:2:0. [`FfmpegSource`]
/// decodes those instead.
///
/// It plays like `FfmpegSource`: at the pace of its timestamps, looping files on request, and
/// reopening network streams that drop. After opening or reopening, it starts at the first
/// keyframe.
///
/// ```no_run
/// use rtcgear_capture::ffmpeg::{FfmpegH264Source, FfmpegOptions};
/// use rtcgear_capture::{CaptureError, EncodedSource};
///
/// match FfmpegH264Source::open("clip.mp4", FfmpegOptions::default()) {
///     Ok(source) => {
///         println!("passing through {:?}", source.info().profile);
///         for unit in source.take(30) {
///             let unit = unit?;
///             println!("{} bytes, keyframe: {}", unit.data.len(), unit.keyframe);
///         }
///     }
///     Err(CaptureError::NotPassthrough(why)) => println!("decode it instead: {why}"),
///     Err(other) => return Err(other),
/// }
/// # Ok::<(), CaptureError>(())
/// ```
pub struct FfmpegH264Source {
    info: EncodedInfo,
    playback: Playback<Input>,
    counter: u64,
}

/// One open input: the demuxer and how to turn its packets into Annex B.
struct Input {
    context: ff::format::context::Input,
    stream: usize,
    time_base: f64,
    /// `Some` for MP4/Matroska-style length-prefixed packets; `None` when they are Annex B.
    avcc: Option<AvcConfig>,
    /// SPS and PPS from the stream's header (Annex B streams), put in front of keyframes that
    /// lack them in band.
    parameter_sets: ParameterSets,
    /// Whether a keyframe has been passed on since opening: until then pictures are dropped.
    started: bool,
    /// The last decoding timestamp read, to notice pictures that come out of order.
    last_dts: Option<i64>,
    info: EncodedInfo,
}

impl std::fmt::Debug for FfmpegH264Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegH264Source")
            .field("url", &self.playback.url)
            .field("info", &self.info)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl FfmpegH264Source {
    /// Opens `url` and checks that its video can be passed through as it is.
    pub fn open(url: &str, options: FfmpegOptions) -> Result<FfmpegH264Source, CaptureError> {
        let (target, network) = init(url, &options)?;
        let input = Input::open(&target, url, network, &options)?;
        Ok(FfmpegH264Source::from_input(url, options, network, input))
    }

    /// Opens `url` once and passes its H.264 through when [`open`](Self::open) would and
    /// `accept` agrees (it sees the stream's size, rate and profile, and gives a reason to
    /// refuse); otherwise decodes it from the same open input, as
    /// [`FfmpegSource`] does. A server that takes one client, or a start
    /// delay, is met once.
    ///
    /// ```no_run
    /// use rtcgear_capture::ffmpeg::{FfmpegH264Source, FfmpegOpened, FfmpegOptions};
    ///
    /// let opened = FfmpegH264Source::open_or_decode("clip.mp4", FfmpegOptions::default(), |info| {
    ///     if info.width > 1920 {
    ///         return Err(format!("{}x{} is too large to pass through", info.width, info.height));
    ///     }
    ///     Ok(())
    /// })?;
    /// match opened {
    ///     FfmpegOpened::Passthrough(source) => println!("passing through {source:?}"),
    ///     FfmpegOpened::Decoded(source, why) => println!("decoding {source:?}: {why}"),
    /// }
    /// # Ok::<(), rtcgear_capture::CaptureError>(())
    /// ```
    pub fn open_or_decode(
        url: &str,
        options: FfmpegOptions,
        accept: impl FnOnce(&EncodedInfo) -> Result<(), String>,
    ) -> Result<FfmpegOpened, CaptureError> {
        let (target, network) = init(url, &options)?;
        let context = open_context(&target, url, network, &options)?;
        let reason = match check(&context, url) {
            Ok(checked) => match accept(&checked.info) {
                Ok(()) => {
                    let input = checked.into_input(context);
                    let source = FfmpegH264Source::from_input(url, options, network, input);
                    return Ok(FfmpegOpened::Passthrough(source));
                }
                Err(reason) => reason,
            },
            Err(CaptureError::NotPassthrough(reason)) => reason,
            Err(other) => return Err(other),
        };
        let source = FfmpegSource::from_context(url, options, network, context)?;
        Ok(FfmpegOpened::Decoded(source, reason))
    }

    fn from_input(
        url: &str,
        options: FfmpegOptions,
        network: bool,
        input: Input,
    ) -> FfmpegH264Source {
        let info = input.info;
        tracing::info!(
            "{url}: passing H.264 through ({}x{}, {}, {} fps)",
            info.width,
            info.height,
            info.profile
                .map_or_else(|| "profile from the stream".into(), |p| p.to_string()),
            info.fps
        );
        FfmpegH264Source {
            info,
            playback: Playback::new(url, options, network, input, info.fps),
            counter: 0,
        }
    }

    /// The path or URL this source reads.
    pub fn url(&self) -> &str {
        &self.playback.url
    }
}

impl Demux for Input {
    type Item = (Vec<u8>, bool);

    /// Opens `target` and checks that its video stream can be passed through; errors name
    /// `url`.
    fn open(
        target: &str,
        url: &str,
        network: bool,
        options: &FfmpegOptions,
    ) -> Result<Input, CaptureError> {
        let context = open_context(target, url, network, options)?;
        Ok(check(&context, url)?.into_input(context))
    }

    /// The next access unit (and whether it is a keyframe) and its presentation time.
    fn read(&mut self, url: &str) -> Result<Option<((Vec<u8>, bool), f64)>, CaptureError> {
        // Bounded by the input: each round reads one packet.
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.context) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(None),
                Err(err) => return Err(ffmpeg_error("reading", url, err)),
            }
            if packet.stream() != self.stream {
                continue;
            }
            let Some(data) = packet.data().filter(|d| !d.is_empty()) else {
                continue;
            };
            if let (Some(dts), Some(pts)) = (packet.dts(), packet.pts()) {
                let reordered = pts < dts || self.last_dts.is_some_and(|last| pts < last);
                if reordered {
                    return Err(CaptureError::NotPassthrough(format!(
                        "{url}: pictures arrive out of order (B-frames), which browsers' WebRTC \
                         decoders do not expect"
                    )));
                }
                self.last_dts = Some(dts);
            }
            let unit = match &self.avcc {
                Some(avcc) => {
                    let mut unit = Vec::with_capacity(data.len() + 64);
                    avcc.to_annexb(data, &mut unit)?;
                    unit
                }
                None => self.parameter_sets.complete(data.to_vec()),
            };
            let keyframe = h264::is_keyframe(&unit);
            if !self.started {
                if !keyframe {
                    continue;
                }
                self.started = true;
            }
            let pts = packet.pts().or(packet.dts()).unwrap_or(0);
            return Ok(Some(((unit, keyframe), pts as f64 * self.time_base)));
        }
    }

    fn rewind(&mut self, url: &str) -> Result<(), CaptureError> {
        self.context
            .seek(0, ..)
            .map_err(|e| ffmpeg_error("seeking to the start", url, e))?;
        self.started = false;
        self.last_dts = None;
        Ok(())
    }
}

impl Iterator for FfmpegH264Source {
    type Item = Result<AccessUnit, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let unit = self.playback.next(|input, (data, keyframe), url| {
            // A reopened stream may have changed size.
            if (input.info.width, input.info.height) != (self.info.width, self.info.height) {
                tracing::info!(
                    "{url}: the stream is now {}x{}",
                    input.info.width,
                    input.info.height
                );
                self.info = input.info;
            }
            Ok(AccessUnit::h264(
                data,
                keyframe,
                self.counter,
                CaptureTime::now(),
            ))
        })?;
        if unit.is_ok() {
            self.counter += 1;
        }
        Some(unit)
    }
}

impl EncodedSource for FfmpegH264Source {
    fn info(&self) -> EncodedInfo {
        self.info
    }
}

/// What [`check`] found out about an input that can be passed through.
struct Checked {
    stream: usize,
    time_base: f64,
    avcc: Option<AvcConfig>,
    parameter_sets: ParameterSets,
    info: EncodedInfo,
}

impl Checked {
    fn into_input(self, context: ff::format::context::Input) -> Input {
        Input {
            context,
            stream: self.stream,
            time_base: self.time_base,
            avcc: self.avcc,
            parameter_sets: self.parameter_sets,
            started: false,
            last_dts: None,
            info: self.info,
        }
    }
}

/// Checks that the video stream of an open input can be passed through
/// ([`CaptureError::NotPassthrough`] says why not); errors name `url`.
fn check(context: &ff::format::context::Input, url: &str) -> Result<Checked, CaptureError> {
    let stream = context
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| CaptureError::InvalidArgument(format!("{url} has no video stream")))?;
    let refuse = |why: String| Err(CaptureError::NotPassthrough(format!("{url}: {why}")));
    let parameters = stream.parameters();
    if parameters.id() != Id::H264 {
        return refuse(format!("the video is {:?}, not H.264", parameters.id()));
    }
    // SAFETY: `parameters` points at the stream's live AVCodecParameters, which the open
    // context owns and keeps for as long as `stream` borrows it; only plain fields are read,
    // and the extradata slice is copied before the borrow ends.
    let (width, height, format, video_delay, extradata) = unsafe {
        let p = &*parameters.as_ptr();
        let extradata = if p.extradata.is_null() || p.extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p.extradata, p.extradata_size as usize).to_vec()
        };
        (p.width, p.height, p.format, p.video_delay, extradata)
    };
    if video_delay > 0 {
        return refuse(format!(
            "it has B-frames (a reorder delay of {video_delay}), which browsers' WebRTC \
             decoders do not expect"
        ));
    }
    let yuv420p = ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
    let yuvj420p = ff::ffi::AVPixelFormat::AV_PIX_FMT_YUVJ420P as i32;
    if format >= 0 && format != yuv420p && format != yuvj420p {
        let named = ff::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|codec| codec.decoder().video())
            .map(|decoder| format!("{:?}", decoder.format()))
            .unwrap_or_else(|_| format!("pixel format {format}"));
        return refuse(format!("its pictures are {named}, not 8-bit 4:2:0"));
    }
    let (avcc, parameter_sets, profile) = if extradata.first() == Some(&1) {
        let avcc = AvcConfig::parse(&extradata)?;
        let profile = avcc.profile();
        (Some(avcc), ParameterSets::default(), profile)
    } else {
        let sets = ParameterSets::from_annexb(&extradata);
        let profile = sets.profile();
        (None, sets, profile)
    };
    if let Some(profile) = profile {
        if !profile.browsers_decode() {
            return refuse(format!("browsers do not decode its profile, {profile}"));
        }
    }
    if width < 2 || height < 2 {
        return refuse(format!("the video has no usable size ({width}x{height})"));
    }
    let index = stream.index();
    let tb = stream.time_base();
    let time_base = f64::from(tb.numerator()) / f64::from(tb.denominator().max(1));
    let info = EncodedInfo {
        width: width as u32,
        height: height as u32,
        fps: stream_rate(Some(stream)),
        profile,
    };
    Ok(Checked {
        stream: index,
        time_base,
        avcc,
        parameter_sets,
        info,
    })
}
