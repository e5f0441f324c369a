//! V4L2 cameras (feature `v4l2`, Linux): `/dev/videoN` through the `v4l` crate.
//!
//! The source negotiates a mode (pixel format, size, frame rate) from what the camera lists,
//! taking the nearest size and then the nearest rate when the exact ones are missing, and
//! memory-maps the driver's buffers. Raw formats (YUYV, NV12, YU12) become frames of the same
//! layout with one copy; MJPEG is decoded by `zune-jpeg` into RGB frames. Cameras with their
//! own H.264 encoder (UVC 1.5 cameras, some Logitech ones) are read by [`V4l2H264Source`],
//! whose access units are passed through to viewers without decoding.
//!
//! A camera that goes away mid-stream (unplugged, driver reset) makes the source yield an error
//! and then try to open it again, with a growing pause between tries (at most
//! [`MAX_BACKOFF`]), until it is back. Every call to `next` returns within about the frame
//! timeout plus that pause, so a caller can always show what is going on.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::encoded::{AccessUnit, EncodedInfo, EncodedSource};
use crate::h264::{self, AccessUnitSplitter, H264Profile};
use crate::{CaptureError, CaptureTime, Frame, FrameRate, PixelFormat, Plane, Source, SourceInfo};

/// The longest pause between two tries to reopen a camera that went away.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The size asked for when the options name none.
const DEFAULT_SIZE: (u32, u32) = (1280, 720);
/// The rate asked for when the options name none.
const DEFAULT_FPS: u32 = 30;
/// Buffers the driver fills while we convert one.
const BUFFERS: u32 = 4;
/// Pictures an H.264 camera may send, after opening or reopening, before its first keyframe
/// counts as late: ten seconds at 30 fps.
const MAX_PICTURES_BEFORE_KEYFRAME: usize = 300;
/// Bounds on what `list` asks a driver for, so a strange driver cannot make it loop long.
const MAX_SIZES: usize = 64;
const MAX_RATES: usize = 32;

/// A pixel format that a V4L2 camera delivers and [`V4l2Source`] can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum V4l2Format {
    /// Packed YUV 4:2:2 (`YUYV`), the format every UVC webcam offers; frames stay
    /// [`PixelFormat::Yuyv`].
    Yuyv,
    /// Semi-planar YUV 4:2:0 (`NV12`); frames stay [`PixelFormat::Nv12`].
    Nv12,
    /// Planar YUV 4:2:0 (`YU12`, also called I420); frames are [`PixelFormat::I420`], the
    /// encoder's own format.
    Yu12,
    /// Motion JPEG (`MJPG`), which cameras use for large sizes at full rate; decoded into
    /// [`PixelFormat::Rgb24`] frames.
    Mjpeg,
    /// H.264 (`H264`) from the camera's own encoder: read by [`V4l2H264Source`] and passed
    /// through, never decoded, so [`V4l2Source`] does not take it.
    H264,
}

impl V4l2Format {
    /// Every format [`V4l2Source`] reads, in the order preferred when several fit equally
    /// well: the ones that need no conversion for the encoder first, the one that needs
    /// decoding last. ([`V4l2Format::H264`] is [`V4l2H264Source`]'s.)
    pub const ALL: [V4l2Format; 4] = [
        V4l2Format::Yu12,
        V4l2Format::Nv12,
        V4l2Format::Yuyv,
        V4l2Format::Mjpeg,
    ];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            V4l2Format::Yuyv => *b"YUYV",
            V4l2Format::Nv12 => *b"NV12",
            V4l2Format::Yu12 => *b"YU12",
            V4l2Format::Mjpeg => *b"MJPG",
            V4l2Format::H264 => *b"H264",
        }
    }

    /// The format with this four-character code, if the source can read it (`JPEG`, which some
    /// drivers use for the same thing, counts as MJPEG).
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<V4l2Format> {
        match &fourcc {
            b"YUYV" => Some(V4l2Format::Yuyv),
            b"NV12" => Some(V4l2Format::Nv12),
            b"YU12" => Some(V4l2Format::Yu12),
            b"MJPG" | b"JPEG" => Some(V4l2Format::Mjpeg),
            b"H264" => Some(V4l2Format::H264),
            _ => None,
        }
    }

    /// The pixel format of the frames [`V4l2Source`] yields for this camera format; `None` for
    /// H.264, which is passed through encoded.
    pub fn pixel_format(self) -> Option<PixelFormat> {
        match self {
            V4l2Format::Yuyv => Some(PixelFormat::Yuyv),
            V4l2Format::Nv12 => Some(PixelFormat::Nv12),
            V4l2Format::Yu12 => Some(PixelFormat::I420),
            V4l2Format::Mjpeg => Some(PixelFormat::Rgb24),
            V4l2Format::H264 => None,
        }
    }

    fn rank(self) -> usize {
        // The position in ALL; H.264, not in it, comes after every other.
        V4l2Format::ALL
            .iter()
            .position(|&f| f == self)
            .unwrap_or(V4l2Format::ALL.len())
    }
}

impl fmt::Display for V4l2Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fourcc_string(self.fourcc()))
    }
}

impl FromStr for V4l2Format {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yuyv" | "yuy2" | "yuyv422" => Ok(V4l2Format::Yuyv),
            "nv12" => Ok(V4l2Format::Nv12),
            "yu12" | "i420" | "yuv420p" => Ok(V4l2Format::Yu12),
            "mjpg" | "mjpeg" | "jpeg" => Ok(V4l2Format::Mjpeg),
            "h264" | "avc" => Ok(V4l2Format::H264),
            _ => Err(CaptureError::InvalidArgument(format!(
                "unknown camera format {s:?} (expected one of yuyv, nv12, yu12, mjpeg, h264)"
            ))),
        }
    }
}

/// What a [`V4l2Source`] asks the camera for. Every field is a hint: the nearest mode the
/// camera offers is taken.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct V4l2Options {
    /// Frame size (default: the nearest to 1280x720).
    pub size: Option<(u32, u32)>,
    /// Frames a second (default: the nearest to 30).
    pub fps: Option<u32>,
    /// Pixel format (default: the best one at the chosen size and rate; an explicit format the
    /// camera lacks is an error).
    pub format: Option<V4l2Format>,
    /// How long `next` waits for a frame before it counts the camera as gone (default 2 s).
    pub frame_timeout: Duration,
    /// Reopen a camera that went away, until it is back (default `true`).
    pub reopen: bool,
}

impl Default for V4l2Options {
    fn default() -> Self {
        V4l2Options {
            size: None,
            fps: None,
            format: None,
            frame_timeout: Duration::from_secs(2),
            reopen: true,
        }
    }
}

/// A camera as [`V4l2Source::list`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The device node, e.g. `/dev/video0`.
    pub path: PathBuf,
    /// The card's name, e.g. `HD Pro Webcam C920`.
    pub name: String,
    /// The kernel driver, e.g. `uvcvideo`.
    pub driver: String,
    /// Where it is attached, e.g. `usb-0000:00:14.0-1`.
    pub bus: String,
    /// What it can deliver.
    pub formats: Vec<FormatInfo>,
}

/// One pixel format of a camera, with its sizes and rates.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FormatInfo {
    /// The four-character code, e.g. `YUYV`.
    pub fourcc: String,
    /// The driver's description, e.g. `YUYV 4:2:2`.
    pub description: String,
    /// The format as [`V4l2Source`] reads it; `None` when it cannot (yet).
    pub format: Option<V4l2Format>,
    /// Sizes with their frame rates. For a camera with a range of sizes, these are the smallest
    /// and the largest, and `stepwise` is set.
    pub sizes: Vec<SizeInfo>,
    /// Whether the sizes are a range (any size between the two listed, in steps).
    pub stepwise: bool,
}

/// A frame size and the rates a camera offers at it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SizeInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rates, as the driver lists them (for a range: its ends).
    pub rates: Vec<FrameRate>,
}

/// A V4L2 camera as a [`Source`].
///
/// ```no_run
/// use rtcgear_capture::{Source, V4l2Options, V4l2Source};
///
/// for camera in V4l2Source::list() {
///     println!("{} {}", camera.path.display(), camera.name);
/// }
/// let mut options = V4l2Options::default();
/// options.size = Some((640, 480));
/// options.fps = Some(30);
/// let source = V4l2Source::open("/dev/video0", options)?;
/// println!("{:?}", source.info());
/// for frame in source.take(10) {
///     println!("frame {}", frame?.counter());
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct V4l2Source {
    link: Link,
    info: SourceInfo,
    counter: u64,
}

impl V4l2Source {
    /// Opens the camera at `path` (`/dev/video0`) and negotiates the nearest mode to `options`.
    ///
    /// Errors say plainly what is wrong: no such device, in use by another program, not a
    /// capture device, no permission, no mode in a format this source reads. H.264 is
    /// [`V4l2H264Source`]'s.
    pub fn open(path: impl AsRef<Path>, options: V4l2Options) -> Result<V4l2Source, CaptureError> {
        let path = path.as_ref().to_path_buf();
        if options.format == Some(V4l2Format::H264) {
            return Err(CaptureError::InvalidArgument(format!(
                "{}: H.264 from a camera is passed through encoded: open it with V4l2H264Source",
                path.display()
            )));
        }
        let link = Link::open(path, options)?;
        let mode = link.mode;
        let format = mode.format.pixel_format().ok_or_else(|| {
            link.device_error(&format!("{} gives no frames to read", mode.format))
        })?;
        Ok(V4l2Source {
            info: SourceInfo {
                width: mode.width,
                height: mode.height,
                format,
                fps: mode.fps,
            },
            link,
            counter: 0,
        })
    }

    /// The cameras on this machine (`/dev/video*` nodes that capture video), with their formats,
    /// sizes and frame rates, in device order. Nodes that cannot be opened are left out.
    pub fn list() -> Vec<DeviceInfo> {
        let mut nodes: Vec<(u32, PathBuf)> = match std::fs::read_dir("/dev") {
            Ok(entries) => entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name();
                    let number = name.to_str()?.strip_prefix("video")?.parse().ok()?;
                    Some((number, entry.path()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        nodes.sort();
        nodes
            .into_iter()
            .filter_map(|(_, path)| match describe(&path) {
                Ok(info) => info,
                Err(err) => {
                    tracing::debug!("{}: skipped: {err}", path.display());
                    None
                }
            })
            .collect()
    }

    /// The mode in use: the camera's format, size and rate.
    pub fn format(&self) -> V4l2Format {
        self.link.mode.format
    }
}

impl Iterator for V4l2Source {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let frame = self.link.next_buffer(to_frame)?;
        Some(frame.map(|frame| {
            let frame = frame.with_meta(self.counter, CaptureTime::now());
            self.counter += 1;
            frame
        }))
    }
}

impl Source for V4l2Source {
    fn info(&self) -> SourceInfo {
        self.info
    }
}

/// A camera's own H.264 (V4L2 format `H264`: UVC 1.5 cameras, some Logitech ones), as an
/// [`EncodedSource`] whose access units go to viewers as they are: no decoding, no encoding.
///
/// It negotiates the nearest H.264 mode to the options as [`V4l2Source`] does, reads one
/// picture per buffer (the UVC way; a buffer with several is cut into pictures), puts the last
/// SPS and PPS the camera sent in front of every IDR picture that lacks them, and starts on a
/// keyframe, after opening and after the camera comes back from an unplug. Opening reads up to
/// the first keyframe, to learn the stream's profile, and refuses
/// ([`CaptureError::NotPassthrough`]) one browsers do not decode; a B slice later ends the
/// stream with the same error. Keyframes come only as the camera sends them: a viewer that
/// loses a picture waits for the next one.
///
/// ```no_run
/// use rtcgear_capture::{EncodedSource, V4l2H264Source, V4l2Options};
///
/// let mut options = V4l2Options::default();
/// options.size = Some((1920, 1080));
/// let camera = V4l2H264Source::open("/dev/video0", options)?;
/// println!("{:?}", camera.info().profile);
/// for unit in camera.take(30) {
///     let unit = unit?;
///     println!("{} bytes, keyframe: {}", unit.data.len(), unit.keyframe);
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct V4l2H264Source {
    link: Link,
    info: EncodedInfo,
    pictures: CameraH264,
    /// The first keyframe, read while opening to learn the profile.
    first: Option<AccessUnit>,
    counter: u64,
    ended: bool,
}

impl V4l2H264Source {
    /// Opens the camera at `path` in its H.264 format (whatever `options.format` says), at the
    /// nearest size and rate to `options`, and waits for its first keyframe.
    pub fn open(
        path: impl AsRef<Path>,
        options: V4l2Options,
    ) -> Result<V4l2H264Source, CaptureError> {
        let mut options = options;
        options.format = Some(V4l2Format::H264);
        let link = Link::open(path.as_ref().to_path_buf(), options)?;
        let mode = link.mode;
        let mut source = V4l2H264Source {
            link,
            info: EncodedInfo {
                width: mode.width,
                height: mode.height,
                fps: mode.fps,
                profile: None,
            },
            pictures: CameraH264::default(),
            first: None,
            counter: 0,
            ended: false,
        };
        match source.next() {
            Some(Ok(unit)) => source.first = Some(unit),
            Some(Err(err)) => return Err(err),
            None => {
                return Err(source
                    .link
                    .device_error("the camera went away before its first keyframe"))
            }
        }
        tracing::info!(
            "{}: passing the camera's H.264 through ({})",
            source.link.path.display(),
            source
                .info
                .profile
                .map_or_else(|| "profile unknown".into(), |p| p.to_string())
        );
        Ok(source)
    }
}

impl Iterator for V4l2H264Source {
    type Item = Result<AccessUnit, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        if self.ended {
            return None;
        }
        // Bounded: each round reads one buffer, and a camera sends a keyframe well within
        // MAX_PICTURES_BEFORE_KEYFRAME pictures.
        for _ in 0..MAX_PICTURES_BEFORE_KEYFRAME {
            match self.pictures.next_picture(&self.link.path) {
                Ok(Some((data, keyframe))) => {
                    if let Some(profile) = self.pictures.profile {
                        self.info.profile = Some(profile);
                    }
                    let unit = AccessUnit {
                        data,
                        keyframe,
                        counter: self.counter,
                        time: CaptureTime::now(),
                    };
                    self.counter += 1;
                    return Some(Ok(unit));
                }
                Ok(None) => {}
                Err(err) => {
                    self.ended = true;
                    return Some(Err(err));
                }
            }
            let pictures = &mut self.pictures;
            match self.link.next_buffer(|data, _| {
                pictures.push(data);
                Ok(())
            })? {
                Ok(()) => {}
                Err(err) => {
                    // After the camera comes back, start again on a keyframe.
                    self.pictures = CameraH264::default();
                    return Some(Err(err));
                }
            }
        }
        Some(Err(self.link.device_error(&format!(
            "no keyframe in {MAX_PICTURES_BEFORE_KEYFRAME} pictures; still waiting"
        ))))
    }
}

impl EncodedSource for V4l2H264Source {
    fn info(&self) -> EncodedInfo {
        self.info
    }
}

impl fmt::Debug for V4l2H264Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V4l2H264Source")
            .field("path", &self.link.path)
            .field("mode", &self.link.mode)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// A camera's H.264 buffers made into access units fit to pass through.
#[derive(Debug, Default)]
struct CameraH264 {
    splitter: AccessUnitSplitter,
    /// Whole pictures not passed on yet.
    ready: std::collections::VecDeque<Vec<u8>>,
    /// The last SPS and PPS seen (NAL units without start codes).
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The profile of the last SPS.
    profile: Option<H264Profile>,
    /// Whether a keyframe has been passed on: until then pictures are dropped.
    started: bool,
}

impl CameraH264 {
    /// Takes one filled buffer: one picture (UVC fills one a buffer), several, or only
    /// parameter sets.
    fn push(&mut self, buffer: &[u8]) {
        for nal in h264::nal_units(buffer) {
            match h264::nal_type(nal) {
                h264::nal_type::SPS => {
                    self.profile = H264Profile::from_sps(nal).or(self.profile);
                    self.sps = Some(nal.to_vec());
                }
                h264::nal_type::PPS => self.pps = Some(nal.to_vec()),
                _ => {}
            }
        }
        self.splitter.push(buffer);
        while let Some(unit) = self.splitter.next_unit() {
            self.ready.push_back(unit);
        }
        // The buffer ends its last picture; what holds no slice (parameter sets alone) is
        // remembered above and dropped here.
        self.ready.extend(self.splitter.finish());
    }

    /// The next picture to pass on and whether it is a keyframe; `None` until more buffers
    /// come. Pictures before the first keyframe (with parameter sets known) are dropped.
    fn next_picture(&mut self, path: &Path) -> Result<Option<(Vec<u8>, bool)>, CaptureError> {
        let refuse = |why: String| {
            Err(CaptureError::NotPassthrough(format!(
                "{}: {why}",
                path.display()
            )))
        };
        while let Some(unit) = self.ready.pop_front() {
            if let Some(profile) = self.profile.filter(|p| !p.browsers_decode()) {
                return refuse(format!("browsers do not decode its profile, {profile}"));
            }
            if h264::has_b_slices(&unit) {
                return refuse(
                    "the camera sends B-frames, which browsers' WebRTC decoders do not expect"
                        .into(),
                );
            }
            let keyframe = h264::is_keyframe(&unit);
            if !keyframe {
                if self.started {
                    return Ok(Some((unit, false)));
                }
                continue;
            }
            let has_sets = h264::nal_units(&unit)
                .any(|nal| h264::nal_type(nal) == h264::nal_type::SPS)
                && h264::nal_units(&unit).any(|nal| h264::nal_type(nal) == h264::nal_type::PPS);
            let data = if has_sets {
                unit
            } else if let (Some(sps), Some(pps)) = (&self.sps, &self.pps) {
                let mut data = Vec::with_capacity(unit.len() + sps.len() + pps.len() + 8);
                for nal in [sps, pps] {
                    data.extend_from_slice(&[0, 0, 0, 1]);
                    data.extend_from_slice(nal);
                }
                data.extend_from_slice(&unit);
                data
            } else {
                // A keyframe no decoder can start on: wait for the parameter sets.
                continue;
            };
            self.started = true;
            return Ok(Some((data, true)));
        }
        Ok(None)
    }
}

/// A camera in one negotiated mode, open or waiting to be reopened: what both sources share.
struct Link {
    path: PathBuf,
    options: V4l2Options,
    mode: Mode,
    state: State,
}

impl Link {
    fn open(path: PathBuf, options: V4l2Options) -> Result<Link, CaptureError> {
        let wanted = Wanted {
            size: options.size,
            fps: options.fps,
            format: options.format,
        };
        let camera = Camera::open(&path, &wanted, options.frame_timeout)?;
        let mode = camera.mode;
        tracing::info!(
            "{}: {} {}x{} at {} fps",
            path.display(),
            mode.format,
            mode.width,
            mode.height,
            mode.fps
        );
        Ok(Link {
            path,
            options,
            mode,
            state: State::Open(Box::new(camera)),
        })
    }

    /// The next filled buffer (its used part), through `take`. A camera that went away is
    /// reopened first, after the pause its failures call for; `None` when it went away and
    /// [`V4l2Options::reopen`] is off.
    fn next_buffer<T>(
        &mut self,
        take: impl FnOnce(&[u8], &Layout) -> Result<T, CaptureError>,
    ) -> Option<Result<T, CaptureError>> {
        match self.state {
            State::Open(_) => Some(self.read(take)),
            State::Closed { .. } if !self.options.reopen => None,
            State::Closed { retry_at, failures } => {
                // The pause is bounded by MAX_BACKOFF, so one call stays bounded in time.
                let wait = retry_at.saturating_duration_since(Instant::now());
                thread::sleep(wait.min(MAX_BACKOFF));
                Some(self.reopen(failures).and_then(|()| self.read(take)))
            }
        }
    }

    /// Reads one buffer from the open camera; on a device error, closes it.
    fn read<T>(
        &mut self,
        take: impl FnOnce(&[u8], &Layout) -> Result<T, CaptureError>,
    ) -> Result<T, CaptureError> {
        let State::Open(camera) = &mut self.state else {
            return Err(self.device_error("not open"));
        };
        let layout = camera.layout;
        let result = camera.stream.next().map(|(buffer, meta)| {
            let used = (meta.bytesused as usize).min(buffer.len());
            let used = if used == 0 { buffer.len() } else { used };
            take(&buffer[..used], &layout)
        });
        match result {
            // A bad buffer (a torn JPEG) is the error of that frame: the camera is fine.
            Ok(taken) => taken,
            Err(err) => {
                let reason = if err.kind() == io::ErrorKind::TimedOut {
                    format!(
                        "no frame for {:.1} s; reopening",
                        self.options.frame_timeout.as_secs_f64()
                    )
                } else {
                    format!("{}; reopening", describe_io(&err))
                };
                self.close(0);
                Err(self.device_error(&reason))
            }
        }
    }

    /// Tries once to open the camera again in the mode it had.
    fn reopen(&mut self, failures: u32) -> Result<(), CaptureError> {
        let wanted = Wanted {
            size: Some((self.mode.width, self.mode.height)),
            fps: Some(self.mode.fps.num / self.mode.fps.den.max(1)),
            format: Some(self.mode.format),
        };
        match Camera::open(&self.path, &wanted, self.options.frame_timeout) {
            Ok(camera)
                if camera.mode.format == self.mode.format
                    && (camera.mode.width, camera.mode.height)
                        == (self.mode.width, self.mode.height) =>
            {
                tracing::info!("{}: back", self.path.display());
                self.state = State::Open(Box::new(camera));
                Ok(())
            }
            Ok(camera) => {
                self.close(failures + 1);
                Err(self.device_error(&format!(
                    "came back as {} {}x{} instead of {} {}x{}; retrying",
                    camera.mode.format,
                    camera.mode.width,
                    camera.mode.height,
                    self.mode.format,
                    self.mode.width,
                    self.mode.height
                )))
            }
            Err(err) => {
                self.close(failures + 1);
                let reason = match err {
                    CaptureError::Device { reason, .. } => reason,
                    other => other.to_string(),
                };
                Err(self.device_error(&format!("cannot reopen: {reason}; retrying")))
            }
        }
    }

    fn close(&mut self, failures: u32) {
        let pause = backoff(failures);
        self.state = State::Closed {
            retry_at: Instant::now() + pause,
            failures,
        };
    }

    fn device_error(&self, reason: &str) -> CaptureError {
        CaptureError::Device {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V4l2Source")
            .field("path", &self.link.path)
            .field("mode", &self.link.mode)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

enum State {
    Open(Box<Camera>),
    Closed { retry_at: Instant, failures: u32 },
}

/// The pause before try number `failures + 1` to reopen: 0, then 250 ms more each time, up to
/// MAX_BACKOFF.
fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(250) * failures).min(MAX_BACKOFF)
}

/// An open, negotiated camera with its buffers mapped.
struct Camera {
    // Declared before `_device` so the buffers are unmapped before the handle can close.
    stream: Stream<'static>,
    _device: Device,
    mode: Mode,
    layout: Layout,
}

impl Camera {
    fn open(path: &Path, wanted: &Wanted, timeout: Duration) -> Result<Camera, CaptureError> {
        let fail = |reason: String| CaptureError::Device {
            path: path.display().to_string(),
            reason,
        };
        let device = Device::with_path(path).map_err(|err| fail(describe_io(&err)))?;
        let caps = device.query_caps().map_err(|err| {
            fail(if err.raw_os_error() == Some(libc::ENOTTY) {
                "not a V4L2 device".into()
            } else {
                describe_io(&err)
            })
        })?;
        check_caps(caps.capabilities).map_err(fail)?;

        let candidates = candidates(&device, wanted);
        let mode = choose(&candidates, wanted).ok_or_else(|| {
            let offered: Vec<String> = device
                .enum_formats()
                .unwrap_or_default()
                .iter()
                .map(|d| fourcc_string(d.fourcc.repr))
                .collect();
            fail(match wanted.format {
                Some(format) => format!(
                    "the camera does not offer {format}; it offers {}",
                    offered.join(", ")
                ),
                None => format!(
                    "no format this program reads (YUYV, NV12, YU12, MJPEG); the camera offers {}",
                    offered.join(", ")
                ),
            })
        })?;

        let asked = Format::new(mode.width, mode.height, FourCC::new(&mode.format.fourcc()));
        let got = Capture::set_format(&device, &asked).map_err(|err| fail(describe_io(&err)))?;
        let format = V4l2Format::from_fourcc(got.fourcc.repr).ok_or_else(|| {
            fail(format!(
                "asked for {} and the driver chose {}",
                mode.format,
                fourcc_string(got.fourcc.repr)
            ))
        })?;
        let mut mode = Mode {
            format,
            width: got.width,
            height: got.height,
            fps: mode.fps,
        };
        // The interval is seconds a frame: the inverse of the rate.
        let params = Parameters::new(Fraction::new(mode.fps.den, mode.fps.num));
        match Capture::set_params(&device, &params) {
            Ok(set) => {
                if let Some(fps) = FrameRate::new(set.interval.denominator, set.interval.numerator)
                {
                    mode.fps = fps;
                }
            }
            Err(err) => tracing::debug!("{}: cannot set the frame rate: {err}", path.display()),
        }
        let layout = Layout {
            format: mode.format,
            width: mode.width,
            height: mode.height,
            stride: got.stride as usize,
        };
        layout.check().map_err(|err| fail(err.to_string()))?;

        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(|err| fail(describe_io(&err)))?;
        stream.set_timeout(timeout);
        Ok(Camera {
            stream,
            _device: device,
            mode,
            layout,
        })
    }
}

fn check_caps(caps: Flags) -> Result<(), String> {
    if !caps.contains(Flags::VIDEO_CAPTURE) {
        return Err(if caps.contains(Flags::VIDEO_CAPTURE_MPLANE) {
            "a multi-planar capture device, which this program does not read yet".into()
        } else {
            "not a video capture device (another node of the same camera may be)".into()
        });
    }
    if !caps.contains(Flags::STREAMING) {
        return Err("the driver does not offer streaming I/O".into());
    }
    Ok(())
}

/// Words for the errors that opening and using a camera give.
fn describe_io(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::ENOENT) => "no such device".into(),
        Some(libc::ENODEV) | Some(libc::ENXIO) => "the device is gone (unplugged?)".into(),
        Some(libc::EBUSY) => "the device is in use by another program".into(),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied (is this user in the `video` group?)".into()
        }
        Some(libc::ENOTTY) => "not a V4L2 device".into(),
        _ => err.to_string(),
    }
}

/// What the options ask for.
#[derive(Clone, Copy, Debug, Default)]
struct Wanted {
    size: Option<(u32, u32)>,
    fps: Option<u32>,
    format: Option<V4l2Format>,
}

/// A negotiated mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mode {
    format: V4l2Format,
    width: u32,
    height: u32,
    fps: FrameRate,
}

/// A size the camera offers in a format, with the rates at that size (empty when the driver
/// does not say).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Candidate {
    format: V4l2Format,
    width: u32,
    height: u32,
    rates: Vec<FrameRate>,
}

/// The mode nearest to `wanted`: the nearest size first, then the nearest rate, then the
/// preferred format (see [`V4l2Format::ALL`]).
fn choose(candidates: &[Candidate], wanted: &Wanted) -> Option<Mode> {
    let (want_w, want_h) = wanted.size.unwrap_or(DEFAULT_SIZE);
    let want_fps = f64::from(wanted.fps.unwrap_or(DEFAULT_FPS));
    let fallback_fps = FrameRate::from_int(wanted.fps.unwrap_or(DEFAULT_FPS).max(1))?;
    candidates
        .iter()
        .filter(|c| match wanted.format {
            Some(format) => format == c.format,
            // H.264 is taken only when asked for: V4l2Source cannot read it.
            None => c.format != V4l2Format::H264,
        })
        .map(|c| {
            let fps = c
                .rates
                .iter()
                .copied()
                .min_by(|a, b| {
                    (a.as_f64() - want_fps)
                        .abs()
                        .total_cmp(&(b.as_f64() - want_fps).abs())
                })
                .unwrap_or(fallback_fps);
            let size_cost =
                u64::from(c.width.abs_diff(want_w)) + u64::from(c.height.abs_diff(want_h));
            // Rates compared in thousandths of a frame a second.
            let rate_cost = ((fps.as_f64() - want_fps).abs() * 1000.0) as u64;
            let mode = Mode {
                format: c.format,
                width: c.width,
                height: c.height,
                fps,
            };
            ((size_cost, rate_cost, c.format.rank()), mode)
        })
        .min_by_key(|(cost, _)| *cost)
        .map(|(_, mode)| mode)
}

/// Everything the camera offers in formats we read, as candidates for [`choose`]. A range of
/// sizes or rates contributes its ends and the point nearest to what is wanted.
fn candidates(device: &Device, wanted: &Wanted) -> Vec<Candidate> {
    let (want_w, want_h) = wanted.size.unwrap_or(DEFAULT_SIZE);
    let want_fps = wanted.fps.unwrap_or(DEFAULT_FPS).max(1);
    let mut out = Vec::new();
    for description in device.enum_formats().unwrap_or_default() {
        let Some(format) = V4l2Format::from_fourcc(description.fourcc.repr) else {
            continue;
        };
        let sizes = sizes_of(device, description.fourcc, (want_w, want_h));
        for (width, height) in sizes.sizes {
            let rates = rates_of(device, description.fourcc, width, height, want_fps);
            out.push(Candidate {
                format,
                width,
                height,
                rates,
            });
        }
    }
    out
}

struct Sizes {
    sizes: Vec<(u32, u32)>,
    stepwise: bool,
}

/// The sizes of one format; a range gives its ends and the size nearest to `want`. A driver
/// that does not enumerate sizes gives `want` itself (the driver adjusts it when set).
fn sizes_of(device: &Device, fourcc: FourCC, want: (u32, u32)) -> Sizes {
    let listed = device.enum_framesizes(fourcc).unwrap_or_default();
    let mut sizes = Vec::new();
    let mut stepwise = false;
    for size in listed.into_iter().take(MAX_SIZES) {
        match size.size {
            FrameSizeEnum::Discrete(d) => sizes.push((d.width, d.height)),
            FrameSizeEnum::Stepwise(s) => {
                stepwise = true;
                let snap = |want: u32, min: u32, max: u32, step: u32| {
                    let want = want.clamp(min, max);
                    let step = step.max(1);
                    (min + (want - min) / step * step).min(max)
                };
                sizes.push((s.min_width, s.min_height));
                sizes.push((
                    snap(want.0, s.min_width, s.max_width, s.step_width),
                    snap(want.1, s.min_height, s.max_height, s.step_height),
                ));
                sizes.push((s.max_width, s.max_height));
            }
        }
    }
    if sizes.is_empty() {
        sizes.push(want);
    }
    Sizes { sizes, stepwise }
}

/// The rates at one size; a range gives its ends and `want` clamped into it.
fn rates_of(device: &Device, fourcc: FourCC, width: u32, height: u32, want: u32) -> Vec<FrameRate> {
    let rate = |interval: Fraction| FrameRate::new(interval.denominator, interval.numerator);
    let mut rates = Vec::new();
    let listed = device
        .enum_frameintervals(fourcc, width, height)
        .unwrap_or_default();
    for interval in listed.into_iter().take(MAX_RATES) {
        match interval.interval {
            FrameIntervalEnum::Discrete(f) => rates.extend(rate(f)),
            FrameIntervalEnum::Stepwise(s) => {
                // The longest interval is the lowest rate.
                let (low, high) = (rate(s.max), rate(s.min));
                rates.extend(low);
                rates.extend(high);
                if let (Some(low), Some(high)) = (low, high) {
                    let want = f64::from(want);
                    if want > low.as_f64() && want < high.as_f64() {
                        rates.extend(FrameRate::from_int(want as u32));
                    }
                }
            }
        }
    }
    rates
}

/// One node as [`V4l2Source::list`] shows it; `None` for a node that does not capture video.
fn describe(path: &Path) -> io::Result<Option<DeviceInfo>> {
    let device = Device::with_path(path)?;
    let caps = device.query_caps()?;
    if check_caps(caps.capabilities).is_err() {
        return Ok(None);
    }
    let mut formats = Vec::new();
    for description in device.enum_formats()? {
        let fourcc = description.fourcc;
        let Sizes {
            sizes: mut listed,
            stepwise,
        } = sizes_of(&device, fourcc, DEFAULT_SIZE);
        if stepwise {
            // Just the ends of the range, not the point picked for the default size.
            listed = vec![listed[0], listed[listed.len() - 1]];
        }
        let sizes = listed
            .into_iter()
            .map(|(width, height)| {
                let mut rates = rates_of(&device, fourcc, width, height, DEFAULT_FPS);
                rates.sort_by(|a, b| b.as_f64().total_cmp(&a.as_f64()));
                rates.dedup();
                SizeInfo {
                    width,
                    height,
                    rates,
                }
            })
            .collect();
        formats.push(FormatInfo {
            fourcc: fourcc_string(fourcc.repr),
            description: description.description,
            format: V4l2Format::from_fourcc(fourcc.repr),
            sizes,
            stepwise,
        });
    }
    Ok(Some(DeviceInfo {
        path: path.to_path_buf(),
        name: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        formats,
    }))
}

/// A fourcc as text, with anything unprintable as `?`.
fn fourcc_string(fourcc: [u8; 4]) -> String {
    fourcc
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// How the driver lays out one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    format: V4l2Format,
    width: u32,
    height: u32,
    /// Bytes from one row to the next in the first plane; 0 (some drivers) means packed, and
    /// MJPEG has none.
    stride: usize,
}

impl Layout {
    /// The first plane's stride, never below its row.
    fn stride(&self) -> usize {
        let row = match self.format {
            V4l2Format::Yuyv => self.width as usize * 2,
            _ => self.width as usize,
        };
        self.stride.max(row)
    }

    /// Whether frames of this size can exist in this format (any size, for H.264).
    fn check(&self) -> Result<(), CaptureError> {
        match self.format.pixel_format() {
            Some(format) => Frame::new(self.width, self.height, format).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// A frame from one filled buffer (`data` is the used part).
fn to_frame(data: &[u8], layout: &Layout) -> Result<Frame, CaptureError> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    let stride = layout.stride();
    let short = |needed: usize| {
        CaptureError::InvalidGeometry(format!(
            "a {}x{} {} buffer needs {needed} bytes, the camera gave {}",
            layout.width,
            layout.height,
            layout.format,
            data.len()
        ))
    };
    // Plane `len` bytes from `offset`, or the error that says the buffer is short.
    let take = |offset: usize, len: usize| {
        data.get(offset..offset + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| short(offset + len))
    };
    let not_frames = || {
        CaptureError::InvalidArgument(
            "H.264 buffers are passed through, not made into frames".into(),
        )
    };
    let planes = match layout.format {
        V4l2Format::Mjpeg => return decode_mjpeg(data, layout.width, layout.height),
        V4l2Format::H264 => return Err(not_frames()),
        V4l2Format::Yuyv => vec![Plane::new(take(0, stride * h)?, stride, w * 2, h)?],
        V4l2Format::Nv12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            vec![
                Plane::new(take(0, stride * h)?, stride, w, h)?,
                Plane::new(take(stride * h, stride * ch)?, stride, cw * 2, ch)?,
            ]
        }
        V4l2Format::Yu12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let chroma_stride = stride.div_ceil(2);
            let u_at = stride * h;
            let v_at = u_at + chroma_stride * ch;
            vec![
                Plane::new(take(0, stride * h)?, stride, w, h)?,
                Plane::new(take(u_at, chroma_stride * ch)?, chroma_stride, cw, ch)?,
                Plane::new(take(v_at, chroma_stride * ch)?, chroma_stride, cw, ch)?,
            ]
        }
    };
    let format = layout.format.pixel_format().ok_or_else(not_frames)?;
    Frame::from_planes(layout.width, layout.height, format, planes)
}

/// An MJPEG frame decoded into RGB; a picture of another size than negotiated is an error.
fn decode_mjpeg(data: &[u8], width: u32, height: u32) -> Result<Frame, CaptureError> {
    let bad = |reason: String| CaptureError::Conversion {
        from: PixelFormat::Rgb24,
        to: PixelFormat::Rgb24,
        reason,
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(width as usize)
        .set_max_height(height as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    let pixels = decoder
        .decode()
        .map_err(|err| bad(format!("bad MJPEG frame: {err:?}")))?;
    let (got_w, got_h) = decoder
        .dimensions()
        .map(|(w, h)| (w as u32, h as u32))
        .unwrap_or((0, 0));
    if (got_w, got_h) != (width, height) {
        return Err(bad(format!(
            "an MJPEG frame of {got_w}x{got_h} in a {width}x{height} stream"
        )));
    }
    let row = width as usize * 3;
    let plane = Plane::new(pixels, row, row, height as usize)?;
    Frame::from_planes(width, height, PixelFormat::Rgb24, vec![plane])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(format: V4l2Format, width: u32, height: u32, rates: &[u32]) -> Candidate {
        Candidate {
            format,
            width,
            height,
            rates: rates
                .iter()
                .map(|&r| FrameRate::from_int(r).unwrap())
                .collect(),
        }
    }

    /// A webcam like most UVC ones: YUYV up to 720p at low rates, MJPEG at full rate.
    fn webcam() -> Vec<Candidate> {
        vec![
            candidate(V4l2Format::Yuyv, 640, 480, &[30, 15]),
            candidate(V4l2Format::Yuyv, 1280, 720, &[10, 5]),
            candidate(V4l2Format::Mjpeg, 640, 480, &[30]),
            candidate(V4l2Format::Mjpeg, 1280, 720, &[30, 15]),
            candidate(V4l2Format::Mjpeg, 1920, 1080, &[30]),
        ]
    }

    fn check(wanted: Wanted, expected: (V4l2Format, u32, u32, u32)) {
        let mode = choose(&webcam(), &wanted).expect("a mode");
        assert_eq!(
            (mode.format, mode.width, mode.height, mode.fps),
            (
                expected.0,
                expected.1,
                expected.2,
                FrameRate::from_int(expected.3).unwrap()
            ),
            "for {wanted:?}"
        );
    }

    #[test]
    fn negotiation_takes_the_nearest_size_then_rate_then_format() {
        // Exact size and rate: the raw format wins the tie.
        let wanted = |size, fps, format| Wanted {
            size: Some(size),
            fps: Some(fps),
            format,
        };
        check(
            wanted((640, 480), 30, None),
            (V4l2Format::Yuyv, 640, 480, 30),
        );
        // 720p at 30 exists only in MJPEG.
        check(
            wanted((1280, 720), 30, None),
            (V4l2Format::Mjpeg, 1280, 720, 30),
        );
        // At 10 fps YUYV has it, and needs no decoding.
        check(
            wanted((1280, 720), 10, None),
            (V4l2Format::Yuyv, 1280, 720, 10),
        );
        // A size the camera lacks: the nearest one.
        check(
            wanted((800, 600), 30, None),
            (V4l2Format::Yuyv, 640, 480, 30),
        );
        check(
            wanted((1600, 900), 30, None),
            (V4l2Format::Mjpeg, 1280, 720, 30),
        );
        check(
            wanted((4000, 3000), 30, None),
            (V4l2Format::Mjpeg, 1920, 1080, 30),
        );
        // A rate the camera lacks: the nearest one.
        check(
            wanted((640, 480), 20, None),
            (V4l2Format::Yuyv, 640, 480, 15),
        );
        // A format asked for is kept, even when another fits better.
        check(
            wanted((1280, 720), 10, Some(V4l2Format::Mjpeg)),
            (V4l2Format::Mjpeg, 1280, 720, 15),
        );
        // Nothing asked for: near 1280x720 at 30.
        check(Wanted::default(), (V4l2Format::Mjpeg, 1280, 720, 30));
        // A format the camera lacks: no mode.
        let nv12 = Wanted {
            format: Some(V4l2Format::Nv12),
            ..Wanted::default()
        };
        assert_eq!(choose(&webcam(), &nv12), None);
        // A driver that lists no rates: the wanted one, for the driver to adjust.
        let bare = [candidate(V4l2Format::Yu12, 320, 240, &[])];
        let mode = choose(&bare, &wanted((320, 240), 25, None)).unwrap();
        assert_eq!(mode.fps, FrameRate::from_int(25).unwrap());
        // Preference among raw formats at the same mode.
        let all = [
            candidate(V4l2Format::Yuyv, 320, 240, &[30]),
            candidate(V4l2Format::Nv12, 320, 240, &[30]),
            candidate(V4l2Format::Yu12, 320, 240, &[30]),
        ];
        let mode = choose(&all, &Wanted::default()).unwrap();
        assert_eq!(mode.format, V4l2Format::Yu12);
    }

    #[test]
    fn fourcc_mapping() {
        for format in V4l2Format::ALL {
            assert_eq!(V4l2Format::from_fourcc(format.fourcc()), Some(format));
            assert_eq!(format.to_string().parse::<V4l2Format>().unwrap(), format);
        }
        assert_eq!(V4l2Format::from_fourcc(*b"JPEG"), Some(V4l2Format::Mjpeg));
        assert_eq!(V4l2Format::from_fourcc(*b"H264"), Some(V4l2Format::H264));
        assert_eq!(V4l2Format::H264.to_string(), "H264");
        assert_eq!(V4l2Format::from_fourcc(*b"HEVC"), None);
        assert_eq!("i420".parse::<V4l2Format>().unwrap(), V4l2Format::Yu12);
        assert_eq!("MJPEG".parse::<V4l2Format>().unwrap(), V4l2Format::Mjpeg);
        assert_eq!("h264".parse::<V4l2Format>().unwrap(), V4l2Format::H264);
        assert!("hevc".parse::<V4l2Format>().is_err());
        assert_eq!(V4l2Format::Yu12.pixel_format(), Some(PixelFormat::I420));
        assert_eq!(V4l2Format::Yuyv.pixel_format(), Some(PixelFormat::Yuyv));
        assert_eq!(V4l2Format::Nv12.pixel_format(), Some(PixelFormat::Nv12));
        assert_eq!(V4l2Format::Mjpeg.pixel_format(), Some(PixelFormat::Rgb24));
        assert_eq!(V4l2Format::H264.pixel_format(), None);
        assert_eq!(fourcc_string(*b"Y10 "), "Y10");
        assert_eq!(fourcc_string([b'A', 0, 1, b'B']), "A??B");
    }

    #[test]
    fn raw_buffers_with_padded_rows_become_frames() {
        let (w, h, stride) = (4u32, 2u32, 16usize);
        // YUYV: 8 bytes of pixels a row, 16 with padding.
        let mut data = vec![0u8; stride * 2];
        data[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        data[16..24].copy_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16]);
        let layout = Layout {
            format: V4l2Format::Yuyv,
            width: w,
            height: h,
            stride,
        };
        let frame = to_frame(&data, &layout).unwrap();
        assert_eq!(frame.format(), PixelFormat::Yuyv);
        assert_eq!(frame.plane(0).row(1), &[9, 10, 11, 12, 13, 14, 15, 16]);
        // One byte short.
        assert!(to_frame(&data[..data.len() - 1], &layout).is_err());

        // YU12 with a packed layout (stride 0 means rows of the width).
        // Y is 4x2 bytes, U and V 2x1 each.
        let packed: Vec<u8> = (0..12u8).collect();
        let layout = Layout {
            format: V4l2Format::Yu12,
            width: w,
            height: h,
            stride: 0,
        };
        let frame = to_frame(&packed, &layout).unwrap();
        assert_eq!(frame.format(), PixelFormat::I420);
        assert_eq!(frame.to_packed(), packed);

        // NV12 with padding: the chroma plane starts after the padded luma.
        let stride = 8;
        let mut data = vec![0u8; stride * 3];
        data[stride * 2..stride * 2 + 4].copy_from_slice(&[100, 101, 102, 103]);
        let layout = Layout {
            format: V4l2Format::Nv12,
            width: w,
            height: h,
            stride,
        };
        let frame = to_frame(&data, &layout).unwrap();
        assert_eq!(frame.plane(1).row(0), &[100, 101, 102, 103]);
    }

    #[test]
    fn mjpeg_decodes_to_rgb() {
        // 32x16, left half red and right half blue, made by
        // `ffmpeg -f lavfi -i color=red:s=16x16[a];color=blue:s=16x16[b];[a][b]hstack -frames 1`.
        let jpeg = include_bytes!("../tests/data/red-blue-32x16.jpg");
        let frame = decode_mjpeg(jpeg, 32, 16).unwrap();
        assert_eq!(frame.format(), PixelFormat::Rgb24);
        assert_eq!((frame.width(), frame.height()), (32, 16));
        let left = &frame.plane(0).row(8)[4 * 3..4 * 3 + 3];
        let right = &frame.plane(0).row(8)[28 * 3..28 * 3 + 3];
        assert!(left[0] > 200 && left[2] < 60, "left is red: {left:?}");
        assert!(right[2] > 200 && right[0] < 60, "right is blue: {right:?}");
        // Another size than negotiated, and garbage, are errors rather than panics.
        assert!(decode_mjpeg(jpeg, 64, 16).is_err());
        assert!(decode_mjpeg(&jpeg[..jpeg.len() / 3], 32, 16).is_err());
        assert!(decode_mjpeg(b"not a jpeg", 32, 16).is_err());
        assert!(decode_mjpeg(&[], 32, 16).is_err());
    }

    #[test]
    fn h264_is_chosen_only_when_asked_for() {
        let camera = [
            candidate(V4l2Format::H264, 1920, 1080, &[30]),
            candidate(V4l2Format::Mjpeg, 1280, 720, &[30]),
        ];
        let wanted = |format| Wanted {
            size: Some((1920, 1080)),
            fps: Some(30),
            format,
        };
        // The exact size exists only in H.264, which V4l2Source cannot read.
        let mode = choose(&camera, &wanted(None)).unwrap();
        assert_eq!((mode.format, mode.width), (V4l2Format::Mjpeg, 1280));
        let mode = choose(&camera, &wanted(Some(V4l2Format::H264))).unwrap();
        assert_eq!((mode.format, mode.width), (V4l2Format::H264, 1920));
        let err = V4l2Source::open(
            "/dev/video0",
            V4l2Options {
                format: Some(V4l2Format::H264),
                ..V4l2Options::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("V4l2H264Source"), "{err}");
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
            .collect()
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xe0, 0x1f, 0xac]; // Constrained Baseline 3.1
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00]; // first_mb 0, slice_type 7 (I)
    const P: &[u8] = &[0x41, 0x9a, 0x21]; // first_mb 0, slice_type 5 (P)
    const B: &[u8] = &[0x01, 0x9c, 0x21]; // first_mb 0, slice_type 6 (B)

    /// Feeds buffers to a `CameraH264` and collects every picture it passes on.
    fn pictures(buffers: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, bool)>, CaptureError> {
        let mut camera = CameraH264::default();
        let mut out = Vec::new();
        for buffer in buffers {
            camera.push(buffer);
            while let Some(picture) = camera.next_picture(Path::new("/dev/video0"))? {
                out.push(picture);
            }
        }
        Ok(out)
    }

    #[test]
    fn camera_h264_starts_on_a_keyframe_with_its_parameter_sets() {
        // One picture a buffer, parameter sets with the first keyframe only, as many UVC
        // cameras do; the pictures before it cannot be decoded.
        let out = pictures(&[
            annexb(&[P]),
            annexb(&[SPS, PPS, IDR]),
            annexb(&[P]),
            annexb(&[IDR]),
            annexb(&[P]),
        ])
        .unwrap();
        let keyframes: Vec<bool> = out.iter().map(|(_, k)| *k).collect();
        assert_eq!(keyframes, [true, false, true, false]);
        assert_eq!(out[0].0, annexb(&[SPS, PPS, IDR]));
        assert_eq!(out[2].0, annexb(&[SPS, PPS, IDR]), "the sets go in front");
        assert_eq!(out[3].0, annexb(&[P]));

        // Parameter sets in a buffer of their own, and a keyframe before any: the first
        // keyframe no decoder could start on is dropped.
        let out = pictures(&[
            annexb(&[IDR]),
            annexb(&[P]),
            annexb(&[SPS, PPS]),
            annexb(&[IDR]),
            annexb(&[P]),
        ])
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], (annexb(&[SPS, PPS, IDR]), true));
        assert_eq!(out[1], (annexb(&[P]), false));

        // A buffer with two pictures is cut in two.
        let out = pictures(&[annexb(&[SPS, PPS, IDR, P])]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], (annexb(&[P]), false));
    }

    #[test]
    fn camera_h264_refuses_b_frames_and_profiles_browsers_lack() {
        let err = pictures(&[annexb(&[SPS, PPS, IDR]), annexb(&[P]), annexb(&[B])]).unwrap_err();
        match err {
            CaptureError::NotPassthrough(why) => {
                assert!(why.starts_with("/dev/video0: "), "{why}");
                assert!(why.contains("B-frames"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let high10 = [0x67, 110, 0x00, 40, 0xac];
        let err = pictures(&[annexb(&[&high10, PPS, IDR])]).unwrap_err();
        assert!(err.to_string().contains("High 10"), "{err}");
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
