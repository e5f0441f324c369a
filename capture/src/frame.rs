//! Frames: pixel formats, planes with strides, and capture times.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::CaptureError;

/// The layout of a frame's pixels.
///
/// [`PixelFormat::I420`] is the pipeline's native format: the encoder takes it without conversion.
/// The others exist so that cameras and user code can hand over what they have; every one converts
/// to and from I420 with [`Frame::to_format`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// Planar YUV 4:2:0: a full-size Y plane, then quarter-size U and V planes (BT.601, video range).
    I420,
    /// Semi-planar YUV 4:2:0: a Y plane, then one plane of interleaved U and V samples.
    Nv12,
    /// Packed YUV 4:2:2: `Y0 U Y1 V` for every two pixels, in one plane.
    Yuyv,
    /// Packed 8-bit red, green, blue, in one plane.
    Rgb24,
    /// Packed 8-bit blue, green, red, in one plane (OpenCV's order).
    Bgr24,
    /// One plane of 8-bit luma. Converting from I420 keeps the Y plane as it is; converting to
    /// I420 adds neutral chroma, so the picture stays grey.
    Gray8,
}

impl PixelFormat {
    /// Every format, in a fixed order.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Yuyv,
        PixelFormat::Rgb24,
        PixelFormat::Bgr24,
        PixelFormat::Gray8,
    ];

    /// How many planes a frame of this format has.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            PixelFormat::Yuyv | PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Gray8 => 1,
        }
    }

    /// Whether the format subsamples chroma, so that width (and for 4:2:0 height) must be even.
    fn needs_even_size(self) -> (bool, bool) {
        match self {
            PixelFormat::I420 | PixelFormat::Nv12 => (true, true),
            PixelFormat::Yuyv => (true, false),
            PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Gray8 => (false, false),
        }
    }

    /// The size of plane `index` of a `width` x `height` frame: bytes in a row (without padding)
    /// and rows.
    pub fn plane_size(self, index: usize, width: u32, height: u32) -> Option<(usize, usize)> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let size = match (self, index) {
            (PixelFormat::I420, 0) | (PixelFormat::Nv12, 0) | (PixelFormat::Gray8, 0) => (w, h),
            (PixelFormat::I420, 1 | 2) => (cw, ch),
            (PixelFormat::Nv12, 1) => (cw * 2, ch),
            (PixelFormat::Yuyv, 0) => (cw * 4, h),
            (PixelFormat::Rgb24 | PixelFormat::Bgr24, 0) => (w * 3, h),
            _ => return None,
        };
        Some(size)
    }

    /// The four-character name used by V4L2 and FFmpeg-style tools.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::Bgr24 => "BGR24",
            PixelFormat::Gray8 => "GRAY8",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PixelFormat {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let format = match lower.as_str() {
            "i420" | "yu12" | "yuv420p" => PixelFormat::I420,
            "nv12" => PixelFormat::Nv12,
            "yuyv" | "yuy2" | "yuyv422" => PixelFormat::Yuyv,
            "rgb24" | "rgb" => PixelFormat::Rgb24,
            "bgr24" | "bgr" => PixelFormat::Bgr24,
            "gray8" | "gray" | "grey" => PixelFormat::Gray8,
            _ => {
                return Err(CaptureError::InvalidArgument(format!(
                    "unknown pixel format {s:?} (expected one of i420, nv12, yuyv, rgb24, bgr24, gray8)"
                )))
            }
        };
        Ok(format)
    }
}

/// When a frame was captured: the wall clock for latency measured across processes, and a
/// monotonic instant for pacing and ages inside one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureTime {
    /// Microseconds since the Unix epoch (CLOCK_REALTIME), as the stamp carries it.
    pub wall_us: u64,
    /// The monotonic clock at the same moment.
    pub instant: Instant,
}

impl CaptureTime {
    /// The current time on both clocks.
    pub fn now() -> CaptureTime {
        CaptureTime {
            wall_us: wall_clock_us(),
            instant: Instant::now(),
        }
    }
}

/// Microseconds since the Unix epoch, from the system's wall clock.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One plane of pixel data: `rows` rows of `stride` bytes, of which the first `row_bytes` of each
/// row are pixels and the rest padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Plane {
    data: Vec<u8>,
    stride: usize,
    row_bytes: usize,
    rows: usize,
}

impl Plane {
    /// A plane over `data`, checked to hold `rows` rows of `stride` bytes with `row_bytes` of
    /// pixels in each (the last row may stop after its pixels).
    pub fn new(
        data: Vec<u8>,
        stride: usize,
        row_bytes: usize,
        rows: usize,
    ) -> Result<Plane, CaptureError> {
        let needed = if rows == 0 {
            0
        } else {
            stride * (rows - 1) + row_bytes
        };
        if stride < row_bytes || data.len() < needed {
            return Err(CaptureError::InvalidGeometry(format!(
                "plane of {rows} rows x {row_bytes} bytes with stride {stride} needs {needed} bytes, got {}",
                data.len()
            )));
        }
        Ok(Plane {
            data,
            stride,
            row_bytes,
            rows,
        })
    }

    /// A tightly packed plane of zeros.
    fn zeroed(row_bytes: usize, rows: usize) -> Plane {
        Plane {
            data: vec![0; row_bytes * rows],
            stride: row_bytes,
            row_bytes,
            rows,
        }
    }

    /// All bytes of the plane, padding included.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// All bytes of the plane, padding included, for writing.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Bytes from the start of one row to the start of the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Bytes of pixels in a row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The pixels of row `y`.
    ///
    /// # Panics
    /// If `y` is not below [`Plane::rows`].
    pub fn row(&self, y: usize) -> &[u8] {
        let start = y * self.stride;
        &self.data[start..start + self.row_bytes]
    }

    /// The pixels of row `y`, for writing.
    ///
    /// # Panics
    /// If `y` is not below [`Plane::rows`].
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        &mut self.data[start..start + self.row_bytes]
    }

    /// The plane's pixels without padding, borrowed when the plane is tightly packed already.
    pub fn packed(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.stride == self.row_bytes {
            std::borrow::Cow::Borrowed(&self.data[..self.row_bytes * self.rows])
        } else {
            let mut out = Vec::with_capacity(self.row_bytes * self.rows);
            for y in 0..self.rows {
                out.extend_from_slice(self.row(y));
            }
            std::borrow::Cow::Owned(out)
        }
    }
}

impl fmt::Debug for Plane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plane")
            .field("stride", &self.stride)
            .field("row_bytes", &self.row_bytes)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// A picture with its geometry, its number in the source's sequence and its capture time.
///
/// Planes are checked against the format and size when the frame is made, so code that reads a
/// frame can index its planes without further checks.
#[derive(Clone, Debug)]
pub struct Frame {
    width: u32,
    height: u32,
    format: PixelFormat,
    planes: Vec<Plane>,
    counter: u64,
    time: CaptureTime,
}

impl Frame {
    /// A black frame (zeroed planes; for YUV formats the chroma is neutral) with tight strides.
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Result<Frame, CaptureError> {
        check_size(width, height, format)?;
        let mut planes = Vec::with_capacity(format.plane_count());
        for index in 0..format.plane_count() {
            // Checked above: every index below plane_count has a size.
            let (row_bytes, rows) = format.plane_size(index, width, height).unwrap_or((0, 0));
            planes.push(Plane::zeroed(row_bytes, rows));
        }
        let mut frame = Frame {
            width,
            height,
            format,
            planes,
            counter: 0,
            time: CaptureTime::now(),
        };
        frame.fill_black();
        Ok(frame)
    }

    /// A frame over planes that the caller filled, checked against the format and size.
    pub fn from_planes(
        width: u32,
        height: u32,
        format: PixelFormat,
        planes: Vec<Plane>,
    ) -> Result<Frame, CaptureError> {
        check_size(width, height, format)?;
        if planes.len() != format.plane_count() {
            return Err(CaptureError::InvalidGeometry(format!(
                "{format} needs {} planes, got {}",
                format.plane_count(),
                planes.len()
            )));
        }
        for (index, plane) in planes.iter().enumerate() {
            let (row_bytes, rows) = format.plane_size(index, width, height).unwrap_or((0, 0));
            if plane.row_bytes != row_bytes || plane.rows != rows {
                return Err(CaptureError::InvalidGeometry(format!(
                    "plane {index} of a {width}x{height} {format} frame must be {row_bytes} bytes x {rows} rows, got {} x {}",
                    plane.row_bytes, plane.rows
                )));
            }
        }
        Ok(Frame {
            width,
            height,
            format,
            planes,
            counter: 0,
            time: CaptureTime::now(),
        })
    }

    /// A tightly packed frame from one buffer holding every plane in order, as cameras and
    /// raw video files deliver them.
    pub fn from_packed(
        width: u32,
        height: u32,
        format: PixelFormat,
        data: &[u8],
    ) -> Result<Frame, CaptureError> {
        check_size(width, height, format)?;
        let mut planes = Vec::with_capacity(format.plane_count());
        let mut offset = 0;
        for index in 0..format.plane_count() {
            let (row_bytes, rows) = format.plane_size(index, width, height).unwrap_or((0, 0));
            let len = row_bytes * rows;
            let Some(bytes) = data.get(offset..offset + len) else {
                return Err(CaptureError::InvalidGeometry(format!(
                    "a {width}x{height} {format} frame needs {} bytes, got {}",
                    packed_len(width, height, format),
                    data.len()
                )));
            };
            planes.push(Plane::new(bytes.to_vec(), row_bytes, row_bytes, rows)?);
            offset += len;
        }
        Frame::from_planes(width, height, format, planes)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The planes, in the format's order (Y, U, V for I420).
    pub fn planes(&self) -> &[Plane] {
        &self.planes
    }

    /// Plane `index`.
    ///
    /// # Panics
    /// If `index` is not below the format's [`PixelFormat::plane_count`].
    pub fn plane(&self, index: usize) -> &Plane {
        &self.planes[index]
    }

    /// Plane `index`, for writing.
    ///
    /// # Panics
    /// If `index` is not below the format's [`PixelFormat::plane_count`].
    pub fn plane_mut(&mut self, index: usize) -> &mut Plane {
        &mut self.planes[index]
    }

    /// All planes, for writing.
    pub(crate) fn planes_mut(&mut self) -> &mut [Plane] {
        &mut self.planes
    }

    /// The frame's number in its source's sequence: 0 for the first frame, then +1 a frame.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Sets the frame's number.
    pub fn set_counter(&mut self, counter: u64) {
        self.counter = counter;
    }

    /// When the frame was captured.
    pub fn time(&self) -> CaptureTime {
        self.time
    }

    /// Sets the capture time.
    pub fn set_time(&mut self, time: CaptureTime) {
        self.time = time;
    }

    /// The frame with `counter` and `time` set, for builder-style construction.
    pub fn with_meta(mut self, counter: u64, time: CaptureTime) -> Frame {
        self.counter = counter;
        self.time = time;
        self
    }

    /// Every plane's pixels in order, without padding: the layout of [`Frame::from_packed`].
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(packed_len(self.width, self.height, self.format));
        for plane in &self.planes {
            out.extend_from_slice(&plane.packed());
        }
        out
    }

    /// Paints the whole frame black.
    pub fn fill_black(&mut self) {
        match self.format {
            PixelFormat::I420 => {
                self.planes[0].data.fill(16);
                self.planes[1].data.fill(128);
                self.planes[2].data.fill(128);
            }
            PixelFormat::Nv12 => {
                self.planes[0].data.fill(16);
                self.planes[1].data.fill(128);
            }
            PixelFormat::Yuyv => {
                for pair in self.planes[0].data.chunks_exact_mut(2) {
                    pair[0] = 16;
                    pair[1] = 128;
                }
            }
            PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Gray8 => {
                self.planes[0].data.fill(0);
            }
        }
    }
}

/// Bytes of a tightly packed frame with every plane in order.
pub fn packed_len(width: u32, height: u32, format: PixelFormat) -> usize {
    (0..format.plane_count())
        .filter_map(|index| format.plane_size(index, width, height))
        .map(|(row_bytes, rows)| row_bytes * rows)
        .sum()
}

fn check_size(width: u32, height: u32, format: PixelFormat) -> Result<(), CaptureError> {
    if width == 0 || height == 0 {
        return Err(CaptureError::InvalidGeometry(format!(
            "a frame must not be empty, got {width}x{height}"
        )));
    }
    if width > 16384 || height > 16384 {
        return Err(CaptureError::InvalidGeometry(format!(
            "{width}x{height} is larger than the 16384x16384 rtcgear supports"
        )));
    }
    let (even_w, even_h) = format.needs_even_size();
    if (even_w && !width.is_multiple_of(2)) || (even_h && !height.is_multiple_of(2)) {
        return Err(CaptureError::InvalidGeometry(format!(
            "{format} subsamples chroma, so {width}x{height} must have an even {}",
            if even_w && !width.is_multiple_of(2) {
                "width"
            } else {
                "height"
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_follow_the_format() {
        let frame = Frame::new(640, 480, PixelFormat::I420).unwrap();
        assert_eq!(frame.planes().len(), 3);
        assert_eq!(frame.plane(0).row_bytes(), 640);
        assert_eq!(frame.plane(1).rows(), 240);
        assert_eq!(frame.plane(2).row_bytes(), 320);
        assert_eq!(frame.plane(0).row(0)[0], 16);
        assert_eq!(frame.plane(1).row(0)[0], 128);
        let frame = Frame::new(64, 2, PixelFormat::Yuyv).unwrap();
        assert_eq!(frame.plane(0).row_bytes(), 128);
        assert_eq!(packed_len(640, 480, PixelFormat::Nv12), 640 * 480 * 3 / 2);
    }

    #[test]
    fn bad_geometry_is_an_error() {
        assert!(Frame::new(0, 10, PixelFormat::Gray8).is_err());
        assert!(Frame::new(641, 480, PixelFormat::I420).is_err());
        assert!(Frame::new(641, 481, PixelFormat::Bgr24).is_ok());
        assert!(Frame::new(640, 481, PixelFormat::Yuyv).is_ok());
        let short = Plane::new(vec![0; 10], 4, 4, 3);
        assert!(short.is_err());
        let plane = Plane::new(vec![0; 10], 4, 2, 3).unwrap();
        let err = Frame::from_planes(3, 3, PixelFormat::Gray8, vec![plane]).unwrap_err();
        assert!(err.to_string().contains("plane 0"), "{err}");
        assert!(Frame::from_packed(4, 4, PixelFormat::I420, &[0; 23]).is_err());
    }

    #[test]
    fn strided_planes_pack_without_padding() {
        let plane = Plane::new((0..12).collect(), 4, 3, 3).unwrap();
        assert_eq!(&*plane.packed(), &[0, 1, 2, 4, 5, 6, 8, 9, 10]);
        let frame = Frame::from_planes(3, 3, PixelFormat::Gray8, vec![plane]).unwrap();
        assert_eq!(frame.to_packed(), vec![0, 1, 2, 4, 5, 6, 8, 9, 10]);
    }

    #[test]
    fn formats_parse_by_common_names() {
        assert_eq!("yu12".parse::<PixelFormat>().unwrap(), PixelFormat::I420);
        assert_eq!("BGR".parse::<PixelFormat>().unwrap(), PixelFormat::Bgr24);
        let err = "mjpeg2".parse::<PixelFormat>().unwrap_err();
        assert!(err.to_string().contains("mjpeg2"));
    }
}
