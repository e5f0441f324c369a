//! The link to a camera: opened in its negotiated mode, and reopened in that mode when it went
//! away and came back. Both sources read their buffers through it.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

use super::convert::Layout;
use super::negotiate::{candidates, choose, fourcc_string, Mode, Wanted};
use super::V4l2Format;
use crate::{CaptureError, FrameRate};

/// The longest pause between two tries to reopen a camera that went away.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Buffers the driver fills while we convert one.
const BUFFERS: u32 = 4;

/// What a [`V4l2Source`](super::V4l2Source) or a [`V4l2H264Source`](super::V4l2H264Source)
/// asks the camera for. Every field is a hint: the nearest mode the camera offers is taken.
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
/// A camera in one negotiated mode, open or waiting to be reopened: what both sources share.
pub(super) struct Link {
    pub(super) path: PathBuf,
    options: V4l2Options,
    pub(super) mode: Mode,
    state: State,
}

impl Link {
    pub(super) fn open(path: PathBuf, options: V4l2Options) -> Result<Link, CaptureError> {
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
    pub(super) fn next_buffer<T>(
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

    pub(super) fn device_error(&self, reason: &str) -> CaptureError {
        CaptureError::Device {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
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

pub(super) fn check_caps(caps: Flags) -> Result<(), String> {
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
