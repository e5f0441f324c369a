//! Mode negotiation: the camera formats read, and the mode nearest to what is asked for among
//! those the camera lists.

use std::fmt;
use std::str::FromStr;

use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;
use v4l::{Device, FourCC, Fraction};

use crate::{CaptureError, FrameRate, PixelFormat};

/// The size asked for when the options name none.
pub(super) const DEFAULT_SIZE: (u32, u32) = (1280, 720);
/// The rate asked for when the options name none.
pub(super) const DEFAULT_FPS: u32 = 30;
/// Bounds on what `list` asks a driver for, so a strange driver cannot make it loop long.
const MAX_SIZES: usize = 64;
const MAX_RATES: usize = 32;

/// A pixel format that a V4L2 camera delivers and [`V4l2Source`](super::V4l2Source) can read.
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
    /// H.264 (`H264`) from the camera's own encoder: read by
    /// [`V4l2H264Source`](super::V4l2H264Source) and passed through, never decoded, so
    /// [`V4l2Source`](super::V4l2Source) does not take it.
    H264,
}

impl V4l2Format {
    /// Every format [`V4l2Source`](super::V4l2Source) reads, in the order preferred when
    /// several fit equally well: the ones that need no conversion for the encoder first, the
    /// one that needs decoding last. ([`V4l2Format::H264`] is
    /// [`V4l2H264Source`](super::V4l2H264Source)'s.)
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

    /// The pixel format of the frames [`V4l2Source`](super::V4l2Source) yields for this camera
    /// format; `None` for H.264, which is passed through encoded.
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
/// What the options ask for.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Wanted {
    pub(super) size: Option<(u32, u32)>,
    pub(super) fps: Option<u32>,
    pub(super) format: Option<V4l2Format>,
}

/// A negotiated mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mode {
    pub(super) format: V4l2Format,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) fps: FrameRate,
}

/// A size the camera offers in a format, with the rates at that size (empty when the driver
/// does not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    format: V4l2Format,
    width: u32,
    height: u32,
    rates: Vec<FrameRate>,
}

/// The mode nearest to `wanted`: the nearest size first, then the nearest rate, then the
/// preferred format (see [`V4l2Format::ALL`]).
pub(super) fn choose(candidates: &[Candidate], wanted: &Wanted) -> Option<Mode> {
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
pub(super) fn candidates(device: &Device, wanted: &Wanted) -> Vec<Candidate> {
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

/// The sizes of one format, and whether they are a range.
pub(super) struct Sizes {
    pub(super) sizes: Vec<(u32, u32)>,
    pub(super) stepwise: bool,
}

/// The sizes of one format; a range gives its ends and the size nearest to `want`. A driver
/// that does not enumerate sizes gives `want` itself (the driver adjusts it when set).
pub(super) fn sizes_of(device: &Device, fourcc: FourCC, want: (u32, u32)) -> Sizes {
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
pub(super) fn rates_of(
    device: &Device,
    fourcc: FourCC,
    width: u32,
    height: u32,
    want: u32,
) -> Vec<FrameRate> {
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
/// A fourcc as text, with anything unprintable as `?`.
pub(super) fn fourcc_string(fourcc: [u8; 4]) -> String {
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
    }
}
