//! The `Source` trait that every frame producer implements.

use std::fmt;
use std::time::Duration;

use crate::{CaptureError, Frame, PixelFormat};

/// A frame rate as a fraction: `num / den` frames a second (30000/1001 for NTSC's 29.97).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameRate {
    /// Frames...
    pub num: u32,
    /// ...per this many seconds.
    pub den: u32,
}

impl FrameRate {
    /// `num / den` frames a second; `None` when either is zero.
    pub fn new(num: u32, den: u32) -> Option<FrameRate> {
        (num > 0 && den > 0).then_some(FrameRate { num, den })
    }

    /// A whole number of frames a second; `None` for zero.
    pub fn from_int(fps: u32) -> Option<FrameRate> {
        FrameRate::new(fps, 1)
    }

    /// Frames a second as a float.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// How long one frame lasts.
    pub fn frame_duration(self) -> Duration {
        Duration::from_nanos(u64::from(self.den) * 1_000_000_000 / u64::from(self.num))
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            // Three decimals at most, without trailing zeros: 29.97, 12.5.
            let text = format!("{:.3}", self.as_f64());
            f.write_str(text.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// What a source produces: the size and format of its frames and its nominal frame rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The pixel format of the frames.
    pub format: PixelFormat,
    /// The nominal frame rate.
    pub fps: FrameRate,
}

/// A producer of frames: a camera, a file, a network stream, the test pattern, or your own code.
///
/// A source is an iterator of `Result<Frame, CaptureError>`: each call to `next` blocks until the
/// next frame is ready (a live source paces itself in real time) and `None` ends the stream. An
/// `Err` reports a problem without necessarily ending the stream: a source that can recover (a
/// network stream reconnecting, a camera plugged back in) keeps yielding after it.
///
/// Frames count up from 0 in [`Frame::counter`] and carry their capture time.
///
/// # Writing your own source
///
/// This is vidgear's `custom_stream`: implement `Iterator` and [`Source::info`].
///
/// ```
/// use rtcgear_capture::{CaptureError, CaptureTime, Frame, FrameRate, PixelFormat, Source, SourceInfo};
///
/// /// A grey picture that brightens a little every frame.
/// struct Fade {
///     counter: u64,
/// }
///
/// impl Iterator for Fade {
///     type Item = Result<Frame, CaptureError>;
///
///     fn next(&mut self) -> Option<Self::Item> {
///         if self.counter == 100 {
///             return None; // The end of the stream.
///         }
///         let mut frame = match Frame::new(320, 240, PixelFormat::Gray8) {
///             Ok(frame) => frame,
///             Err(err) => return Some(Err(err)),
///         };
///         frame.plane_mut(0).data_mut().fill(self.counter as u8);
///         let frame = frame.with_meta(self.counter, CaptureTime::now());
///         self.counter += 1;
///         Some(Ok(frame))
///     }
/// }
///
/// impl Source for Fade {
///     fn info(&self) -> SourceInfo {
///         SourceInfo {
///             width: 320,
///             height: 240,
///             format: PixelFormat::Gray8,
///             fps: FrameRate::from_int(30).unwrap(),
///         }
///     }
/// }
///
/// let frames: Vec<Frame> = Fade { counter: 0 }.collect::<Result<_, _>>().unwrap();
/// assert_eq!(frames.len(), 100);
/// assert_eq!(frames[7].plane(0).row(0)[0], 7);
/// ```
pub trait Source: Iterator<Item = Result<Frame, CaptureError>> + Send {
    /// The size, format and nominal rate of the frames this source yields.
    fn info(&self) -> SourceInfo;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn info(&self) -> SourceInfo {
        (**self).info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates() {
        assert!(FrameRate::new(0, 1).is_none());
        let ntsc = FrameRate::new(30000, 1001).unwrap();
        assert!((ntsc.as_f64() - 29.97).abs() < 0.01);
        assert_eq!(ntsc.to_string(), "29.97");
        assert_eq!(FrameRate::new(25, 2).unwrap().to_string(), "12.5");
        assert_eq!(FrameRate::new(60, 2).unwrap().to_string(), "30");
        assert_eq!(FrameRate::from_int(25).unwrap().to_string(), "25");
        assert_eq!(
            FrameRate::from_int(25).unwrap().frame_duration(),
            Duration::from_millis(40)
        );
    }
}
