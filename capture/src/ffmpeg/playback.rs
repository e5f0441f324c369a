//! How an FFmpeg-backed source plays its input, whatever it reads: the options, the shared
//! playback loop (pacing, looping, reopening) and the opening of an input.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ffmpeg_next as ff;

use crate::{CaptureError, FrameRate};

/// How an [`FfmpegSource`](super::FfmpegSource) or an
/// [`FfmpegH264Source`](super::FfmpegH264Source) plays its input.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FfmpegOptions {
    /// Pace frames at the stream's own timestamps, so a file plays at 1x (default `true`).
    /// Live network streams arrive in real time anyway.
    pub paced: bool,
    /// Start again from the beginning at the end of a file, forever (vidgear's
    /// `enable_infinite_frames`; default `false`).
    pub looping: bool,
    /// Reopen a network stream that drops or ends, with a growing pause between tries
    /// (default `true`). Errors are yielded meanwhile, so callers can show the reason.
    pub reconnect: bool,
    /// Wait this long before opening the input (vidgear's `time_delay`).
    pub start_delay: Duration,
    /// How long a network read may block before the stream counts as dropped (default 5 s).
    pub read_timeout: Duration,
    /// Turns the source's URL into the one to open, at every open and reopen (default none:
    /// the URL is opened as it is). A video site's page resolved by yt-dlp gives a media URL
    /// that expires after some hours, so a stream that drops later must be resolved again.
    pub resolver: Option<UrlResolver>,
}

/// A function from a source's URL to the URL to open: see [`FfmpegOptions::resolver`].
///
/// ```
/// use rtcgear_capture::ffmpeg::{FfmpegOptions, UrlResolver};
///
/// let mut options = FfmpegOptions::default();
/// options.resolver = Some(UrlResolver::new(|page| {
///     Ok(page.replace("https://video.example/watch/", "http://127.0.0.1:8080/live/"))
/// }));
/// let resolver = options.resolver.as_ref().unwrap();
/// assert_eq!(resolver.resolve("https://video.example/watch/7")?, "http://127.0.0.1:8080/live/7");
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
#[derive(Clone)]
pub struct UrlResolver(Arc<ResolveFn>);

type ResolveFn = dyn Fn(&str) -> Result<String, CaptureError> + Send + Sync;

impl UrlResolver {
    /// Wraps `resolve`, which is called from the thread that reads the source, and may block
    /// (running `yt-dlp`, say): the source waits for it.
    pub fn new(
        resolve: impl Fn(&str) -> Result<String, CaptureError> + Send + Sync + 'static,
    ) -> UrlResolver {
        UrlResolver(Arc::new(resolve))
    }

    /// The URL to open for `url`.
    pub fn resolve(&self, url: &str) -> Result<String, CaptureError> {
        (self.0)(url)
    }
}

impl std::fmt::Debug for UrlResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlResolver(..)")
    }
}

impl Default for FfmpegOptions {
    fn default() -> Self {
        FfmpegOptions {
            paced: true,
            looping: false,
            reconnect: true,
            start_delay: Duration::ZERO,
            read_timeout: Duration::from_secs(5),
            resolver: None,
        }
    }
}

/// Initialises FFmpeg, waits for the start delay, and gives the URL to open for `url` (through
/// the options' resolver) and whether it is a network stream.
pub(super) fn init(url: &str, options: &FfmpegOptions) -> Result<(String, bool), CaptureError> {
    ff::init().map_err(|e| ffmpeg_error("initialising FFmpeg", url, e))?;
    // FFmpeg's own logging would go to stderr; what matters comes back as our errors.
    ff::util::log::set_level(ff::util::log::Level::Fatal);
    if !options.start_delay.is_zero() {
        thread::sleep(options.start_delay);
    }
    let target = resolve(url, options)?;
    let network = target.contains("://") && !target.starts_with("file://");
    Ok((target, network))
}

/// The URL to open for `url`: the resolver's answer, or `url` itself.
pub(super) fn resolve(url: &str, options: &FfmpegOptions) -> Result<String, CaptureError> {
    match &options.resolver {
        Some(resolver) => resolver.resolve(url),
        None => Ok(url.to_string()),
    }
}

/// What an FFmpeg-backed source reads from one open input: decoded pictures
/// ([`FfmpegSource`](super::FfmpegSource)) or access units
/// ([`FfmpegH264Source`](super::FfmpegH264Source)).
pub(super) trait Demux: Sized {
    /// One thing read.
    type Item;

    /// Opens `target` (a reopen, after [`resolve`]); errors name `url`.
    fn open(
        target: &str,
        url: &str,
        network: bool,
        options: &FfmpegOptions,
    ) -> Result<Self, CaptureError>;

    /// The next item and its presentation time in seconds, or `Ok(None)` at the end of the
    /// input; errors name `url`.
    fn read(&mut self, url: &str) -> Result<Option<(Self::Item, f64)>, CaptureError>;

    /// Goes back to the start of a file.
    fn rewind(&mut self, url: &str) -> Result<(), CaptureError>;
}

/// How an FFmpeg-backed source plays its input, whatever it reads: at the pace of the stream's
/// timestamps, a file looped with time going forward, and a network stream that drops or ends
/// reopened with backoff while errors say why.
pub(super) struct Playback<D> {
    pub(super) url: String,
    options: FfmpegOptions,
    network: bool,
    /// `None` while a dropped network stream waits to be reopened.
    pub(super) input: Option<D>,
    /// One frame's duration: where time goes on after the last picture when a file loops.
    period_s: f64,
    pacer: Pacer,
    /// Seconds added to timestamps after each loop, so time keeps going forward.
    loop_offset_s: f64,
    last_pts_s: f64,
    failures: u32,
    ended: bool,
}

impl<D: Demux> Playback<D> {
    pub(super) fn new(
        url: &str,
        options: FfmpegOptions,
        network: bool,
        input: D,
        fps: FrameRate,
    ) -> Playback<D> {
        Playback {
            url: url.to_string(),
            options,
            network,
            input: Some(input),
            period_s: 1.0 / fps.as_f64(),
            pacer: Pacer::default(),
            loop_offset_s: 0.0,
            last_pts_s: 0.0,
            failures: 0,
            ended: false,
        }
    }

    /// The next item, paced and then passed through `finish` (with the input it came from), or
    /// an error that says why there is none now (a dropped stream yields errors while it is
    /// reopened), or `None` at the end.
    pub(super) fn next<T>(
        &mut self,
        finish: impl FnOnce(&mut D, D::Item, &str) -> Result<T, CaptureError>,
    ) -> Option<Result<T, CaptureError>> {
        // Bounded: each round either yields, or rewinds/reopens once and tries again.
        for _ in 0..3 {
            if self.ended {
                return None;
            }
            if self.input.is_none() {
                // Reopening a dropped network stream, with backoff.
                let pause = Duration::from_millis(250 * u64::from(self.failures.min(16)));
                thread::sleep(pause);
                if let Err(err) = self.reopen() {
                    self.failures += 1;
                    return Some(Err(err));
                }
                tracing::info!("{}: reopened", self.url);
            }
            let input = self.input.as_mut()?;
            match input.read(&self.url) {
                Ok(Some((item, pts_s))) => {
                    self.failures = 0;
                    let pts_s = pts_s + self.loop_offset_s;
                    self.last_pts_s = pts_s;
                    if self.options.paced {
                        self.pacer.pace(pts_s);
                    }
                    return Some(finish(input, item, &self.url));
                }
                Ok(None) if self.options.looping && !self.network => {
                    if let Err(err) = input.rewind(&self.url) {
                        self.ended = true;
                        return Some(Err(err));
                    }
                    self.loop_offset_s = self.last_pts_s + self.period_s;
                    self.pacer.reset();
                }
                Ok(None) if self.network && self.options.reconnect => {
                    self.input = None;
                    self.failures += 1;
                    return Some(Err(CaptureError::Io {
                        context: format!("{} ended; reconnecting", self.url),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "end of stream",
                        ),
                    }));
                }
                Ok(None) => {
                    self.ended = true;
                    return None;
                }
                // What cannot be passed through does not become passable by reconnecting.
                Err(err @ CaptureError::NotPassthrough(_)) => {
                    self.ended = true;
                    return Some(Err(err));
                }
                Err(err) => {
                    if self.network && self.options.reconnect {
                        self.input = None;
                        self.failures += 1;
                    } else {
                        self.ended = true;
                    }
                    return Some(Err(err));
                }
            }
        }
        None
    }

    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.input = None;
        let target = resolve(&self.url, &self.options)?;
        self.input = Some(D::open(&target, &self.url, self.network, &self.options)?);
        self.pacer.reset();
        Ok(())
    }
}

/// Sleeps until each stream time is due, from the first one on.
#[derive(Debug, Default)]
pub(super) struct Pacer {
    /// The wall instant that the stream time `.1` plays at.
    anchor: Option<(Instant, f64)>,
}

impl Pacer {
    /// Sleeps until the stream time `pts_s` is due. A source that fell behind by more than a
    /// second (a slow consumer, a stalled network) starts its clock again instead of bursting.
    pub(super) fn pace(&mut self, pts_s: f64) {
        let now = Instant::now();
        let (start, base) = match self.anchor {
            Some((start, base)) => (start, base),
            None => {
                self.anchor = Some((now, pts_s));
                return;
            }
        };
        let due = pts_s - base;
        if !(0.0..=3600.0 * 24.0).contains(&due) {
            self.anchor = Some((now, pts_s));
            return;
        }
        let due = start + Duration::from_secs_f64(due);
        if due > now {
            thread::sleep(due - now);
        } else if now - due > Duration::from_secs(1) {
            self.anchor = Some((now, pts_s));
        }
    }

    /// Starts the clock again at the next time paced.
    pub(super) fn reset(&mut self) {
        self.anchor = None;
    }
}

/// Opens the container or stream at `target`, with read timeouts for network streams; errors
/// name `url`, the source's own (a resolved URL can be long, and signed).
pub(super) fn open_context(
    target: &str,
    url: &str,
    network: bool,
    options: &FfmpegOptions,
) -> Result<ff::format::context::Input, CaptureError> {
    let mut dict = ff::Dictionary::new();
    if network {
        let micros = options.read_timeout.as_micros().to_string();
        // rw_timeout bounds every read of most protocols; RTSP has its own socket timeout.
        dict.set("rw_timeout", &micros);
        if target.starts_with("rtsp://") {
            dict.set("rtsp_transport", "tcp");
            dict.set("timeout", &micros);
        }
    }
    ff::format::input_with_dictionary(&target, dict).map_err(|e| ffmpeg_error("opening", url, e))
}

/// A stream's frame rate: its average, or its base rate, or 30 when it says nothing sane.
pub(super) fn stream_rate(stream: Option<ff::format::stream::Stream<'_>>) -> FrameRate {
    let rate = stream
        .map(|s| {
            let avg = s.avg_frame_rate();
            if avg.numerator() > 0 && avg.denominator() > 0 {
                avg
            } else {
                s.rate()
            }
        })
        .unwrap_or(ff::Rational::new(30, 1));
    FrameRate::new(
        rate.numerator().max(0) as u32,
        rate.denominator().max(0) as u32,
    )
    .filter(|r| r.as_f64() <= 240.0)
    .unwrap_or(FrameRate { num: 30, den: 1 })
}

pub(super) fn ffmpeg_error(what: &str, url: &str, err: ff::Error) -> CaptureError {
    CaptureError::Io {
        context: format!("{what} {url}"),
        source: std::io::Error::other(err.to_string()),
    }
}
