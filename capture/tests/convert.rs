//! Property tests of the pixel-format conversions (`Frame::to_format`) against straightforward
//! scalar references written here from the formulas, for any size the formats allow, any
//! pixel data, and planes with padding at the end of their rows (the last row with or without
//! it, as `Plane::new` allows).
//!
//! What the references say and how close the conversion must come:
//! - Moving bytes is exact: NV12 <-> I420 (chroma de-/interleaved), I420 -> YUYV (each chroma
//!   sample on both rows it covers), GRAY8 <-> I420 (luma kept, chroma 128), and YUYV -> I420,
//!   whose chroma is the mean of the two rows a 4:2:0 sample covers, rounded half up.
//! - RGB24 and BGR24 <-> I420 are BT.601 video range ("limited": Y 16..235, Cb and Cr
//!   16..240), as `convert.rs` says. The references compute it in `f64` and round to nearest.
//!   Going to 4:2:0, a chroma sample is the conversion of the mean of the 2x2 pixels it covers,
//!   and the kernels (13-bit fixed point, rounding a hair below half) come within 1 of the
//!   reference on every value (`TO_YUV`). Coming back, every pixel takes the chroma sample of
//!   its 2x2 block (no interpolation), and the SIMD kernels (16-bit fixed point) come within 3
//!   of the reference (`TO_RGB`; the most any of the 2^24 (Y, Cb, Cr) triples is off on x86-64
//!   with AVX2, in green). They also take luma below 16 (blacker than black) as 16, which the
//!   scalar code does not: either is accepted.
//! - A size the target format cannot hold (odd, for 4:2:0) is an error, never a panic.
//!
//! 128 cases a property by default; `PROPTEST_CASES=5000 cargo test -p rtcgear-capture --test
//! convert` looks harder.

use proptest::collection::vec;
use proptest::prelude::*;
use rtcgear_capture::{Frame, PixelFormat, Plane};

/// How far an 8-bit value from RGB to I420 may be from the `f64` reference.
const TO_YUV: u8 = 1;
/// How far an 8-bit value from I420 to RGB may be from the `f64` reference.
const TO_RGB: u8 = 3;

/// The largest width and height tried: enough for several SIMD blocks and their scalar tails.
const MAX_SIDE: u32 = 72;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(128);
    ProptestConfig {
        // Frames shrink slowly, one byte at a time: give the shrinker room.
        max_shrink_iters: 4096,
        ..ProptestConfig::with_cases(cases)
    }
}

/// A size that frames of `format` can have: even where the format subsamples chroma.
fn size(format: PixelFormat) -> impl Strategy<Value = (u32, u32)> {
    let (even_w, even_h) = match format {
        PixelFormat::I420 | PixelFormat::Nv12 => (true, true),
        PixelFormat::Yuyv => (true, false),
        _ => (false, false),
    };
    let side = |even: bool| {
        if even {
            (1..=MAX_SIDE / 2).prop_map(|n| n * 2).boxed()
        } else {
            (1..=MAX_SIDE).boxed()
        }
    };
    (side(even_w), side(even_h))
}

/// A frame of `format` of a size from `sizes`, with arbitrary pixels, and for each plane 0 to
/// 9 bytes of padding a row, the last row ending with its padding or right after its pixels.
fn frame_of(
    format: PixelFormat,
    sizes: impl Strategy<Value = (u32, u32)>,
) -> impl Strategy<Value = Frame> {
    let planes = format.plane_count();
    (sizes, vec((0usize..10, any::<bool>()), planes))
        .prop_flat_map(move |((width, height), layout)| {
            let geometry: Vec<(usize, usize, usize)> = layout
                .iter()
                .enumerate()
                .map(|(index, &(padding, short_last_row))| {
                    let (row_bytes, rows) = format.plane_size(index, width, height).unwrap();
                    let stride = row_bytes + padding;
                    let len = if short_last_row {
                        stride * (rows - 1) + row_bytes
                    } else {
                        stride * rows
                    };
                    (stride, row_bytes, len)
                })
                .collect();
            let data: Vec<_> = geometry
                .iter()
                .map(|&(_, _, len)| vec(any::<u8>(), len))
                .collect();
            (Just((width, height, geometry)), data)
        })
        .prop_map(move |((width, height, geometry), data)| {
            let planes = geometry
                .iter()
                .zip(data)
                .enumerate()
                .map(|(index, (&(stride, row_bytes, _), bytes))| {
                    let (_, rows) = format.plane_size(index, width, height).unwrap();
                    Plane::new(bytes, stride, row_bytes, rows).unwrap()
                })
                .collect();
            Frame::from_planes(width, height, format, planes).unwrap()
        })
}

fn frame(format: PixelFormat) -> impl Strategy<Value = Frame> {
    frame_of(format, size(format))
}

/// Byte `x` of row `y` of plane `plane`.
fn at(frame: &Frame, plane: usize, x: usize, y: usize) -> u8 {
    frame.plane(plane).row(y)[x]
}

/// What the reference allows for one byte: a value within `tolerance` of `value`, or of `or`
/// where two readings of the formula are both right.
#[derive(Clone, Copy)]
struct Want {
    value: u8,
    or: u8,
    tolerance: u8,
}

fn exact(value: u8) -> Want {
    Want {
        value,
        or: value,
        tolerance: 0,
    }
}

/// Checks that `got` has `format` and the size of `from`, and that every byte of every plane
/// is what `reference(plane, x, y)` allows.
fn check(
    got: &Frame,
    from: &Frame,
    format: PixelFormat,
    reference: impl Fn(usize, usize, usize) -> Want,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.format(), format);
    prop_assert_eq!((got.width(), got.height()), (from.width(), from.height()));
    for (index, plane) in got.planes().iter().enumerate() {
        for y in 0..plane.rows() {
            for (x, &value) in plane.row(y).iter().enumerate() {
                let want = reference(index, x, y);
                prop_assert!(
                    value.abs_diff(want.value) <= want.tolerance
                        || value.abs_diff(want.or) <= want.tolerance,
                    "{} -> {}, {}x{}: plane {} byte {} of row {} is {}, the reference says {} \
                     (or {}) within {}",
                    from.format(),
                    format,
                    from.width(),
                    from.height(),
                    index,
                    x,
                    y,
                    value,
                    want.value,
                    want.or,
                    want.tolerance
                );
            }
        }
    }
    Ok(())
}

/// Round to nearest and clamp to 8 bits.
fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

// BT.601: Kr = 0.299, Kb = 0.114; video range scales luma to 219 steps from 16 and chroma to
// 224 steps around 128.
const KR: f64 = 0.299;
const KB: f64 = 0.114;
const KG: f64 = 1.0 - KR - KB;

/// (Y, Cb, Cr) of an RGB colour, unrounded.
fn ycbcr(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let luma = KR * r + KG * g + KB * b;
    let y = 16.0 + 219.0 / 255.0 * luma;
    let cb = 128.0 + 224.0 / 255.0 * (b - luma) / (2.0 * (1.0 - KB));
    let cr = 128.0 + 224.0 / 255.0 * (r - luma) / (2.0 * (1.0 - KR));
    (y, cb, cr)
}

/// The RGB colour of (Y, Cb, Cr), unrounded and unclamped.
fn rgb(y: u8, cb: u8, cr: u8) -> (f64, f64, f64) {
    let luma = (f64::from(y) - 16.0) * 255.0 / 219.0;
    let pb = (f64::from(cb) - 128.0) * 255.0 / 224.0;
    let pr = (f64::from(cr) - 128.0) * 255.0 / 224.0;
    let r = luma + 2.0 * (1.0 - KR) * pr;
    let b = luma + 2.0 * (1.0 - KB) * pb;
    let g = (luma - KR * r - KB * b) / KG;
    (r, g, b)
}

/// Where red, green and blue are in a pixel of `format`.
fn channels(format: PixelFormat) -> [usize; 3] {
    match format {
        PixelFormat::Rgb24 => [0, 1, 2],
        _ => [2, 1, 0],
    }
}

/// The (R, G, B) of pixel (x, y) of an RGB24 or BGR24 frame.
fn pixel(frame: &Frame, x: usize, y: usize) -> [f64; 3] {
    let row = frame.plane(0).row(y);
    channels(frame.format()).map(|c| f64::from(row[3 * x + c]))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn i420_to_nv12_interleaves_the_chroma(i420 in frame(PixelFormat::I420)) {
        let nv12 = i420.to_format(PixelFormat::Nv12).unwrap();
        check(&nv12, &i420, PixelFormat::Nv12, |plane, x, y| match plane {
            0 => exact(at(&i420, 0, x, y)),
            _ => exact(at(&i420, 1 + x % 2, x / 2, y)),
        })?;
    }

    #[test]
    fn nv12_to_i420_deinterleaves_the_chroma(nv12 in frame(PixelFormat::Nv12)) {
        let i420 = nv12.to_format(PixelFormat::I420).unwrap();
        check(&i420, &nv12, PixelFormat::I420, |plane, x, y| match plane {
            0 => exact(at(&nv12, 0, x, y)),
            1 => exact(at(&nv12, 1, 2 * x, y)),
            _ => exact(at(&nv12, 1, 2 * x + 1, y)),
        })?;
    }

    #[test]
    fn i420_to_gray8_keeps_the_luma(i420 in frame(PixelFormat::I420)) {
        let gray = i420.to_format(PixelFormat::Gray8).unwrap();
        check(&gray, &i420, PixelFormat::Gray8, |_, x, y| exact(at(&i420, 0, x, y)))?;
    }

    #[test]
    fn gray8_to_i420_adds_neutral_chroma(gray in frame(PixelFormat::Gray8)) {
        let i420 = gray.to_format(PixelFormat::I420);
        if gray.width() % 2 == 1 || gray.height() % 2 == 1 {
            prop_assert!(i420.is_err());
        } else {
            check(&i420.unwrap(), &gray, PixelFormat::I420, |plane, x, y| match plane {
                0 => exact(at(&gray, 0, x, y)),
                _ => exact(128),
            })?;
        }
    }

    #[test]
    fn i420_to_yuyv_puts_each_chroma_sample_on_both_its_rows(i420 in frame(PixelFormat::I420)) {
        let yuyv = i420.to_format(PixelFormat::Yuyv).unwrap();
        check(&yuyv, &i420, PixelFormat::Yuyv, |_, x, y| {
            let (pair, byte) = (x / 4, x % 4);
            exact(match byte {
                0 => at(&i420, 0, 2 * pair, y),
                2 => at(&i420, 0, 2 * pair + 1, y),
                1 => at(&i420, 1, pair, y / 2),
                _ => at(&i420, 2, pair, y / 2),
            })
        })?;
    }

    #[test]
    fn yuyv_to_i420_averages_chroma_over_row_pairs(yuyv in frame(PixelFormat::Yuyv)) {
        let i420 = yuyv.to_format(PixelFormat::I420);
        if yuyv.height() % 2 == 1 {
            prop_assert!(i420.is_err());
        } else {
            check(&i420.unwrap(), &yuyv, PixelFormat::I420, |plane, x, y| {
                if plane == 0 {
                    return exact(at(&yuyv, 0, 4 * (x / 2) + 2 * (x % 2), y));
                }
                let byte = 4 * x + if plane == 1 { 1 } else { 3 };
                let (top, bottom) = (at(&yuyv, 0, byte, 2 * y), at(&yuyv, 0, byte, 2 * y + 1));
                exact((u16::from(top) + u16::from(bottom)).div_ceil(2) as u8)
            })?;
        }
    }

    #[test]
    fn rgb_and_bgr_to_i420_are_bt601_video_range(
        rgb in prop_oneof![frame(PixelFormat::Rgb24), frame(PixelFormat::Bgr24)]
    ) {
        let i420 = rgb.to_format(PixelFormat::I420);
        if rgb.width() % 2 == 1 || rgb.height() % 2 == 1 {
            prop_assert!(i420.is_err());
            return Ok(());
        }
        let within = |value: f64| Want {
            value: to_u8(value),
            or: to_u8(value),
            tolerance: TO_YUV,
        };
        check(&i420.unwrap(), &rgb, PixelFormat::I420, |plane, x, y| {
            if plane == 0 {
                let [r, g, b] = pixel(&rgb, x, y);
                return within(ycbcr(r, g, b).0);
            }
            let mut mean = [0.0; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = pixel(&rgb, 2 * x + dx, 2 * y + dy);
                for (sum, value) in mean.iter_mut().zip(p) {
                    *sum += value / 4.0;
                }
            }
            let (_, cb, cr) = ycbcr(mean[0], mean[1], mean[2]);
            within(if plane == 1 { cb } else { cr })
        })?;
    }

    #[test]
    fn i420_to_rgb_and_bgr_are_bt601_video_range(
        i420 in frame(PixelFormat::I420),
        bgr in any::<bool>(),
    ) {
        let format = if bgr { PixelFormat::Bgr24 } else { PixelFormat::Rgb24 };
        let out = i420.to_format(format).unwrap();
        let order = channels(format);
        check(&out, &i420, format, |_, x, y| {
            let (px, byte) = (x / 3, x % 3);
            let channel = order.iter().position(|&c| c == byte).unwrap();
            let (luma, cb, cr) = (at(&i420, 0, px, y), at(&i420, 1, px / 2, y / 2), at(&i420, 2, px / 2, y / 2));
            let reading = |luma: u8| {
                let (r, g, b) = rgb(luma, cb, cr);
                to_u8([r, g, b][channel])
            };
            Want {
                value: reading(luma),
                or: reading(luma.max(16)),
                tolerance: TO_RGB,
            }
        })?;
    }

    #[test]
    fn every_format_to_itself_is_a_copy(
        frame in prop_oneof![
            frame(PixelFormat::I420),
            frame(PixelFormat::Nv12),
            frame(PixelFormat::Yuyv),
            frame(PixelFormat::Rgb24),
            frame(PixelFormat::Bgr24),
            frame(PixelFormat::Gray8),
        ]
    ) {
        let same = frame.to_format(frame.format()).unwrap();
        prop_assert_eq!(same.to_packed(), frame.to_packed());
    }
}
