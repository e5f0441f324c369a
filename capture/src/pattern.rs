//! The built-in test pattern: a moving reference picture with the stamp in every frame.

use std::thread;
use std::time::Instant;

use crate::{CaptureError, CaptureTime, Frame, FrameRate, PixelFormat, Source, SourceInfo, Stamp};

/// The embedded default source: the reference picture of `docs/stamp.md` in the rtcgear repository (pattern v1)
/// with the timestamp barcode painted into every frame.
///
/// For frame `n` and pixel `(x, y)` it draws, in BGR, blue `(x + 4n) mod 256`, green
/// `(y + 2n) mod 256`, red `((x + y) / 4) mod 256`, then a white square of side `H/4` sliding
/// along the middle, then the [`Stamp`] over the top rows. A paced pattern (the default) yields
/// frames in real time at its frame rate, as a camera would; an unpaced one as fast as it is
/// asked, for tests and benchmarks.
///
/// ```
/// use rtcgear_capture::{FrameRate, PixelFormat, Source, Stamp, TestPattern};
///
/// let pattern = TestPattern::builder()
///     .size(640, 480)
///     .fps(FrameRate::from_int(30).unwrap())
///     .paced(false)
///     .frames(3)
///     .build()
///     .unwrap();
/// assert_eq!(pattern.info().format, PixelFormat::I420);
/// let frames: Vec<_> = pattern.collect::<Result<_, _>>().unwrap();
/// assert_eq!(frames.len(), 3);
/// assert_eq!(Stamp::read(&frames[2]).unwrap().counter, 2);
/// ```
#[derive(Debug)]
pub struct TestPattern {
    info: SourceInfo,
    paced: bool,
    limit: Option<u64>,
    counter: u64,
    next_due: Option<Instant>,
}

/// Settings for a [`TestPattern`]; start from [`TestPattern::builder`].
#[derive(Clone, Debug)]
pub struct TestPatternBuilder {
    width: u32,
    height: u32,
    fps: FrameRate,
    format: PixelFormat,
    paced: bool,
    limit: Option<u64>,
}

impl TestPatternBuilder {
    /// Frame size in pixels (default 1280x720). The width must be at least 32.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Frame rate (default 30).
    pub fn fps(mut self, fps: FrameRate) -> Self {
        self.fps = fps;
        self
    }

    /// Pixel format of the frames (default I420).
    pub fn format(mut self, format: PixelFormat) -> Self {
        self.format = format;
        self
    }

    /// Whether frames come in real time (default) or as fast as they are asked for.
    pub fn paced(mut self, paced: bool) -> Self {
        self.paced = paced;
        self
    }

    /// End the stream after this many frames (default: never).
    pub fn frames(mut self, count: u64) -> Self {
        self.limit = Some(count);
        self
    }

    /// The pattern, or an error naming the size the stamp cannot fit in.
    pub fn build(self) -> Result<TestPattern, CaptureError> {
        let cw = self.width / 32;
        if cw == 0 || self.height < 4 * cw {
            return Err(CaptureError::InvalidArgument(format!(
                "the test pattern needs a width of at least 32 and a height of at least 4*width/32 \
                 for its stamp, got {}x{}",
                self.width, self.height
            )));
        }
        // Checks the size against the format (even sizes for 4:2:0, the upper limit).
        Frame::new(self.width, self.height, self.format)?;
        Ok(TestPattern {
            info: SourceInfo {
                width: self.width,
                height: self.height,
                format: self.format,
                fps: self.fps,
            },
            paced: self.paced,
            limit: self.limit,
            counter: 0,
            next_due: None,
        })
    }
}

impl TestPattern {
    /// Settings with the defaults: 1280x720, 30 frames a second, I420, paced, endless.
    pub fn builder() -> TestPatternBuilder {
        TestPatternBuilder {
            width: 1280,
            height: 720,
            // 30 is not zero.
            fps: FrameRate::from_int(30).expect("30 is a valid frame rate"),
            format: PixelFormat::I420,
            paced: true,
            limit: None,
        }
    }

    /// A paced, endless pattern of this size and rate.
    pub fn new(width: u32, height: u32, fps: FrameRate) -> Result<TestPattern, CaptureError> {
        TestPattern::builder().size(width, height).fps(fps).build()
    }

    /// Draws frame `counter` with the stamp for `time`, without pacing.
    pub fn draw(&self, counter: u64, time: CaptureTime) -> Result<Frame, CaptureError> {
        let (width, height) = (self.info.width, self.info.height);
        let mut bgr = Frame::new(width, height, PixelFormat::Bgr24)?;
        draw_reference(&mut bgr, counter);
        let mut frame = bgr.to_format(self.info.format)?;
        Stamp {
            wall_us: time.wall_us,
            counter: counter as u32,
        }
        .paint(&mut frame)?;
        Ok(frame.with_meta(counter, time))
    }

    /// Sleeps until the next frame is due. A pattern that fell more than a frame behind (a slow
    /// consumer) starts its schedule again from now rather than bursting to catch up.
    fn wait_turn(&mut self) {
        let period = self.info.fps.frame_duration();
        let now = Instant::now();
        let due = match self.next_due {
            Some(due) if now <= due + period => due,
            _ => now,
        };
        if due > now {
            thread::sleep(due - now);
        }
        self.next_due = Some(due + period);
    }
}

impl Iterator for TestPattern {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.limit.is_some_and(|limit| self.counter >= limit) {
            return None;
        }
        if self.paced {
            self.wait_turn();
        }
        let frame = self.draw(self.counter, CaptureTime::now());
        self.counter += 1;
        Some(frame)
    }
}

impl Source for TestPattern {
    fn info(&self) -> SourceInfo {
        self.info
    }
}

/// The reference picture for frame `n`, before the stamp: the ramps and the white square.
fn draw_reference(bgr: &mut Frame, n: u64) {
    let (width, height) = (bgr.width() as usize, bgr.height() as usize);
    let blue_shift = (4 * n % 256) as usize;
    let green_shift = (2 * n % 256) as usize;
    let plane = bgr.plane_mut(0);
    for y in 0..height {
        let green = ((y + green_shift) % 256) as u8;
        let row = plane.row_mut(y);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            px[0] = ((x + blue_shift) % 256) as u8;
            px[1] = green;
            px[2] = (((x + y) / 4) % 256) as u8;
        }
    }
    let side = height / 4;
    let x0 = if width > side {
        (8 * n % (width - side) as u64) as usize
    } else {
        0
    };
    let y0 = (height - side) / 2;
    let x_end = (x0 + side).min(width);
    for y in y0..y0 + side {
        plane.row_mut(y)[3 * x0..3 * x_end].fill(255);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// docs/stamp.md's formulas for pixel (x, y) of frame n, in BGR.
    fn expected(width: usize, height: usize, n: usize, x: usize, y: usize) -> [u8; 3] {
        let side = height / 4;
        let (x0, y0) = ((8 * n) % (width - side), (height - side) / 2);
        if (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y) {
            return [255, 255, 255];
        }
        [
            ((x + 4 * n) % 256) as u8,
            ((y + 2 * n) % 256) as u8,
            (((x + y) / 4) % 256) as u8,
        ]
    }

    fn pattern(width: u32, height: u32, format: PixelFormat) -> TestPattern {
        TestPattern::builder()
            .size(width, height)
            .format(format)
            .paced(false)
            .build()
            .unwrap()
    }

    #[test]
    fn bgr_pixels_follow_the_formulas() {
        let (w, h) = (640usize, 480usize);
        let pattern = pattern(w as u32, h as u32, PixelFormat::Bgr24);
        for n in [0usize, 1, 37, 300] {
            let frame = pattern.draw(n as u64, CaptureTime::now()).unwrap();
            let stamp_rows = 4 * (w / 32);
            for y in stamp_rows..h {
                let row = frame.plane(0).row(y);
                for x in 0..w {
                    assert_eq!(
                        &row[3 * x..3 * x + 3],
                        &expected(w, h, n, x, y),
                        "n={n} ({x}, {y})"
                    );
                }
            }
        }
    }

    #[test]
    fn i420_frames_carry_the_picture_and_the_stamp() {
        let pattern = pattern(1280, 720, PixelFormat::I420);
        let time = CaptureTime::now();
        let frame = pattern.draw(42, time).unwrap();
        assert_eq!(
            Stamp::read(&frame),
            Some(Stamp {
                wall_us: time.wall_us,
                counter: 42
            })
        );
        // Back to BGR, the ramps hold within what 4:2:0 and video range cost (away from the
        // square's edges, where chroma subsampling blurs).
        let bgr = frame.to_format(PixelFormat::Bgr24).unwrap();
        for (x, y) in [(5, 200), (700, 650), (1200, 500), (100, 700)] {
            let got = &bgr.plane(0).row(y)[3 * x..3 * x + 3];
            let want = expected(1280, 720, 42, x, y);
            for c in 0..3 {
                assert!(
                    got[c].abs_diff(want[c]) <= 6,
                    "({x}, {y}): {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn counts_frames_and_stops_at_the_limit() {
        let frames: Vec<Frame> = TestPattern::builder()
            .size(320, 240)
            .paced(false)
            .frames(5)
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let counters: Vec<u64> = frames.iter().map(Frame::counter).collect();
        assert_eq!(counters, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn paced_frames_come_at_the_frame_rate() {
        let mut pattern = TestPattern::builder()
            .size(64, 64)
            .fps(FrameRate::from_int(50).unwrap())
            .build()
            .unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            pattern.next().unwrap().unwrap();
        }
        // Five intervals of 20 ms at least; no upper bound, the machine may be busy.
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn sizes_without_room_for_the_stamp_are_refused() {
        assert!(TestPattern::builder().size(16, 16).build().is_err());
        assert!(TestPattern::builder().size(640, 60).build().is_err());
        assert!(TestPattern::builder().size(641, 480).build().is_err());
        let err = TestPattern::builder().size(640, 60).build().unwrap_err();
        assert!(err.to_string().contains("640x60"), "{err}");
    }
}
