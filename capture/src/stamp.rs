//! The timestamp barcode ("stamp", version 2) that the test pattern paints into every frame.
//!
//! Four bands of 32 square cells in the top rows of the picture carry the capture time, the frame
//! counter and a CRC-32 of both, so that any receiver can measure glass-to-glass latency and frame
//! loss from the decoded picture alone. The layout is specified in `docs/stamp.md` at the root of the rtcgear repository:
//!
//! - `CW = W / 32` is the side of a cell; band `k` covers rows `[k*CW, (k+1)*CW)`;
//! - cell `i` carries bit `31 - i` of the band's word; white is 1, black is 0;
//! - band 0: high 32 bits of the capture time `T` (µs since the Unix epoch), band 1: its low 32
//!   bits, band 2: the counter, band 3: CRC-32 of `T` (big-endian u64) then `counter` (big-endian
//!   u32).
//!
//! ```
//! use rtcgear_capture::{Frame, PixelFormat, Stamp};
//!
//! let mut frame = Frame::new(640, 480, PixelFormat::I420).unwrap();
//! let stamp = Stamp { wall_us: 1_700_000_000_123_456, counter: 42 };
//! stamp.paint(&mut frame).unwrap();
//! assert_eq!(Stamp::read(&frame), Some(stamp));
//! ```

use crate::{CaptureError, Frame, PixelFormat};

/// Luma of a 1 bit in YUV frames (video range white).
const WHITE_Y: u8 = 235;
/// Luma of a 0 bit in YUV frames (video range black).
const BLACK_Y: u8 = 16;

/// What one stamp carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Capture time in microseconds since the Unix epoch.
    pub wall_us: u64,
    /// The source's frame number, wrapping at 2^32.
    pub counter: u32,
}

impl Stamp {
    /// The CRC-32 that band 3 carries.
    pub fn crc(&self) -> u32 {
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&self.wall_us.to_be_bytes());
        bytes[8..].copy_from_slice(&self.counter.to_be_bytes());
        crc32fast::hash(&bytes)
    }

    /// The four 32-bit words of the bands, top to bottom.
    pub fn words(&self) -> [u32; 4] {
        [
            (self.wall_us >> 32) as u32,
            self.wall_us as u32,
            self.counter,
            self.crc(),
        ]
    }

    /// Paints the stamp over the top `4 * W/32` rows of `frame`.
    ///
    /// YUV frames get luma 235 or 16 with neutral chroma under the stamp; RGB frames 255 or 0 in
    /// every channel; GRAY8 frames the YUV luma values.
    pub fn paint(&self, frame: &mut Frame) -> Result<(), CaptureError> {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let cw = width / 32;
        if cw == 0 || height < 4 * cw {
            return Err(CaptureError::InvalidArgument(format!(
                "a stamp needs a frame at least 32 pixels wide and 4*W/32 rows high, got {width}x{height}"
            )));
        }
        let words = self.words();
        let rows = 4 * cw;
        let cell = |x: usize, y: usize| -> bool {
            let (band, index) = (y / cw, x / cw);
            words[band] >> (31 - index) & 1 == 1
        };
        let stamp_width = 32 * cw;
        match frame.format() {
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Gray8 => {
                for y in 0..rows {
                    let row = frame.plane_mut(0).row_mut(y);
                    for (x, px) in row[..stamp_width].iter_mut().enumerate() {
                        *px = if cell(x, y) { WHITE_Y } else { BLACK_Y };
                    }
                }
                let chroma_rows = rows.div_ceil(2);
                let chroma_width = stamp_width.div_ceil(2);
                match frame.format() {
                    PixelFormat::I420 => {
                        for plane in 1..3 {
                            for y in 0..chroma_rows {
                                frame.plane_mut(plane).row_mut(y)[..chroma_width].fill(128);
                            }
                        }
                    }
                    PixelFormat::Nv12 => {
                        for y in 0..chroma_rows {
                            frame.plane_mut(1).row_mut(y)[..2 * chroma_width].fill(128);
                        }
                    }
                    _ => {}
                }
            }
            PixelFormat::Yuyv => {
                for y in 0..rows {
                    let row = frame.plane_mut(0).row_mut(y);
                    for x in 0..stamp_width {
                        row[2 * x] = if cell(x, y) { WHITE_Y } else { BLACK_Y };
                        row[2 * x + 1] = 128;
                    }
                }
            }
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
                for y in 0..rows {
                    let row = frame.plane_mut(0).row_mut(y);
                    for x in 0..stamp_width {
                        let value = if cell(x, y) { 255 } else { 0 };
                        row[3 * x..3 * x + 3].fill(value);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the stamp from a frame of any format, or `None` when it is missing or damaged.
    pub fn read(frame: &Frame) -> Option<Stamp> {
        let plane = frame.plane(0);
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        match frame.format() {
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Gray8 => {
                read_with(width, height, |x, y| u32::from(plane.row(y)[x]))
            }
            PixelFormat::Yuyv => read_with(width, height, |x, y| u32::from(plane.row(y)[2 * x])),
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => read_with(width, height, |x, y| {
                let px = &plane.row(y)[3 * x..3 * x + 3];
                (u32::from(px[0]) + u32::from(px[1]) + u32::from(px[2])) / 3
            }),
        }
    }

    /// Reads the stamp from a luma plane, as a decoder hands it over: `width` x `height` pixels
    /// with rows `stride` bytes apart. `None` when it is missing or damaged.
    pub fn read_luma(luma: &[u8], width: usize, height: usize, stride: usize) -> Option<Stamp> {
        if stride < width || luma.len() < stride * height.saturating_sub(1) + width {
            return None;
        }
        read_with(width, height, |x, y| u32::from(luma[y * stride + x]))
    }
}

/// Reads the four bands from a picture of `width` x `height` whose (luma) value at `(x, y)` is
/// `value(x, y)`. The picture may be a uniformly scaled copy of the stamped one.
fn read_with(width: usize, height: usize, value: impl Fn(usize, usize) -> u32) -> Option<Stamp> {
    let cw = width as f64 / 32.0;
    if cw < 1.0 || (height as f64) < 4.0 * cw {
        return None;
    }
    let mut words = [0u32; 4];
    for (band, word) in words.iter_mut().enumerate() {
        for index in 0..32 {
            // The central half of the cell in both directions.
            let x0 = (index as f64 + 0.25) * cw;
            let y0 = (band as f64 + 0.25) * cw;
            let (x_start, x_end) = (
                x0.floor() as usize,
                ((x0 + cw / 2.0).ceil() as usize).max(x0 as usize + 1),
            );
            let (y_start, y_end) = (
                y0.floor() as usize,
                ((y0 + cw / 2.0).ceil() as usize).max(y0 as usize + 1),
            );
            let (x_end, y_end) = (x_end.min(width), y_end.min(height));
            let mut sum = 0u64;
            let mut count = 0u64;
            for y in y_start..y_end {
                for x in x_start..x_end {
                    sum += u64::from(value(x, y));
                    count += 1;
                }
            }
            if count > 0 && sum >= 128 * count {
                *word |= 1 << (31 - index);
            }
        }
    }
    let stamp = Stamp {
        wall_us: (u64::from(words[0]) << 32) | u64::from(words[1]),
        counter: words[2],
    };
    (stamp.crc() == words[3]).then_some(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK: Stamp = Stamp {
        wall_us: 1_700_000_000_123_456,
        counter: 42,
    };

    #[test]
    fn check_values_from_stamp_md() {
        assert_eq!(CHECK.crc(), 0xF290_69EA);
    }

    #[test]
    fn paints_and_reads_back_at_both_reference_sizes() {
        for (w, h) in [(1280, 720), (640, 480)] {
            for format in PixelFormat::ALL {
                let mut frame = Frame::new(w, h, format).unwrap();
                CHECK.paint(&mut frame).unwrap();
                assert_eq!(Stamp::read(&frame), Some(CHECK), "{w}x{h} {format}");
            }
        }
    }

    #[test]
    fn layout_follows_the_spec() {
        let mut frame = Frame::new(1280, 720, PixelFormat::I420).unwrap();
        CHECK.paint(&mut frame).unwrap();
        let y = frame.plane(0);
        // Band 2 holds counter 42 = 0b101010: cells 26, 28 and 30 are white, 27 black.
        let at = |cell: usize, band: usize| y.row(band * 40 + 20)[cell * 40 + 20];
        assert_eq!(at(26, 2), 235);
        assert_eq!(at(27, 2), 16);
        assert_eq!(at(28, 2), 235);
        assert_eq!(at(0, 2), 16);
        // Band 0 holds T >> 32 = 0x00060A24: bit 31-13=18 is set (0x40000), cell 13 white.
        assert_eq!(at(13, 0), 235);
        // Below the stamp and right of it nothing is painted.
        assert_eq!(y.row(160)[0], 16);
        assert_eq!(frame.plane(1).row(0)[0], 128);
    }

    #[test]
    fn reads_a_scaled_copy() {
        let mut frame = Frame::new(1280, 720, PixelFormat::Gray8).unwrap();
        CHECK.paint(&mut frame).unwrap();
        // Halve it by taking every other pixel.
        let mut half = Frame::new(640, 360, PixelFormat::Gray8).unwrap();
        for y in 0..360 {
            for x in 0..640 {
                half.plane_mut(0).row_mut(y)[x] = frame.plane(0).row(2 * y)[2 * x];
            }
        }
        assert_eq!(Stamp::read(&half), Some(CHECK));
    }

    #[test]
    fn damage_reads_as_none_not_a_wrong_number() {
        let mut frame = Frame::new(640, 480, PixelFormat::Gray8).unwrap();
        CHECK.paint(&mut frame).unwrap();
        // Flip one cell of the counter band.
        for y in 40..60 {
            frame.plane_mut(0).row_mut(y)[620..640].fill(235);
        }
        assert_eq!(Stamp::read(&frame), None);
        assert_eq!(
            Stamp::read(&Frame::new(640, 480, PixelFormat::I420).unwrap()),
            None
        );
        assert_eq!(Stamp::read_luma(&[0; 10], 32, 32, 32), None);
        assert!(CHECK
            .paint(&mut Frame::new(16, 16, PixelFormat::Gray8).unwrap())
            .is_err());
    }
}
