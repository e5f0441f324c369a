//! Transforms: adapters that change every frame of any [`Source`].

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::{CaptureError, Frame, PixelFormat, Source, SourceInfo};

/// A change applied to every frame of a source, in order.
pub trait Transform: Send {
    /// The frame after the change. An error is handed on as the source's error for that frame.
    fn apply(&mut self, frame: Frame) -> Result<Frame, CaptureError>;

    /// What the frames look like after the change, given what they looked like before.
    fn info(&self, input: SourceInfo) -> SourceInfo;
}

/// A source whose frames pass through a [`Transform`]; made by the methods of [`SourceExt`].
#[derive(Debug)]
pub struct Transformed<S, T> {
    source: S,
    transform: T,
}

impl<S: Source, T: Transform> Iterator for Transformed<S, T> {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let frame = self.source.next()?;
        Some(frame.and_then(|frame| self.transform.apply(frame)))
    }
}

impl<S: Source, T: Transform> Source for Transformed<S, T> {
    fn info(&self) -> SourceInfo {
        self.transform.info(self.source.info())
    }
}

/// Transform adapters for every [`Source`].
///
/// ```
/// use rtcgear_capture::{Source, SourceExt, TestPattern};
///
/// let source = TestPattern::builder()
///     .size(640, 480)
///     .paced(false)
///     .frames(2)
///     .build()
///     .unwrap()
///     .scale(50)
///     .grayscale()
///     .map_frames(|frame| {
///         // Any code of yours: here, leave the frame as it is.
///         Ok(frame)
///     });
/// assert_eq!((source.info().width, source.info().height), (320, 240));
/// assert_eq!(source.count(), 2);
/// ```
pub trait SourceExt: Source + Sized {
    /// Applies a [`Transform`] to every frame.
    fn transform<T: Transform>(self, transform: T) -> Transformed<Self, T> {
        Transformed {
            source: self,
            transform,
        }
    }

    /// Resizes every frame to `width` x `height` (rounded down to even numbers, as 4:2:0 needs).
    fn resize(self, width: u32, height: u32) -> Transformed<Self, Resize> {
        self.transform(Resize::new(width, height))
    }

    /// Scales every frame to `percent` of its size: 50 halves it. vidgear's
    /// `frame_size_reduction = r` is `scale(100 - r)`.
    fn scale(self, percent: u32) -> Transformed<Self, Resize> {
        let info = self.info();
        let scaled = |side: u32| (u64::from(side) * u64::from(percent) / 100) as u32;
        self.resize(scaled(info.width), scaled(info.height))
    }

    /// Removes the colour: frames come out as I420 with neutral chroma (vidgear's `colorspace`
    /// set to grey).
    fn grayscale(self) -> Transformed<Self, Grayscale> {
        self.transform(Grayscale)
    }

    /// Runs your own code over every frame (size and format must stay as [`Source::info`] says).
    fn map_frames<F>(self, f: F) -> Transformed<Self, MapFrames<F>>
    where
        F: FnMut(Frame) -> Result<Frame, CaptureError> + Send,
    {
        self.transform(MapFrames(f))
    }
}

impl<S: Source> SourceExt for S {}

/// Resizes frames to a fixed size, in I420, with a bilinear filter.
pub struct Resize {
    width: u32,
    height: u32,
    resizer: Resizer,
}

impl std::fmt::Debug for Resize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resize")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Resize {
    /// A resize to `width` x `height`, rounded down to even numbers (and at least 2x2).
    pub fn new(width: u32, height: u32) -> Resize {
        Resize {
            width: (width & !1).max(2),
            height: (height & !1).max(2),
            resizer: Resizer::new(),
        }
    }
}

impl Transform for Resize {
    fn apply(&mut self, frame: Frame) -> Result<Frame, CaptureError> {
        let frame = frame.into_i420()?;
        if (frame.width(), frame.height()) == (self.width, self.height) {
            return Ok(frame);
        }
        let mut out = Frame::new(self.width, self.height, PixelFormat::I420)?;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        for index in 0..3 {
            let src_plane = frame.plane(index);
            let packed = src_plane.packed();
            let src = ImageRef::new(
                src_plane.row_bytes() as u32,
                src_plane.rows() as u32,
                &packed,
                PixelType::U8,
            )
            .map_err(|e| resize_error(&frame, e))?;
            let dst_plane = out.plane_mut(index);
            let (w, h) = (dst_plane.row_bytes() as u32, dst_plane.rows() as u32);
            // Planes made by Frame::new are tightly packed, so the image covers all of it.
            let mut dst = Image::from_slice_u8(w, h, dst_plane.data_mut(), PixelType::U8)
                .map_err(|e| resize_error(&frame, e))?;
            self.resizer
                .resize(&src, &mut dst, &options)
                .map_err(|e| resize_error(&frame, e))?;
        }
        Ok(out.with_meta(frame.counter(), frame.time()))
    }

    fn info(&self, input: SourceInfo) -> SourceInfo {
        SourceInfo {
            width: self.width,
            height: self.height,
            format: PixelFormat::I420,
            ..input
        }
    }
}

fn resize_error(frame: &Frame, err: impl ToString) -> CaptureError {
    CaptureError::Conversion {
        from: frame.format(),
        to: PixelFormat::I420,
        reason: format!("resize failed: {}", err.to_string()),
    }
}

/// Removes colour, giving I420 frames with neutral chroma.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grayscale;

impl Transform for Grayscale {
    fn apply(&mut self, frame: Frame) -> Result<Frame, CaptureError> {
        let mut frame = frame.into_i420()?;
        frame.plane_mut(1).data_mut().fill(128);
        frame.plane_mut(2).data_mut().fill(128);
        Ok(frame)
    }

    fn info(&self, input: SourceInfo) -> SourceInfo {
        SourceInfo {
            format: PixelFormat::I420,
            ..input
        }
    }
}

/// Your own code over every frame; made by [`SourceExt::map_frames`].
pub struct MapFrames<F>(F);

impl<F> std::fmt::Debug for MapFrames<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MapFrames")
    }
}

impl<F> Transform for MapFrames<F>
where
    F: FnMut(Frame) -> Result<Frame, CaptureError> + Send,
{
    fn apply(&mut self, frame: Frame) -> Result<Frame, CaptureError> {
        (self.0)(frame)
    }

    fn info(&self, input: SourceInfo) -> SourceInfo {
        input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Stamp, TestPattern};

    fn pattern(width: u32, height: u32) -> TestPattern {
        TestPattern::builder()
            .size(width, height)
            .paced(false)
            .frames(3)
            .build()
            .unwrap()
    }

    #[test]
    fn scaling_keeps_the_stamp_readable() {
        let mut source = pattern(1280, 720).scale(50);
        assert_eq!(source.info().width, 640);
        let frame = source.next().unwrap().unwrap();
        assert_eq!((frame.width(), frame.height()), (640, 360));
        assert_eq!(Stamp::read(&frame).unwrap().counter, 0);
        assert_eq!(frame.counter(), 0);
    }

    #[test]
    fn resize_rounds_to_even_and_upscales() {
        let mut source = pattern(320, 240).resize(801, 601);
        assert_eq!((source.info().width, source.info().height), (800, 600));
        let frame = source.next().unwrap().unwrap();
        assert_eq!((frame.width(), frame.height()), (800, 600));
        assert!(Stamp::read(&frame).is_some());
    }

    #[test]
    fn grayscale_neutralises_chroma_of_any_format() {
        let source = TestPattern::builder()
            .size(64, 64)
            .format(PixelFormat::Bgr24)
            .paced(false)
            .frames(1)
            .build()
            .unwrap()
            .grayscale();
        assert_eq!(source.info().format, PixelFormat::I420);
        for frame in source {
            let frame = frame.unwrap();
            assert!(frame.plane(1).data().iter().all(|&c| c == 128));
            assert!(frame.plane(2).data().iter().all(|&c| c == 128));
        }
    }

    #[test]
    fn user_closures_see_every_frame_and_their_errors_pass_on() {
        let mut seen = Vec::new();
        let results: Vec<_> = pattern(64, 64)
            .map_frames(|frame| {
                if frame.counter() == 1 {
                    return Err(CaptureError::InvalidArgument("no odd frames".into()));
                }
                Ok(frame)
            })
            .map(|r| r.map(|f| f.counter()))
            .collect();
        seen.extend(results.iter().map(Result::is_ok));
        assert_eq!(seen, [true, false, true]);
    }
}
