//! One stream: its settings, its live state, and the pipeline threads that turn its source into
//! H.264 (source -> transforms -> encoder), or pass H.264 that arrives encoded straight on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rtcgear_capture::ffmpeg::H264Decoder;
use rtcgear_capture::h264::H264Profile;
use rtcgear_capture::{AccessUnit, EncodedSource, Frame, PixelFormat, Source, SourceInfo};
use rtcgear_encode::{Encoder, EncoderConfig, RateControl, Vp8Config, Vp8Encoder};
use rtcgear_rtc::ViewerPaths;

use crate::rtc_threads::{FrameOut, NotSent, StreamFrame};

/// One stream of a server: a named source with its encoder settings.
///
/// ```
/// use rtcgear_capture::TestPattern;
/// use rtcgear_server::{StreamConfig, WhenIdle};
///
/// let pattern = TestPattern::builder().size(640, 480).build().unwrap();
/// let stream = StreamConfig::new("desk", pattern).bitrate_kbps(1500).when_idle(WhenIdle::Encode);
/// assert_eq!(stream.name(), "desk");
/// ```
pub struct StreamConfig {
    name: String,
    input: Input,
    bitrate_kbps: Option<u32>,
    keyframe_interval: Duration,
    threads: u32,
    when_idle: WhenIdle,
}

/// What a stream does while nobody watches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenIdle {
    /// Stop reading the source; the first viewer starts it again, from a keyframe. Right for
    /// sources that wait for their reader: the test pattern and files. The default.
    #[default]
    PauseSource,
    /// Keep reading the source and drop its frames unencoded. Right for live sources, a
    /// network stream or a camera, whose sender would give up on a reader that stops.
    ReadSource,
    /// Keep capturing and encoding as if someone watched (`rtcgear serve --always-live`), so
    /// the first viewer's picture needs no start-up.
    Encode,
}

impl WhenIdle {
    /// The policy a source needs when it is not asked to stay live: [`WhenIdle::ReadSource`]
    /// for a live one, [`WhenIdle::PauseSource`] for one that waits.
    pub fn for_source(live: bool) -> WhenIdle {
        if live {
            WhenIdle::ReadSource
        } else {
            WhenIdle::PauseSource
        }
    }
}

/// Where a stream's pictures come from.
enum Input {
    /// Frames, encoded here.
    Frames(Box<dyn Source>),
    /// H.264 access units, passed through.
    Encoded(Box<dyn EncodedSource>),
}

impl StreamConfig {
    /// A stream named `name` (empty for the default stream at `/`) from `source`, whose
    /// frames are encoded once for every viewer.
    pub fn new(name: impl Into<String>, source: impl Source + 'static) -> StreamConfig {
        StreamConfig::with_input(name.into(), Input::Frames(Box::new(source)))
    }

    /// A stream named `name` whose H.264 is passed through to viewers as it comes, without
    /// decoding or encoding (a file, a network stream or a camera's own encoder).
    ///
    /// Keyframes cannot be asked of such a source, so a GOP cache starts each new viewer's
    /// picture at once from the last keyframe (see `rtcgear_rtc::BroadcastConfig::gop_cache`),
    /// and a viewer that loses a picture waits for the source's next keyframe. The bitrate,
    /// keyframe interval and encoder settings do not apply.
    ///
    /// ```
    /// use rtcgear_capture::{AccessUnit, CaptureError, EncodedInfo, EncodedSource, FrameRate};
    /// use rtcgear_server::StreamConfig;
    ///
    /// struct Nothing;
    /// impl Iterator for Nothing {
    ///     type Item = Result<AccessUnit, CaptureError>;
    ///     fn next(&mut self) -> Option<Self::Item> { None }
    /// }
    /// impl EncodedSource for Nothing {
    ///     fn info(&self) -> EncodedInfo {
    ///         EncodedInfo { width: 640, height: 480, fps: FrameRate::from_int(30).unwrap(), profile: None }
    ///     }
    /// }
    ///
    /// let stream = StreamConfig::passthrough("camera", Nothing);
    /// assert_eq!(stream.name(), "camera");
    /// ```
    pub fn passthrough(
        name: impl Into<String>,
        source: impl EncodedSource + 'static,
    ) -> StreamConfig {
        StreamConfig::with_input(name.into(), Input::Encoded(Box::new(source)))
    }

    /// A stream of what a source string names (`test`, a camera, a Pi camera, a file, a
    /// network stream or a video site's page), opened as `rtcgear serve --source` opens it:
    /// H.264 that browsers play is passed through unless `options` need the pictures, and a
    /// live source (a network stream, a camera) keeps being read while nobody watches
    /// ([`WhenIdle::for_source`]). See
    /// [`rtcgear_capture::open`]. Files and URLs need `rtcgear-capture`'s `ffmpeg` feature, V4L2
    /// cameras its `v4l2` feature and Pi cameras its `rpicam` feature: a program turns them on
    /// by depending on `rtcgear-capture` with them.
    ///
    /// ```
    /// use rtcgear_capture::OpenOptions;
    /// use rtcgear_server::StreamConfig;
    ///
    /// let mut options = OpenOptions::default();
    /// options.size = Some((640, 360));
    /// let stream = StreamConfig::open("yard", "test", &options)?;
    /// assert_eq!(stream.name(), "yard");
    /// # Ok::<(), rtcgear_capture::CaptureError>(())
    /// ```
    pub fn open(
        name: impl Into<String>,
        source: &str,
        options: &rtcgear_capture::OpenOptions,
    ) -> Result<StreamConfig, rtcgear_capture::CaptureError> {
        let spec: rtcgear_capture::SourceSpec = source.parse()?;
        let opened = rtcgear_capture::open(&spec, options)?;
        let stream = match opened.source {
            rtcgear_capture::OpenedSource::Frames(frames) => StreamConfig::new(name, frames),
            rtcgear_capture::OpenedSource::Encoded(h264) => StreamConfig::passthrough(name, h264),
        };
        Ok(stream.when_idle(WhenIdle::for_source(opened.live)))
    }

    fn with_input(name: String, input: Input) -> StreamConfig {
        StreamConfig {
            name,
            input,
            bitrate_kbps: None,
            keyframe_interval: Duration::from_secs(2),
            threads: 0,
            when_idle: WhenIdle::default(),
        }
    }

    /// What the stream does while nobody watches (default [`WhenIdle::PauseSource`]).
    pub fn when_idle(mut self, policy: WhenIdle) -> StreamConfig {
        self.when_idle = policy;
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn source_info(&self) -> SourceInfo {
        match &self.input {
            Input::Frames(source) => source.info(),
            Input::Encoded(source) => {
                let info = source.info();
                SourceInfo {
                    width: info.width,
                    height: info.height,
                    format: PixelFormat::I420,
                    fps: info.fps,
                }
            }
        }
    }

    /// Whether the stream passes H.264 through rather than encoding.
    pub fn is_passthrough(&self) -> bool {
        matches!(self.input, Input::Encoded(_))
    }

    /// The target bitrate in kbit/s, capped by a VBV buffer (default: chosen by the encoder
    /// for the size and rate).
    pub fn bitrate_kbps(mut self, kbps: u32) -> StreamConfig {
        self.bitrate_kbps = Some(kbps);
        self
    }

    /// The longest time between two keyframes (default 2 s). Viewers that join or lose
    /// pictures get one at once anyway.
    pub fn keyframe_interval(mut self, interval: Duration) -> StreamConfig {
        self.keyframe_interval = interval;
        self
    }

    /// Encoder threads (default 0: as many as x264 thinks best).
    pub fn encoder_threads(mut self, threads: u32) -> StreamConfig {
        self.threads = threads;
        self
    }
}

/// What `/api/streams` and the logs say about a stream's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceState {
    /// Waiting for the first frame.
    Starting,
    /// Frames are flowing.
    Live,
    /// No viewers: the stream sleeps until one comes (on-demand streams).
    Idle,
    /// The source reported an error and is being retried.
    Reconnecting,
    /// The source ended (the end of a file, say).
    Ended,
    /// The encoder could not be started for this source; the log says why.
    Failed,
}

/// Where a stream's H.264 comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Video {
    /// rtcgear's encoder: Constrained Baseline, keyframes on request.
    Encoded,
    /// Passed through as the source delivers it, in `profile` (from its SPS, when known before
    /// the first picture); keyframes come when the source sends them.
    Passthrough { profile: Option<H264Profile> },
}

/// A stream's live state, shared between its threads, the RTC thread and HTTP.
pub(crate) struct StreamShared {
    pub(crate) name: String,
    /// Where the stream's H.264 comes from.
    pub(crate) video: Video,
    pub(crate) info: Mutex<SourceInfo>,
    pub(crate) state: Mutex<(SourceState, Option<String>)>,
    /// Viewers by codec, one count for each RTC thread (its own to write).
    pub(crate) counts: Box<[ViewerCounts]>,
    /// How the connected viewers reach the server, refreshed by each RTC thread every second.
    pub(crate) paths: Box<[Mutex<ViewerPaths>]>,
    pub(crate) frames_encoded: AtomicU64,
    pub(crate) bytes_encoded: AtomicU64,
    pub(crate) keyframe_requested: AtomicBool,
    /// The VP8 encoder runs now.
    pub(crate) vp8_encoding: AtomicBool,
    /// The VP8 thread started a decoder of passed-through H.264 in the middle of a GOP: the
    /// ingest thread sends it the GOP so far.
    pub(crate) vp8_wants_gop: AtomicBool,
    pub(crate) vp8_frames_encoded: AtomicU64,
    pub(crate) vp8_keyframe_requested: AtomicBool,
    pub(crate) on_demand: bool,
    pub(crate) bitrate: Mutex<BitrateMeter>,
}

impl StreamShared {
    /// The live state of a stream served by `rtc_threads` RTC threads.
    pub(crate) fn new(config: &StreamConfig, rtc_threads: usize) -> StreamShared {
        let video = match &config.input {
            Input::Frames(_) => Video::Encoded,
            Input::Encoded(source) => Video::Passthrough {
                profile: source.info().profile,
            },
        };
        StreamShared {
            name: config.name.clone(),
            video,
            info: Mutex::new(config.source_info()),
            state: Mutex::new((SourceState::Starting, None)),
            counts: (0..rtc_threads).map(|_| ViewerCounts::default()).collect(),
            paths: (0..rtc_threads)
                .map(|_| Mutex::new(ViewerPaths::default()))
                .collect(),
            frames_encoded: AtomicU64::new(0),
            bytes_encoded: AtomicU64::new(0),
            keyframe_requested: AtomicBool::new(false),
            vp8_encoding: AtomicBool::new(false),
            vp8_wants_gop: AtomicBool::new(false),
            vp8_frames_encoded: AtomicU64::new(0),
            vp8_keyframe_requested: AtomicBool::new(false),
            on_demand: config.when_idle != WhenIdle::Encode,
            bitrate: Mutex::new(Default::default()),
        }
    }

    pub(crate) fn set_state(&self, state: SourceState, detail: Option<String>) {
        let mut current = lock(&self.state);
        if current.0 != state || current.1 != detail {
            match &detail {
                Some(detail) => {
                    tracing::info!(stream = %self.label(), "source {state:?}: {detail}")
                }
                None => tracing::info!(stream = %self.label(), "source {state:?}"),
            }
            *current = (state, detail);
        }
    }

    pub(crate) fn label(&self) -> &str {
        if self.name.is_empty() {
            "default"
        } else {
            &self.name
        }
    }

    fn active(&self) -> bool {
        !self.on_demand || self.viewers() > 0
    }

    /// Viewers (connected or connecting) on every RTC thread.
    pub(crate) fn viewers(&self) -> usize {
        self.h264_viewers() + self.vp8_viewers()
    }

    /// Viewers watching in H.264.
    pub(crate) fn h264_viewers(&self) -> usize {
        self.counts
            .iter()
            .map(|c| c.h264.load(Ordering::Relaxed))
            .sum()
    }

    /// Viewers watching in VP8 (their browsers offered no usable H.264), connected or not:
    /// the stream's VP8 encoder runs while there are any.
    pub(crate) fn vp8_viewers(&self) -> usize {
        self.counts
            .iter()
            .map(|c| c.vp8.load(Ordering::Relaxed))
            .sum()
    }

    /// How every RTC thread's viewers reach the server, as last counted.
    pub(crate) fn paths(&self) -> ViewerPaths {
        self.paths
            .iter()
            .fold(ViewerPaths::default(), |sum, paths| {
                let paths = *lock(paths);
                ViewerPaths {
                    udp: sum.udp + paths.udp,
                    tcp: sum.tcp + paths.tcp,
                    relay: sum.relay + paths.relay,
                }
            })
    }
}

/// One RTC thread's viewers of a stream, by codec.
#[derive(Default)]
pub(crate) struct ViewerCounts {
    h264: AtomicUsize,
    vp8: AtomicUsize,
}

impl ViewerCounts {
    pub(crate) fn store(&self, h264: usize, vp8: usize) {
        self.h264.store(h264, Ordering::Relaxed);
        self.vp8.store(vp8, Ordering::Relaxed);
    }
}

/// Bits per second over the last few seconds.
#[derive(Default)]
pub(crate) struct BitrateMeter {
    samples: std::collections::VecDeque<(Instant, usize)>,
}

impl BitrateMeter {
    fn add(&mut self, now: Instant, bytes: usize) {
        self.samples.push_back((now, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3))
        {
            self.samples.pop_front();
        }
    }

    pub(crate) fn kbps(&self, now: Instant) -> f64 {
        let Some((first, _)) = self.samples.front() else {
            return 0.0;
        };
        let span = now.duration_since(*first).as_secs_f64().max(1.0);
        let bytes: usize = self.samples.iter().map(|(_, b)| b).sum();
        bytes as f64 * 8.0 / span / 1000.0
    }
}

/// The pipeline threads of one stream: capture and encode, or the one that passes H.264 on.
pub(crate) struct Pipeline {
    pub(crate) threads: Vec<thread::JoinHandle<()>>,
}

/// Starts the pipeline threads of stream `index`.
pub(crate) fn start(
    index: usize,
    config: StreamConfig,
    shared: Arc<StreamShared>,
    rtc: Arc<[Sender<StreamFrame>]>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<Pipeline> {
    // A hand-off of one frame: when the encoder is busy, the capture thread replaces the
    // waiting frame with the newer one, so latency never queues up.
    let (frame_tx, frame_rx) = crossbeam_channel::bounded::<Frame>(1);
    let label = shared.label().to_string();
    let StreamConfig {
        input,
        bitrate_kbps,
        keyframe_interval,
        threads,
        when_idle,
        ..
    } = config;
    let pause_when_idle = when_idle == WhenIdle::PauseSource;
    let settings = EncodeSettings {
        bitrate_kbps,
        keyframe_interval,
        threads,
    };
    // The VP8 encoder, for viewers without H.264: it takes the pictures the H.264 encoder is
    // done with, or the passed-through H.264 to decode first, and drops what comes while
    // nobody watches in VP8.
    let (vp8_tx, vp8_rx) = crossbeam_channel::bounded::<Vp8Input>(VP8_QUEUE);
    let vp8 = {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        let mut out = FrameOut::new(index, rtc.clone());
        let settings = settings.clone();
        thread::Builder::new()
            .name(format!("vp8-{label}"))
            .spawn(move || vp8_loop(settings, &shared, &vp8_rx, &mut out, &shutdown))?
    };
    let mut out = FrameOut::new(index, rtc);
    let source = match input {
        Input::Frames(source) => source,
        Input::Encoded(source) => {
            let ingest = thread::Builder::new()
                .name(format!("ingest-{label}"))
                .spawn(move || {
                    ingest_loop(
                        source,
                        pause_when_idle,
                        &shared,
                        &vp8_tx,
                        &mut out,
                        &shutdown,
                    )
                })?;
            return Ok(Pipeline {
                threads: vec![ingest, vp8],
            });
        }
    };
    let capture = {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let stale_rx = frame_rx.clone();
        thread::Builder::new()
            .name(format!("capture-{label}"))
            .spawn(move || {
                capture_loop(
                    source,
                    pause_when_idle,
                    &shared,
                    &frame_tx,
                    &stale_rx,
                    &shutdown,
                )
            })?
    };
    let encode = thread::Builder::new()
        .name(format!("encode-{label}"))
        .spawn(move || encode_loop(settings, &shared, &frame_rx, &vp8_tx, &mut out, &shutdown))?;
    Ok(Pipeline {
        threads: vec![capture, encode, vp8],
    })
}

/// Waits after a source error: a little longer after each in a row, up to 2 s, while staying
/// responsive to shutdown.
fn back_off(failures: u32, shutdown: &AtomicBool) {
    let pause = Duration::from_millis(100 * u64::from(failures.min(20)));
    let until = Instant::now() + pause;
    while Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Passes access units from an encoded source to the RTC thread.
///
/// Every picture is passed on, watched or not, when the source is read: the RTC thread's GOP
/// cache needs them to start new viewers at once. None is dropped on the way, since a lost
/// picture would break every later one up to the next keyframe: when the RTC thread falls
/// behind, this thread waits for it (and a live source's own buffers take up the slack).
fn ingest_loop(
    mut source: Box<dyn EncodedSource>,
    pause_when_idle: bool,
    shared: &StreamShared,
    vp8_tx: &Sender<Vp8Input>,
    out: &mut FrameOut,
    shutdown: &AtomicBool,
) {
    let mut failures = 0u32;
    let mut logged_keyframe_request = false;
    // The units since the last keyframe, so that a VP8 encoder that starts can decode up to
    // the newest picture at once; and whether it is being fed, unit by unit.
    let mut gop: Vec<AccessUnit> = Vec::new();
    let mut feeding_vp8 = false;
    while !shutdown.load(Ordering::Relaxed) {
        let active = shared.active();
        if !active && pause_when_idle {
            shared.set_state(SourceState::Idle, None);
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        if shared.keyframe_requested.swap(false, Ordering::Relaxed) && !logged_keyframe_request {
            tracing::debug!(
                stream = %shared.label(),
                "a viewer asked for a keyframe; passed-through H.264 brings the source's next one"
            );
            logged_keyframe_request = true;
        }
        match source.next() {
            None => {
                shared.set_state(SourceState::Ended, None);
                return;
            }
            Some(Err(err @ rtcgear_capture::CaptureError::NotPassthrough(_))) => {
                shared.set_state(
                    SourceState::Failed,
                    Some(format!("{err}; serve it with --transcode")),
                );
                return;
            }
            Some(Err(err)) => {
                failures += 1;
                shared.set_state(SourceState::Reconnecting, Some(err.to_string()));
                back_off(failures, shutdown);
            }
            Some(Ok(unit)) => {
                failures = 0;
                shared.set_state(
                    if active {
                        SourceState::Live
                    } else {
                        SourceState::Idle
                    },
                    None,
                );
                let now = Instant::now();
                shared.frames_encoded.fetch_add(1, Ordering::Relaxed);
                shared
                    .bytes_encoded
                    .fetch_add(unit.data.len() as u64, Ordering::Relaxed);
                lock(&shared.bitrate).add(now, unit.data.len());
                if unit.keyframe {
                    gop.clear();
                }
                if gop.len() < MAX_GOP_UNITS {
                    gop.push(unit.clone());
                }
                if shared.vp8_viewers() == 0 {
                    feeding_vp8 = false;
                } else {
                    // The whole GOP when it starts (or after a unit was dropped, which breaks
                    // the decoder's references), else this unit alone.
                    let restart = shared.vp8_wants_gop.swap(false, Ordering::Relaxed);
                    let units = if feeding_vp8 && !restart {
                        vec![unit.clone()]
                    } else {
                        gop.clone()
                    };
                    feeding_vp8 = vp8_tx.try_send(Vp8Input::Units(units)).is_ok();
                }
                // Bounded by the shutdown flag: each round waits at most 100 ms.
                if out.send(&unit, shutdown).is_err() {
                    return;
                }
            }
        }
    }
}

fn capture_loop(
    mut source: Box<dyn Source>,
    pause_when_idle: bool,
    shared: &StreamShared,
    frame_tx: &Sender<Frame>,
    stale_rx: &Receiver<Frame>,
    shutdown: &AtomicBool,
) {
    let mut failures = 0u32;
    while !shutdown.load(Ordering::Relaxed) {
        let active = shared.active();
        if !active && pause_when_idle {
            shared.set_state(SourceState::Idle, None);
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        match source.next() {
            None => {
                shared.set_state(SourceState::Ended, None);
                return;
            }
            Some(Err(err)) => {
                failures += 1;
                shared.set_state(SourceState::Reconnecting, Some(err.to_string()));
                back_off(failures, shutdown);
            }
            Some(Ok(_)) if !active => {
                // Read to keep a live sender happy, but not encoded: nobody watches.
                failures = 0;
                shared.set_state(SourceState::Idle, None);
            }
            Some(Ok(frame)) => {
                failures = 0;
                shared.set_state(SourceState::Live, None);
                let mut frame = frame;
                loop {
                    match frame_tx.try_send(frame) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            // Drop the stale frame the encoder has not taken yet.
                            let _ = stale_rx.try_recv();
                            frame = back;
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
        }
    }
}

#[derive(Clone)]
struct EncodeSettings {
    bitrate_kbps: Option<u32>,
    keyframe_interval: Duration,
    threads: u32,
}

fn encode_loop(
    settings: EncodeSettings,
    shared: &StreamShared,
    frame_rx: &Receiver<Frame>,
    vp8_tx: &Sender<Vp8Input>,
    out: &mut FrameOut,
    shutdown: &AtomicBool,
) {
    let mut encoder: Option<Encoder> = None;
    let mut was_active = false;
    while !shutdown.load(Ordering::Relaxed) {
        let frame = match frame_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(frame) => frame,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        let active = shared.active();
        if !active {
            was_active = false;
            continue;
        }
        let vp8_viewers = shared.vp8_viewers();
        if vp8_viewers > 0 && shared.h264_viewers() == 0 {
            // Everyone watches in VP8: no H.264 for now, and a keyframe first when it is
            // wanted again. The VP8 encoder takes the newest picture when it is free.
            was_active = false;
            if vp8_tx.is_empty() {
                let _ = vp8_tx.try_send(Vp8Input::Frame(frame));
            }
            continue;
        }
        let size_changed = encoder.as_ref().is_some_and(|e| {
            (e.config().width, e.config().height) != (frame.width(), frame.height())
        });
        if encoder.is_none() || size_changed {
            let fps = lock(&shared.info).fps;
            let mut config = EncoderConfig::new(frame.width(), frame.height(), fps);
            if let Some(kbps) = settings.bitrate_kbps {
                config.rate = RateControl::Bitrate { kbps };
            }
            config.keyframe_interval =
                ((settings.keyframe_interval.as_secs_f64() * fps.as_f64()).round() as u32).max(1);
            config.threads = settings.threads;
            match Encoder::new(config) {
                Ok(new) => {
                    tracing::info!(
                        stream = %shared.label(),
                        "encoding {}x{} at {} fps",
                        frame.width(),
                        frame.height(),
                        fps
                    );
                    let mut info = lock(&shared.info);
                    info.width = frame.width();
                    info.height = frame.height();
                    encoder = Some(new);
                }
                Err(err) => {
                    shared.set_state(SourceState::Failed, Some(err.to_string()));
                    continue;
                }
            }
        }
        // Checked just above: the encoder exists.
        let Some(enc) = encoder.as_mut() else {
            continue;
        };
        if !was_active || shared.keyframe_requested.swap(false, Ordering::Relaxed) {
            enc.request_keyframe();
            was_active = true;
        }
        if let Err(err) = enc.send_frame(&frame) {
            tracing::warn!(stream = %shared.label(), "encoder refused a frame: {err}");
            continue;
        }
        while let Some(packet) = enc.receive_packet() {
            let now = Instant::now();
            shared.frames_encoded.fetch_add(1, Ordering::Relaxed);
            shared
                .bytes_encoded
                .fetch_add(packet.data.len() as u64, Ordering::Relaxed);
            lock(&shared.bitrate).add(now, packet.data.len());
            match out.try_send(&packet) {
                Ok(()) => {}
                Err(NotSent::Full) => {
                    // An RTC thread is behind: its viewers miss this frame, and the stream
                    // starts again from a keyframe so none decodes a broken reference chain.
                    tracing::debug!(stream = %shared.label(), "RTC thread busy, frame dropped");
                    shared.keyframe_requested.store(true, Ordering::Relaxed);
                }
                Err(NotSent::Stopped) => return,
            }
        }
        if vp8_viewers > 0 && vp8_tx.is_empty() {
            // Busy with the one before: this frame is skipped for VP8 alone.
            let _ = vp8_tx.try_send(Vp8Input::Frame(frame));
        }
    }
}

/// Room in the VP8 encoder's queue: one picture of an encoded stream (the encode thread
/// sends only into an empty queue), or a passed-through stream's units, which must all be
/// decoded (a full queue makes the ingest thread send the whole GOP again next time).
const VP8_QUEUE: usize = 64;
/// The most units since a keyframe that a passed-through stream keeps for a VP8 start.
const MAX_GOP_UNITS: usize = 600;

/// What the VP8 encoder is given.
enum Vp8Input {
    /// A picture the H.264 encoder is done with.
    Frame(Frame),
    /// Passed-through H.264 to decode first: when VP8 starts, every unit since the last
    /// keyframe (only the newest picture is encoded), then one unit at a time.
    Units(Vec<AccessUnit>),
}

/// The VP8 encoder of a stream: encodes what the H.264 side hands on while anyone watches in
/// VP8, and stops (dropping the encoder, and the decoder of a passed-through stream) when
/// nobody does.
fn vp8_loop(
    settings: EncodeSettings,
    shared: &StreamShared,
    input_rx: &Receiver<Vp8Input>,
    out: &mut FrameOut,
    shutdown: &AtomicBool,
) {
    let mut encoder: Option<Vp8Encoder> = None;
    let mut decoder: Option<H264Decoder> = None;
    // The counter of the last unit decoded: a gap means units were lost on the way.
    let mut last_unit: Option<u64> = None;
    let stop = |encoder: &mut Option<Vp8Encoder>, decoder: &mut Option<H264Decoder>| {
        *decoder = None;
        if encoder.take().is_some() {
            shared.vp8_encoding.store(false, Ordering::Relaxed);
            tracing::info!(stream = %shared.label(), "no VP8 viewers left: VP8 encoder stopped");
        }
    };
    while !shutdown.load(Ordering::Relaxed) {
        let input = match input_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(input) => input,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if shared.vp8_viewers() == 0 {
                    stop(&mut encoder, &mut decoder);
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        if shared.vp8_viewers() == 0 {
            stop(&mut encoder, &mut decoder);
            continue;
        }
        // Whatever else waits is taken too, and only the newest picture is encoded: a VP8
        // encoder that fell behind catches up instead of falling further (passed-through
        // units are all decoded, as each picture refers to those before it).
        let mut newest = None;
        for input in std::iter::once(input).chain(input_rx.try_iter()) {
            match input {
                Vp8Input::Frame(frame) => newest = Some(frame),
                Vp8Input::Units(units) => {
                    if let Some(frame) = decode_units(shared, &mut decoder, &mut last_unit, &units)
                    {
                        newest = Some(frame);
                    }
                }
            }
        }
        let Some(frame) = newest else {
            continue;
        };
        let size_changed = encoder.as_ref().is_some_and(|e| {
            (e.config().width, e.config().height) != (frame.width(), frame.height())
        });
        if encoder.is_none() || size_changed {
            let fps = lock(&shared.info).fps;
            let mut config = Vp8Config::new(frame.width(), frame.height(), fps);
            if let Some(kbps) = settings.bitrate_kbps {
                config.kbps = kbps;
            }
            config.keyframe_interval =
                ((settings.keyframe_interval.as_secs_f64() * fps.as_f64()).round() as u32).max(1);
            // libvpx chooses its own threads: the stream's thread count is x264's, and more
            // libvpx threads than it picks spin against each other (BENCHMARKS.md).
            config.threads = 0;
            match Vp8Encoder::new(config) {
                Ok(new) => {
                    tracing::info!(
                        stream = %shared.label(),
                        "a viewer takes VP8: encoding {}x{} at {} fps in VP8 too",
                        frame.width(),
                        frame.height(),
                        fps
                    );
                    encoder = Some(new);
                    shared.vp8_encoding.store(true, Ordering::Relaxed);
                }
                Err(err) => {
                    tracing::warn!(stream = %shared.label(), "no VP8 encoder: {err}");
                    thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let Some(enc) = encoder.as_mut() else {
            continue;
        };
        if shared.vp8_keyframe_requested.swap(false, Ordering::Relaxed) {
            enc.request_keyframe();
        }
        if let Err(err) = enc.send_frame(&frame) {
            tracing::warn!(stream = %shared.label(), "the VP8 encoder refused a frame: {err}");
            continue;
        }
        while let Some(unit) = enc.receive_packet() {
            shared.vp8_frames_encoded.fetch_add(1, Ordering::Relaxed);
            match out.try_send(&unit) {
                Ok(()) => {}
                Err(NotSent::Full) => {
                    shared.vp8_keyframe_requested.store(true, Ordering::Relaxed);
                }
                Err(NotSent::Stopped) => return,
            }
        }
    }
}

/// Decodes passed-through `units` for the VP8 encoder; the newest picture, if any. A gap in
/// the units' counters (some were dropped) starts a new decoder, which waits for a keyframe.
fn decode_units(
    shared: &StreamShared,
    decoder: &mut Option<H264Decoder>,
    last_unit: &mut Option<u64>,
    units: &[AccessUnit],
) -> Option<Frame> {
    let first = units.first()?;
    if last_unit.is_some_and(|last| first.counter != last.wrapping_add(1)) && !first.keyframe {
        *decoder = None;
    }
    if decoder.is_none() {
        if !first.keyframe {
            // Mid-GOP: the ingest thread sends the GOP so far with its next unit.
            shared.vp8_wants_gop.store(true, Ordering::Relaxed);
        }
        match H264Decoder::new() {
            Ok(new) => *decoder = Some(new),
            Err(err) => {
                tracing::warn!(stream = %shared.label(), "no H.264 decoder for VP8: {err}");
                return None;
            }
        }
    }
    let decoder = decoder.as_mut()?;
    let mut newest = None;
    for unit in units {
        *last_unit = Some(unit.counter);
        match decoder.decode(unit) {
            Ok(Some(frame)) => newest = Some(frame),
            Ok(None) => {}
            Err(err) => tracing::debug!(stream = %shared.label(), "decoding for VP8: {err}"),
        }
    }
    newest
}

/// Locks a mutex, carrying on with the data if another thread panicked while holding it (the
/// data here is plain state, valid at every point).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
