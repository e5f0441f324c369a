//! One call from a source string to a source, as `rtcgear serve --source` opens it.

use std::time::Duration;

use crate::{CaptureError, EncodedSource, FrameRate, Source, SourceExt, SourceSpec, TestPattern};

/// What [`open`] made of a source string: the source, and whether it is live.
#[derive(Debug)]
#[non_exhaustive]
pub struct Opened {
    /// The source: pictures to encode, or H.264 to pass through.
    pub source: OpenedSource,
    /// Whether the source is live: a network stream or a camera, whose pictures come whether
    /// or not anyone reads them. `rtcgear serve` keeps reading a live source while nobody
    /// watches (and drops its frames unencoded), so the first viewer sees the present rather
    /// than what queued up meanwhile; the test pattern and files are not live, and can pause.
    pub live: bool,
}

/// The source [`open`] made: pictures or H.264 (see [`Opened`]).
pub enum OpenedSource {
    /// Pictures, to be encoded.
    Frames(Box<dyn Source>),
    /// H.264 that browsers play as it is, passed through without decoding.
    Encoded(Box<dyn EncodedSource>),
}

impl std::fmt::Debug for OpenedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenedSource::Frames(source) => f.debug_tuple("Frames").field(&source.info()).finish(),
            OpenedSource::Encoded(source) => {
                f.debug_tuple("Encoded").field(&source.info()).finish()
            }
        }
    }
}

/// How a Raspberry Pi camera's video is had (see [`OpenOptions::pi_codec`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PiCodec {
    /// The Pi's hardware H.264 encoder where the model has one (Pi 4, 3, Zero 2), passed
    /// through; raw frames elsewhere (Pi 5).
    #[default]
    Auto,
    /// The hardware encoder's H.264, passed through.
    H264,
    /// Raw YUV 4:2:0 frames, encoded here.
    Yuv420,
}

/// How [`open`] opens a source: the hints and choices that `rtcgear serve` takes as flags.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The picture size. The test pattern and Pi cameras are made at it (default 1280x720); a
    /// V4L2 camera takes its nearest mode; any other size is resized to it. H.264 whose size
    /// differs is decoded rather than passed through.
    pub size: Option<(u32, u32)>,
    /// Frames a second: the test pattern's, and a hint to cameras (default 30).
    pub fps: u32,
    /// A V4L2 camera's capture format (`yuyv`, `nv12`, `yu12`, `mjpeg`, or `h264` to pass the
    /// camera's own H.264 through); `None` lets the camera pick. Only cameras take one.
    pub camera_format: Option<String>,
    /// Grey pictures (vidgear's `colorspace`); they must be decoded.
    pub gray: bool,
    /// Why the pictures are needed even where H.264 could be passed through (a transcode asked
    /// for, a stabilizer): `Some(reason)` decodes, and the log gives the reason.
    pub decode_reason: Option<String>,
    /// The encoding bitrate in kbit/s, when one is set: a Pi camera's hardware encoder takes it;
    /// any other H.264 is then decoded, to be encoded at that rate.
    pub bitrate_kbps: Option<u32>,
    /// Play a file again from the start at its end, forever.
    pub looping: bool,
    /// Wait this long before opening a file or network stream (vidgear's `time_delay`).
    pub start_delay: Duration,
    /// Resolve a URL to its media stream with `yt-dlp` even when it is not a known video site
    /// (vidgear's `stream_mode`); known sites' pages are resolved always.
    pub stream_mode: bool,
    /// How a Raspberry Pi camera's video is had.
    pub pi_codec: PiCodec,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            size: None,
            fps: 30,
            camera_format: None,
            gray: false,
            decode_reason: None,
            bitrate_kbps: None,
            looping: false,
            start_delay: Duration::ZERO,
            stream_mode: false,
            pi_codec: PiCodec::Auto,
        }
    }
}

impl OpenOptions {
    /// Why H.264 must be decoded rather than passed through, if it must; the Pi's hardware
    /// encoder takes a bitrate itself, so `with_bitrate` is false for it.
    #[cfg_attr(
        not(any(feature = "ffmpeg", feature = "v4l2", feature = "rpicam")),
        allow(dead_code)
    )]
    fn decode_reason(&self, with_bitrate: bool) -> Option<String> {
        if let Some(reason) = &self.decode_reason {
            Some(reason.clone())
        } else if self.gray {
            Some("grey pictures need decoding".into())
        } else {
            self.bitrate_kbps
                .filter(|_| with_bitrate)
                .map(|kbps| format!("an encoding rate is set ({kbps} kbit/s)"))
        }
    }
}

/// Opens what a source string names, as `rtcgear serve --source` does, and says whether it is
/// live ([`Opened::live`]: a network stream or a camera, to keep reading while nobody watches).
///
/// The test pattern, a V4L2 camera (`0`, `/dev/video0`), a Raspberry Pi camera (`pi:0`), a
/// file, a network stream URL, or a video site's page (resolved by `yt-dlp`). H.264 that
/// browsers play as it is comes back [`OpenedSource::Encoded`], to pass through, unless the
/// options need the pictures; everything else comes back as frames, resized and greyed as
/// asked. The log says which path was taken and why. Kinds of source this build lacks the
/// feature for (`ffmpeg`, `v4l2`, `rpicam`) are refused with the feature's name.
///
/// ```
/// use rtcgear_capture::{open, OpenOptions, OpenedSource, SourceSpec};
///
/// let mut options = OpenOptions::default();
/// options.size = Some((640, 360));
/// let opened = open(&"test".parse::<SourceSpec>()?, &options)?;
/// assert!(!opened.live);
/// match opened.source {
///     OpenedSource::Frames(source) => assert_eq!(source.info().width, 640),
///     OpenedSource::Encoded(_) => unreachable!("the test pattern is pictures"),
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub fn open(spec: &SourceSpec, options: &OpenOptions) -> Result<Opened, CaptureError> {
    // A camera is live too: reading it while idle keeps its queued frames fresh.
    let live = matches!(
        spec,
        SourceSpec::Url(_) | SourceSpec::Camera(_) | SourceSpec::PiCamera(_)
    );
    if let Some(format) = &options.camera_format {
        if !matches!(spec, SourceSpec::Camera(_)) {
            return Err(CaptureError::InvalidArgument(format!(
                "{spec}: a capture format ({format}) applies to V4L2 cameras only"
            )));
        }
    }
    let opened = |source| Opened { source, live };
    let source: Box<dyn Source> = match spec {
        SourceSpec::TestPattern => {
            let (width, height) = options.size.unwrap_or((1280, 720));
            let fps = FrameRate::from_int(options.fps).ok_or_else(|| {
                CaptureError::InvalidArgument("the frame rate must be above 0".into())
            })?;
            Box::new(TestPattern::new(width, height, fps)?)
        }
        SourceSpec::File(path) => {
            if !path.is_file() {
                return Err(CaptureError::InvalidArgument(format!(
                    "{}: no such file",
                    path.display()
                )));
            }
            let path = path.to_str().ok_or_else(|| {
                CaptureError::InvalidArgument(format!("{}: the path is not UTF-8", path.display()))
            })?;
            match media::open(path, options, None)? {
                OpenedSource::Frames(frames) => frames,
                encoded => return Ok(opened(encoded)),
            }
        }
        SourceSpec::Url(url) => {
            let ytdlp = if options.stream_mode || crate::ytdlp::is_streaming_site(url) {
                Some(media::YtDlp::first(
                    url,
                    options.size.map(|(_, height)| height),
                )?)
            } else {
                None
            };
            match media::open(url, options, ytdlp.as_ref())? {
                OpenedSource::Frames(frames) => frames,
                encoded => return Ok(opened(encoded)),
            }
        }
        SourceSpec::Camera(path) => match camera::open(path, options)? {
            OpenedSource::Frames(frames) => frames,
            encoded => return Ok(opened(encoded)),
        },
        SourceSpec::PiCamera(number) => match pi::open(*number, options)? {
            OpenedSource::Frames(frames) => frames,
            encoded => return Ok(opened(encoded)),
        },
    };
    let info = source.info();
    let source = match options.size {
        Some((width, height)) if (info.width, info.height) != (width, height) => {
            Box::new(source.resize(width, height))
        }
        _ => source,
    };
    let source: Box<dyn Source> = if options.gray {
        Box::new(source.grayscale())
    } else {
        source
    };
    Ok(opened(OpenedSource::Frames(source)))
}

/// "built without the `feature` feature", for kinds of source this build cannot open.
#[allow(dead_code)]
fn missing_feature(what: &str, feature: &str) -> CaptureError {
    CaptureError::InvalidArgument(format!(
        "{what}: this build of rtcgear-capture lacks the `{feature}` feature"
    ))
}

/// Files and network streams.
#[cfg(feature = "ffmpeg")]
mod media {
    use std::time::Duration;

    use super::{OpenOptions, OpenedSource};
    use crate::ffmpeg::{FfmpegH264Source, FfmpegOpened, FfmpegOptions, FfmpegSource, UrlResolver};
    use crate::ytdlp::resolve_with_ytdlp;
    use crate::{CaptureError, EncodedSource};

    /// How long yt-dlp may take to resolve a page.
    const YT_DLP_LIMIT: Duration = Duration::from_secs(60);

    /// A video site's page that yt-dlp resolved at start. Its media URLs expire after some
    /// hours, so every reopen of a stream that dropped asks yt-dlp again.
    pub(super) struct YtDlp {
        /// The media URL found at start, for the first open.
        first: String,
        max_height: Option<u32>,
    }

    impl YtDlp {
        /// Asks yt-dlp for `page`'s stream now, so that a page it cannot resolve stops the
        /// start with its reason.
        pub(super) fn first(page: &str, max_height: Option<u32>) -> Result<YtDlp, CaptureError> {
            tracing::info!("{page}: asking yt-dlp for its media stream");
            let first = resolve_with_ytdlp(page, max_height, YT_DLP_LIMIT)?;
            tracing::info!("{page}: yt-dlp found a stream on {}", host_of(&first));
            Ok(YtDlp { first, max_height })
        }

        /// A resolver for the source: the URL found at start once, then yt-dlp's answer anew.
        fn resolver(&self) -> UrlResolver {
            let first = std::sync::Mutex::new(Some(self.first.clone()));
            let max_height = self.max_height;
            UrlResolver::new(move |page| {
                // A poisoned lock only loses the URL found at start: yt-dlp is asked instead.
                if let Some(url) = first.lock().ok().and_then(|mut first| first.take()) {
                    return Ok(url);
                }
                tracing::info!("{page}: asking yt-dlp again (its stream URLs expire)");
                let resolved = resolve_with_ytdlp(page, max_height, YT_DLP_LIMIT)?;
                tracing::info!("{page}: yt-dlp found a stream on {}", host_of(&resolved));
                Ok(resolved)
            })
        }
    }

    /// The host of a URL, for logs: resolved URLs are long and carry signatures.
    fn host_of(url: &str) -> &str {
        url.split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("?")
    }

    /// Opens a file or network stream once: passed through when it is H.264 that browsers
    /// play as it is and nothing needs the pictures, decoded otherwise. The log says which and
    /// why.
    pub(super) fn open(
        url: &str,
        options: &OpenOptions,
        ytdlp: Option<&YtDlp>,
    ) -> Result<OpenedSource, CaptureError> {
        let ffmpeg = FfmpegOptions {
            looping: options.looping,
            start_delay: options.start_delay,
            resolver: ytdlp.map(YtDlp::resolver),
            ..FfmpegOptions::default()
        };
        if let Some(reason) = options.decode_reason(true) {
            tracing::info!("{url}: decoding and encoding again: {reason}");
            return Ok(OpenedSource::Frames(Box::new(FfmpegSource::open(
                url, ffmpeg,
            )?)));
        }
        let opened = FfmpegH264Source::open_or_decode(url, ffmpeg, |info| match options.size {
            Some((width, height)) if (width, height) != (info.width, info.height) => Err(format!(
                "the size asked for, {width}x{height}, differs from the source's {}x{}",
                info.width, info.height
            )),
            _ => Ok(()),
        })?;
        Ok(match opened {
            FfmpegOpened::Passthrough(source) => {
                let info = source.info();
                tracing::info!(
                    "{url}: passing its H.264 through ({}x{}, {}), not decoding",
                    info.width,
                    info.height,
                    info.profile
                        .map_or_else(|| "profile unknown".into(), |p| p.to_string())
                );
                OpenedSource::Encoded(Box::new(source))
            }
            FfmpegOpened::Decoded(source, reason) => {
                tracing::info!("{url}: decoding and encoding again: {reason}");
                OpenedSource::Frames(Box::new(source))
            }
        })
    }
}

#[cfg(not(feature = "ffmpeg"))]
mod media {
    use super::{missing_feature, OpenOptions, OpenedSource};
    use crate::CaptureError;

    pub(super) enum YtDlp {}

    impl YtDlp {
        pub(super) fn first(page: &str, _: Option<u32>) -> Result<YtDlp, CaptureError> {
            Err(missing_feature(page, "ffmpeg"))
        }
    }

    pub(super) fn open(
        url: &str,
        _: &OpenOptions,
        _: Option<&YtDlp>,
    ) -> Result<OpenedSource, CaptureError> {
        Err(missing_feature(url, "ffmpeg"))
    }
}

/// V4L2 cameras.
#[cfg(all(feature = "v4l2", target_os = "linux"))]
mod camera {
    use std::path::Path;

    use super::{OpenOptions, OpenedSource};
    use crate::v4l2::{V4l2Format, V4l2H264Source, V4l2Options, V4l2Source};
    use crate::{CaptureError, EncodedSource};

    /// Opens a camera: its size and rate are hints (it takes its nearest mode), and a camera's
    /// own H.264 is passed through, which nothing here can decode: options that need the
    /// pictures are refused then, with the reason.
    pub(super) fn open(path: &Path, options: &OpenOptions) -> Result<OpenedSource, CaptureError> {
        let v4l2 = V4l2Options {
            size: options.size,
            fps: Some(options.fps),
            format: options
                .camera_format
                .as_deref()
                .map(str::parse::<V4l2Format>)
                .transpose()?,
            ..V4l2Options::default()
        };
        if v4l2.format != Some(V4l2Format::H264) {
            return Ok(OpenedSource::Frames(Box::new(V4l2Source::open(
                path, v4l2,
            )?)));
        }
        if let Some(reason) = options.decode_reason(true) {
            return Err(CaptureError::InvalidArgument(format!(
                "{}: the camera's H.264 is passed through as it is, but {reason}: pick a raw \
                 camera format (yuyv, nv12, yu12 or mjpeg) to have it encoded here",
                path.display()
            )));
        }
        let camera = V4l2H264Source::open(path, v4l2)?;
        let info = camera.info();
        if let Some((width, height)) = options.size.filter(|&s| s != (info.width, info.height)) {
            tracing::info!(
                "{}: {width}x{height} asked for: the camera's nearest H.264 mode is {}x{}, \
                 passed through at that size",
                path.display(),
                info.width,
                info.height
            );
        }
        tracing::info!(
            "{}: passing the camera's H.264 through ({}x{} at {} fps, {}), not decoding",
            path.display(),
            info.width,
            info.height,
            info.fps,
            info.profile
                .map_or_else(|| "profile unknown".into(), |p| p.to_string())
        );
        Ok(OpenedSource::Encoded(Box::new(camera)))
    }
}

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
mod camera {
    use std::path::Path;

    use super::{missing_feature, OpenOptions, OpenedSource};
    use crate::CaptureError;

    pub(super) fn open(path: &Path, _: &OpenOptions) -> Result<OpenedSource, CaptureError> {
        Err(missing_feature(&path.display().to_string(), "v4l2"))
    }
}

/// Raspberry Pi cameras.
#[cfg(all(feature = "rpicam", unix))]
mod pi {
    use super::{OpenOptions, OpenedSource, PiCodec};
    use crate::rpicam::{has_hardware_h264, RpicamH264Source, RpicamOptions, RpicamSource};
    use crate::{CaptureError, EncodedSource};

    /// Opens Pi camera `number`: the hardware encoder's H.264 passed through, or raw frames.
    pub(super) fn open(number: u32, options: &OpenOptions) -> Result<OpenedSource, CaptureError> {
        let mut rpicam = RpicamOptions::camera(number);
        rpicam.size = options.size.unwrap_or((1280, 720));
        rpicam.fps = options.fps;
        // The hardware encoder takes the rate itself, so a bitrate does not stop passthrough.
        rpicam.bitrate_kbps = options.bitrate_kbps;
        let reason = match (options.pi_codec, options.decode_reason(false)) {
            (PiCodec::Yuv420, _) => Some("raw frames asked for (yuv420)".to_string()),
            (_, Some(reason)) => Some(reason),
            (PiCodec::H264, None) => None,
            (_, None) if has_hardware_h264() => None,
            _ => Some("this machine has no Pi hardware H.264 encoder (Pi 5, or not a Pi)".into()),
        };
        match reason {
            None => {
                let camera = RpicamH264Source::open(rpicam)?;
                tracing::info!(
                    "pi:{number}: passing the Pi's hardware H.264 through ({})",
                    camera
                        .info()
                        .profile
                        .map_or_else(|| "profile unknown".into(), |p| p.to_string())
                );
                Ok(OpenedSource::Encoded(Box::new(camera)))
            }
            Some(reason) => {
                tracing::info!("pi:{number}: raw frames encoded here: {reason}");
                Ok(OpenedSource::Frames(Box::new(RpicamSource::open(rpicam)?)))
            }
        }
    }
}

#[cfg(not(all(feature = "rpicam", unix)))]
mod pi {
    use super::{missing_feature, OpenOptions, OpenedSource};
    use crate::CaptureError;

    pub(super) fn open(number: u32, _: &OpenOptions) -> Result<OpenedSource, CaptureError> {
        Err(missing_feature(&format!("pi:{number}"), "rpicam"))
    }
}
