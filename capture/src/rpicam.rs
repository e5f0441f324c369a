//! Raspberry Pi cameras through the Pi's own `rpicam-vid` (feature `rpicam`).
//!
//! The `libcamera` crate needs libcamera 0.4 or newer, which Raspberry Pi OS has but most other
//! systems lack; `rpicam-vid` (`libcamera-vid` on older Pi OS) is on every Pi with a camera. It
//! runs as a child process writing to its stdout either raw YUV420 frames or H.264 from the
//! Pi's hardware encoder (Pi 4, Pi 3, Zero 2; the Pi 5 has none), which rtcgear passes
//! through. Its stderr goes to the log; it is restarted when it dies and killed when the
//! source is dropped.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};

use crate::encoded::{AccessUnit, EncodedInfo, EncodedSource};
use crate::h264::{AccessUnitSplitter, H264Profile};
use crate::{CaptureError, CaptureTime, Frame, FrameRate, PixelFormat, Plane, Source, SourceInfo};

/// The environment variable that names the `rpicam-vid` program to run, overriding the search
/// of `PATH` for `rpicam-vid` and then `libcamera-vid`.
pub const RPICAM_VID_ENV: &str = "RTCGEAR_RPICAM_VID";

/// How long the camera may stay silent before the child counts as stuck and is restarted.
const SILENCE: Duration = Duration::from_secs(5);

/// How an `rpicam-vid` source runs the camera.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpicamOptions {
    /// The camera's number, as `rpicam-vid --camera` takes it (`pi:N`).
    pub camera: u32,
    /// Picture size (default 1280x720). In raw mode the width is rounded down to a multiple
    /// of 64, so rows carry no padding.
    pub size: (u32, u32),
    /// Frames a second (default 30).
    pub fps: u32,
    /// Frames between two keyframes in H.264 mode (default: one a second).
    pub intra_period: Option<u32>,
    /// The hardware encoder's bitrate in kbit/s, H.264 mode (default: rpicam-vid's).
    pub bitrate_kbps: Option<u32>,
    /// The program to run; default: [`RPICAM_VID_ENV`], else `rpicam-vid` or `libcamera-vid`
    /// from `PATH`.
    pub program: Option<PathBuf>,
    /// More arguments for `rpicam-vid` (e.g. `--hflip`, `--awb indoor`).
    pub extra_args: Vec<String>,
}

impl Default for RpicamOptions {
    fn default() -> Self {
        RpicamOptions {
            camera: 0,
            size: (1280, 720),
            fps: 30,
            intra_period: None,
            bitrate_kbps: None,
            program: None,
            extra_args: Vec::new(),
        }
    }
}

impl RpicamOptions {
    /// Options for camera `camera` with the defaults for the rest.
    pub fn camera(camera: u32) -> RpicamOptions {
        RpicamOptions {
            camera,
            ..RpicamOptions::default()
        }
    }
}

/// Whether this machine's camera path should be the hardware H.264 encoder: `true` on a
/// Raspberry Pi that has one (all but the Pi 5 and later), from the device tree's model name.
pub fn has_hardware_h264() -> bool {
    let model = std::fs::read_to_string("/proc/device-tree/model").unwrap_or_default();
    let model = model.trim_end_matches('\0');
    model.starts_with("Raspberry Pi")
        && ![
            "Raspberry Pi 5",
            "Raspberry Pi Compute Module 5",
            "Raspberry Pi 500",
        ]
        .iter()
        .any(|m| model.starts_with(m))
}

/// What a running `rpicam-vid` writes: raw frames or H.264.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Yuv420,
    H264,
}

/// The child process and the threads that read it.
struct Running {
    child: Child,
    chunks: Receiver<Vec<u8>>,
    started: Instant,
}

/// Runs, reads and restarts one `rpicam-vid`.
struct Runner {
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    mode: Mode,
    /// Bytes of one raw frame (raw mode).
    frame_bytes: usize,
    child: Option<Running>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    failures: u32,
}

impl Runner {
    fn new(options: &RpicamOptions, mode: Mode) -> Result<(Runner, (u32, u32)), CaptureError> {
        let label = format!("pi:{}", options.camera);
        let program =
            find_program(options.program.as_deref()).ok_or_else(|| CaptureError::Device {
                path: label.clone(),
                reason: format!(
                    "rpicam-vid is not installed (nor libcamera-vid); on Raspberry Pi OS: \
                     `sudo apt install rpicam-apps`, or name the program in {RPICAM_VID_ENV}"
                ),
            })?;
        let (mut width, height) = options.size;
        if mode == Mode::Yuv420 {
            width = (width / 64 * 64).max(64);
        }
        let height = height & !1;
        if height < 2 || options.fps == 0 {
            return Err(CaptureError::InvalidArgument(format!(
                "{label}: {width}x{height} at {} fps is no video mode",
                options.fps
            )));
        }
        let mut args: Vec<OsString> = Vec::new();
        let mut arg = |a: String| args.push(a.into());
        for a in [
            "--camera".into(),
            options.camera.to_string(),
            "--timeout".into(),
            "0".into(),
            "--nopreview".into(),
            "--width".into(),
            width.to_string(),
            "--height".into(),
            height.to_string(),
            "--framerate".into(),
            options.fps.to_string(),
            "--flush".into(),
        ] {
            arg(a);
        }
        match mode {
            Mode::Yuv420 => {
                arg("--codec".into());
                arg("yuv420".into());
            }
            Mode::H264 => {
                for a in ["--codec", "h264", "--inline", "--profile", "baseline"] {
                    arg(a.into());
                }
                arg("--intra".into());
                arg(options
                    .intra_period
                    .unwrap_or(options.fps)
                    .max(1)
                    .to_string());
                if let Some(kbps) = options.bitrate_kbps {
                    arg("--bitrate".into());
                    arg((u64::from(kbps) * 1000).to_string());
                }
            }
        }
        for extra in &options.extra_args {
            arg(extra.clone());
        }
        arg("--output".into());
        arg("-".into());
        let runner = Runner {
            label,
            program,
            args,
            mode,
            frame_bytes: width as usize * height as usize * 3 / 2,
            child: None,
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            failures: 0,
        };
        Ok((runner, (width, height)))
    }

    /// Starts the child if it is not running, after a pause that grows with each failure.
    fn ensure_running(&mut self) -> Result<(), CaptureError> {
        if self.child.is_some() {
            return Ok(());
        }
        if self.failures > 0 {
            thread::sleep(Duration::from_millis(250 * u64::from(self.failures.min(8))));
        }
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.failures += 1;
                CaptureError::Io {
                    context: format!("{}: starting {}", self.label, self.program.display()),
                    source: e,
                }
            })?;
        tracing::info!(
            "{}: started {} (pid {}) for {}",
            self.label,
            self.program.display(),
            child.id(),
            if self.mode == Mode::H264 {
                "hardware H.264"
            } else {
                "raw YUV420"
            }
        );
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CaptureError::InvalidArgument(format!(
                "{}: the child's output pipes are missing",
                self.label
            )));
        };
        let tail = self.stderr_tail.clone();
        let label = self.label.clone();
        thread::Builder::new()
            .name(format!("{}-stderr", self.label))
            .spawn(move || log_stderr(&label, stderr, &tail))
            .map_err(|e| io_error(&self.label, "starting a thread", e))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let frame_bytes = (self.mode == Mode::Yuv420).then_some(self.frame_bytes);
        thread::Builder::new()
            .name(format!("{}-stdout", self.label))
            .spawn(move || read_stdout(stdout, frame_bytes, &tx))
            .map_err(|e| io_error(&self.label, "starting a thread", e))?;
        self.child = Some(Running {
            child,
            chunks: rx,
            started: Instant::now(),
        });
        Ok(())
    }

    /// The next chunk (a whole frame in raw mode), waiting at most `wait`; `Ok(None)` on a
    /// timeout shorter than [`SILENCE`]. A child that ends or goes silent is stopped and
    /// reported.
    fn next_chunk(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, CaptureError> {
        self.ensure_running()?;
        let Some(running) = self.child.as_mut() else {
            return Ok(None);
        };
        match running.chunks.recv_timeout(wait) {
            Ok(chunk) => {
                self.failures = 0;
                Ok(Some(chunk))
            }
            Err(RecvTimeoutError::Timeout) if wait < SILENCE => Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                Err(self.fail(format!("no video for {} s", SILENCE.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = running.child.wait().ok();
                let how = match status.and_then(|s| s.code()) {
                    Some(code) => format!("exited with status {code}"),
                    None => "was killed".into(),
                };
                let lived = running.started.elapsed();
                Err(self.fail(format!(
                    "{} {how} after {:.1} s",
                    self.program.display(),
                    lived.as_secs_f64()
                )))
            }
        }
    }

    /// Stops the child and makes the error that says why, with its last words.
    fn fail(&mut self, why: String) -> CaptureError {
        self.stop();
        self.failures += 1;
        // The stderr thread may still be reading the last lines; give it a moment.
        thread::sleep(Duration::from_millis(50));
        let tail: Vec<String> = lock(&self.stderr_tail).drain(..).collect();
        let said = tail.last().map(|l| format!(": {l}")).unwrap_or_default();
        CaptureError::Device {
            path: self.label.clone(),
            reason: format!("{why}{said}; restarting it"),
        }
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.child.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `program`, or the environment's choice, or `rpicam-vid` / `libcamera-vid` from `PATH`.
fn find_program(program: Option<&Path>) -> Option<PathBuf> {
    if let Some(program) = program {
        return Some(program.to_path_buf());
    }
    if let Some(program) = std::env::var_os(RPICAM_VID_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    ["rpicam-vid", "libcamera-vid"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Reads the child's stdout: whole frames of `frame_bytes` in raw mode, else chunks as they
/// come. Ends when the child closes it or the receiver goes.
fn read_stdout(mut stdout: ChildStdout, frame_bytes: Option<usize>, tx: &SyncSender<Vec<u8>>) {
    loop {
        let chunk = match frame_bytes {
            Some(size) => {
                let mut frame = vec![0; size];
                if stdout.read_exact(&mut frame).is_err() {
                    return;
                }
                frame
            }
            None => {
                let mut buf = vec![0; 64 * 1024];
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        buf
                    }
                }
            }
        };
        if tx.send(chunk).is_err() {
            return;
        }
    }
}

/// Puts the child's stderr lines into the log, keeping the last few for error messages.
fn log_stderr(label: &str, stderr: impl Read, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else {
            return;
        };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        if line.contains("ERROR") || line.contains("error") {
            tracing::warn!("{label}: {line}");
        } else {
            tracing::debug!("{label}: {line}");
        }
        let mut tail = lock(tail);
        if tail.len() == 8 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn io_error(label: &str, what: &str, source: std::io::Error) -> CaptureError {
    CaptureError::Io {
        context: format!("{label}: {what}"),
        source,
    }
}

/// A Raspberry Pi camera's raw frames (I420) from `rpicam-vid --codec yuv420`, for a Pi without
/// a hardware encoder (Pi 5) or when the pictures are transformed (stabilized, resized).
///
/// ```no_run
/// use rtcgear_capture::rpicam::{RpicamOptions, RpicamSource};
/// use rtcgear_capture::Source;
///
/// let mut options = RpicamOptions::camera(0);
/// options.size = (1280, 720);
/// let camera = RpicamSource::open(options)?;
/// println!("{:?}", camera.info());
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct RpicamSource {
    runner: Runner,
    info: SourceInfo,
    /// The first frame, read while opening so that a camera that cannot start fails there.
    first: Option<Frame>,
    counter: u64,
}

impl std::fmt::Debug for RpicamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpicamSource")
            .field("camera", &self.runner.label)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RpicamSource {
    /// Starts `rpicam-vid` for raw frames, and waits for the first (a few seconds at most), so
    /// that a missing or busy camera is an error here rather than a stream that never starts.
    pub fn open(options: RpicamOptions) -> Result<RpicamSource, CaptureError> {
        let (mut runner, (width, height)) = Runner::new(&options, Mode::Yuv420)?;
        runner.ensure_running()?;
        let mut source = RpicamSource {
            runner,
            info: SourceInfo {
                width,
                height,
                format: PixelFormat::I420,
                fps: FrameRate::from_int(options.fps).unwrap_or(FrameRate { num: 30, den: 1 }),
            },
            first: None,
            counter: 0,
        };
        match source.next() {
            Some(Ok(frame)) => source.first = Some(frame),
            Some(Err(err)) => return Err(err),
            None => {
                return Err(CaptureError::InvalidArgument(format!(
                    "{}: the camera's stream ended at once",
                    source.runner.label
                )))
            }
        }
        Ok(source)
    }

    fn frame(&self, data: Vec<u8>) -> Result<Frame, CaptureError> {
        let (width, height) = (self.info.width, self.info.height);
        let luma = width as usize * height as usize;
        let chroma = luma / 4;
        let mut data = data;
        let v = data.split_off(luma + chroma);
        let u = data.split_off(luma);
        let planes = vec![
            Plane::new(data, width as usize, width as usize, height as usize)?,
            Plane::new(
                u,
                width as usize / 2,
                width as usize / 2,
                height as usize / 2,
            )?,
            Plane::new(
                v,
                width as usize / 2,
                width as usize / 2,
                height as usize / 2,
            )?,
        ];
        Frame::from_planes(width, height, PixelFormat::I420, planes)
    }
}

impl Iterator for RpicamSource {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        let chunk = match self.runner.next_chunk(SILENCE) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Some(Err(self.runner.fail("no video".into()))),
            Err(err) => return Some(Err(err)),
        };
        let time = CaptureTime::now();
        let frame = self.frame(chunk).map(|f| f.with_meta(self.counter, time));
        self.counter += 1;
        Some(frame)
    }
}

impl Source for RpicamSource {
    fn info(&self) -> SourceInfo {
        self.info
    }
}

/// A Raspberry Pi camera's H.264 from the Pi's hardware encoder (`rpicam-vid --codec h264
/// --inline`), passed through to viewers: no encoding on the CPU at all. A keyframe comes every
/// [`RpicamOptions::intra_period`] frames, with SPS and PPS in band.
///
/// The stream is cut into pictures as it arrives; the last picture of a write goes out when
/// the pipe falls quiet for a moment rather than when the next one starts, so cutting adds
/// no frame of delay.
///
/// ```no_run
/// use rtcgear_capture::rpicam::{RpicamH264Source, RpicamOptions};
/// use rtcgear_capture::EncodedSource;
///
/// let camera = RpicamH264Source::open(RpicamOptions::camera(0))?;
/// for unit in camera.take(30) {
///     println!("{} bytes", unit?.data.len());
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct RpicamH264Source {
    runner: Runner,
    info: EncodedInfo,
    splitter: AccessUnitSplitter,
    /// A keyframe has come since the child started: until then pictures are dropped.
    started: bool,
    /// The first keyframe, read while opening to learn the stream's profile.
    first: Option<AccessUnit>,
    counter: u64,
}

impl std::fmt::Debug for RpicamH264Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpicamH264Source")
            .field("camera", &self.runner.label)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// How long the pipe must stay quiet after a slice for the picture to count as whole: far
/// less than a frame, far more than the pause between two writes of one picture.
const QUIET: Duration = Duration::from_millis(4);

impl RpicamH264Source {
    /// Starts `rpicam-vid` for hardware H.264, and waits for its first keyframe (an intra
    /// period at most), which tells the stream's profile.
    pub fn open(options: RpicamOptions) -> Result<RpicamH264Source, CaptureError> {
        let (mut runner, (width, height)) = Runner::new(&options, Mode::H264)?;
        runner.ensure_running()?;
        let mut source = RpicamH264Source {
            runner,
            info: EncodedInfo {
                width,
                height,
                fps: FrameRate::from_int(options.fps).unwrap_or(FrameRate { num: 30, den: 1 }),
                profile: None,
            },
            splitter: AccessUnitSplitter::new(),
            started: false,
            first: None,
            counter: 0,
        };
        // The first keyframe tells the profile, which viewers' answers must name; it comes
        // within an intra period, or the child is silent or dead and opening fails.
        match source.next() {
            Some(Ok(unit)) => source.first = Some(unit),
            Some(Err(err)) => return Err(err),
            None => {
                return Err(CaptureError::InvalidArgument(format!(
                    "{}: the camera's stream ended before its first keyframe",
                    source.runner.label
                )))
            }
        }
        Ok(source)
    }

    /// The next whole picture from the child.
    fn next_unit(&mut self) -> Result<Vec<u8>, CaptureError> {
        // Bounded: every round takes a chunk, or ends on a quiet pipe or the child's failure.
        loop {
            if let Some(unit) = self.splitter.next_unit() {
                return Ok(unit);
            }
            let wait = if self.splitter.holds_picture() {
                QUIET
            } else {
                SILENCE
            };
            match self.runner.next_chunk(wait) {
                Ok(Some(chunk)) => self.splitter.push(&chunk),
                Ok(None) => {
                    if let Some(unit) = self.splitter.finish() {
                        return Ok(unit);
                    }
                }
                Err(err) => {
                    self.splitter = AccessUnitSplitter::new();
                    self.started = false;
                    return Err(err);
                }
            }
        }
    }
}

impl Iterator for RpicamH264Source {
    type Item = Result<AccessUnit, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        // Bounded by the camera: pictures before the first keyframe are skipped, and the
        // child sends one every intra period.
        loop {
            let data = match self.next_unit() {
                Ok(data) => data,
                Err(err) => return Some(Err(err)),
            };
            let keyframe = crate::h264::is_keyframe(&data);
            if !self.started && !keyframe {
                continue;
            }
            if !self.started {
                if let Some(profile) = H264Profile::from_annexb(&data) {
                    self.info.profile = Some(profile);
                }
            }
            self.started = true;
            let unit = AccessUnit::h264(data, keyframe, self.counter, CaptureTime::now());
            self.counter += 1;
            return Some(Ok(unit));
        }
    }
}

impl EncodedSource for RpicamH264Source {
    fn info(&self) -> EncodedInfo {
        self.info
    }
}
