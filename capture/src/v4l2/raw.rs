//! [`V4l2Source`]: a camera's raw or MJPEG pictures as frames.

use std::fmt;
use std::path::Path;

use super::convert::to_frame;
use super::link::Link;
use super::{V4l2Format, V4l2Options};
use crate::{CaptureError, CaptureTime, Frame, Source, SourceInfo};

/// A V4L2 camera as a [`Source`].
///
/// ```no_run
/// use rtcgear_capture::v4l2::{V4l2Options, V4l2Source};
/// use rtcgear_capture::Source;
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
    /// [`V4l2H264Source`](super::V4l2H264Source)'s.
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

impl fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V4l2Source")
            .field("path", &self.link.path)
            .field("mode", &self.link.mode)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_is_refused_with_the_source_that_reads_it() {
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
}
