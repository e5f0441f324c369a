//! Warping the planes of an I420 frame by an affine map, with border filling.

use rtcgear_capture::{CaptureError, Frame, PixelFormat, Plane};

use crate::BorderType;

/// An affine map from output pixel positions to input pixel positions of the luma plane, with
/// pixel centres at whole numbers: `x_in = m[0] x + m[1] y + m[2]`, `y_in = m[3] x + m[4] y + m[5]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Affine(pub(crate) [f64; 6]);

impl Affine {
    /// `self` after `first`.
    pub(crate) fn compose(&self, first: &Affine) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        let [g, h, i, j, k, l] = first.0;
        Affine([
            a * g + b * j,
            a * h + b * k,
            a * i + b * l + c,
            d * g + e * j,
            d * h + e * k,
            d * i + e * l + f,
        ])
    }

    /// The same map for 4:2:0 chroma, whose sample `i` sits at luma position `2i + 0.5`.
    fn chroma(&self) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        Affine([
            a,
            b,
            (0.5 * (a + b) + c - 0.5) / 2.0,
            d,
            e,
            (0.5 * (d + e) + f - 0.5) / 2.0,
        ])
    }

    /// Whether the map moves no pixel by more than a 1/256 of a pixel in a `width` x `height`
    /// picture.
    pub(crate) fn is_identity(&self, width: u32, height: u32) -> bool {
        let [a, b, c, d, e, f] = self.0;
        [
            (0.0, 0.0),
            (width as f64, 0.0),
            (0.0, height as f64),
            (width as f64, height as f64),
        ]
        .iter()
        .all(|&(x, y)| {
            (a * x + b * y + c - x).abs() < 1.0 / 256.0
                && (d * x + e * y + f - y).abs() < 1.0 / 256.0
        })
    }
}

/// `frame` (I420) seen through `map`, in an `out_width` x `out_height` frame.
pub(crate) fn warp_frame(
    frame: &Frame,
    map: &Affine,
    out_width: u32,
    out_height: u32,
    border: BorderType,
) -> Result<Frame, CaptureError> {
    let mut out = Frame::new(out_width, out_height, PixelFormat::I420)?;
    let chroma = map.chroma();
    for (index, (map, fill)) in [(map, 16u8), (&chroma, 128), (&chroma, 128)]
        .into_iter()
        .enumerate()
    {
        let src = frame.plane(index);
        let dst = out.plane_mut(index);
        warp_plane(src, dst, map, border, fill);
    }
    Ok(out.with_meta(frame.counter(), frame.time()))
}

fn warp_plane(src: &Plane, dst: &mut Plane, map: &Affine, border: BorderType, fill: u8) {
    /// Positions are stepped along a row in fixed point with this many fractional bits: exact
    /// enough that a 16384-pixel row drifts by less than 1/64 of a pixel.
    const BITS: u32 = 20;
    let one = f64::from(1u32 << BITS);
    let (sw, sh) = (src.row_bytes() as i64, src.rows() as i64);
    let stride = src.stride();
    let data = src.data();
    let [m0, m1, m2, m3, m4, m5] = map.0;
    let (step_x, step_y) = ((m0 * one).round() as i64, (m3 * one).round() as i64);
    // A run's positions are stepped in 16-bit fixed point below, which drifts by less than a
    // thousandth of a pixel; a margin of 1/512 pixel keeps them inside.
    let margin = 1i64 << (BITS - 9);
    let inside = |s: i64, n: i64| (s - margin) >> BITS >= 0 && (s + margin) >> BITS < n - 1;
    let interior = |sx: i64, sy: i64| inside(sx, sw) && inside(sy, sh);
    let width = dst.row_bytes();
    for y in 0..dst.rows() {
        let row = dst.row_mut(y);
        let start_x = ((m1 * y as f64 + m2) * one).round() as i64;
        let start_y = ((m4 * y as f64 + m5) * one).round() as i64;
        let at = |x: usize| (start_x + step_x * x as i64, start_y + step_y * x as i64);
        // The pixels whose four neighbours are all inside the source form one run along the
        // row (the map is affine): find it in floating point, then settle its ends exactly.
        let (mut lo, mut hi) = (0f64, width as f64);
        for (start, step, limit) in [
            (start_x, step_x, (sw - 1) << BITS),
            (start_y, step_y, (sh - 1) << BITS),
        ] {
            let (start, step, limit) = (start as f64, step as f64, limit as f64);
            if step.abs() < 1e-9 {
                if start < 0.0 || start >= limit {
                    hi = lo;
                }
            } else {
                let (a, b) = (-start / step, (limit - start) / step);
                lo = lo.max(a.min(b));
                hi = hi.min(a.max(b));
            }
        }
        let mut first = (lo.max(0.0).ceil() as usize).min(width);
        let mut last = (hi.max(0.0).floor() as usize).clamp(first, width);
        while first < last && !interior(at(first).0, at(first).1) {
            first += 1;
        }
        while last > first && !interior(at(last - 1).0, at(last - 1).1) {
            last -= 1;
        }
        // Inside the run every position fits in 32 bits with 16 fractional bits.
        let (sx0, sy0) = at(first);
        let shift = BITS - 16;
        let (mut sx, mut sy) = ((sx0 >> shift) as i32, (sy0 >> shift) as i32);
        let (dx, dy) = ((step_x >> shift) as i32, (step_y >> shift) as i32);
        // The steps lose their low bits; correct the drift every 64 pixels.
        for (chunk_index, chunk) in row[first..last].chunks_mut(64).enumerate() {
            if chunk_index > 0 {
                let (x, y) = at(first + chunk_index * 64);
                (sx, sy) = ((x >> shift) as i32, (y >> shift) as i32);
            }
            for out in chunk {
                // Rounded to the nearest 1/256 pixel, the precision of the weights.
                let (rx, ry) = (sx + 128, sy + 128);
                let at = (ry >> 16) as usize * stride + (rx >> 16) as usize;
                let wx = ((rx >> 8) & 255) as u32;
                let wy = ((ry >> 8) & 255) as u32;
                let quad = &data[at..at + stride + 2];
                let t = u32::from(quad[0]) * (256 - wx) + u32::from(quad[1]) * wx;
                let b = u32::from(quad[stride]) * (256 - wx) + u32::from(quad[stride + 1]) * wx;
                *out = ((t * (256 - wy) + b * wy + (1 << 15)) >> 16) as u8;
                sx += dx;
                sy += dy;
            }
        }
        for x in (0..first).chain(last..width) {
            let (sx, sy) = at(x);
            let (sx, sy) = (sx + margin, sy + margin);
            let (ix, iy) = (sx >> BITS, sy >> BITS);
            let wx = ((sx >> (BITS - 8)) & 255) as u32;
            let wy = ((sy >> (BITS - 8)) & 255) as u32;
            let pixel = |x: i64, y: i64| match (edge(x, sw, border), edge(y, sh, border)) {
                (Some(x), Some(y)) => u32::from(data[y as usize * stride + x as usize]),
                _ => u32::from(fill),
            };
            let t = pixel(ix, iy) * (256 - wx) + pixel(ix + 1, iy) * wx;
            let b = pixel(ix, iy + 1) * (256 - wx) + pixel(ix + 1, iy + 1) * wx;
            row[x] = ((t * (256 - wy) + b * wy + (1 << 15)) >> 16) as u8;
        }
    }
}

/// The index that position `i` of a row or column of `n` pixels reads, or `None` for the fill.
fn edge(i: i64, n: i64, border: BorderType) -> Option<i64> {
    if (0..n).contains(&i) {
        return Some(i);
    }
    match border {
        BorderType::Black => None,
        BorderType::Replicate => Some(i.clamp(0, n - 1)),
        BorderType::Wrap => Some(i.rem_euclid(n)),
        BorderType::Reflect => {
            let j = i.rem_euclid(2 * n);
            Some(if j >= n { 2 * n - 1 - j } else { j })
        }
        BorderType::Reflect101 => {
            if n == 1 {
                return Some(0);
            }
            let j = i.rem_euclid(2 * n - 2);
            Some(if j >= n { 2 * n - 2 - j } else { j })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_follow_opencv() {
        let map = |border| (-3..9).map(|i| edge(i, 6, border)).collect::<Vec<_>>();
        let s = |v: &[i64]| v.iter().map(|&i| Some(i)).collect::<Vec<_>>();
        assert_eq!(
            map(BorderType::Replicate),
            s(&[0, 0, 0, 0, 1, 2, 3, 4, 5, 5, 5, 5])
        );
        assert_eq!(
            map(BorderType::Reflect),
            s(&[2, 1, 0, 0, 1, 2, 3, 4, 5, 5, 4, 3])
        );
        assert_eq!(
            map(BorderType::Reflect101),
            s(&[3, 2, 1, 0, 1, 2, 3, 4, 5, 4, 3, 2])
        );
        assert_eq!(
            map(BorderType::Wrap),
            s(&[3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2])
        );
        assert_eq!(edge(-1, 6, BorderType::Black), None);
    }

    #[test]
    fn a_whole_pixel_shift_moves_every_plane() {
        let mut frame = Frame::new(8, 6, PixelFormat::I420).unwrap();
        for (i, v) in frame.plane_mut(0).data_mut().iter_mut().enumerate() {
            *v = i as u8;
        }
        frame.plane_mut(1).data_mut()[0] = 200;
        // Output pixel x reads input x - 2: the picture moves right by two luma pixels, one
        // chroma pixel.
        let map = Affine([1.0, 0.0, -2.0, 0.0, 1.0, 0.0]);
        let out = warp_frame(&frame, &map, 8, 6, BorderType::Black).unwrap();
        assert_eq!(out.plane(0).row(1), &[16, 16, 8, 9, 10, 11, 12, 13]);
        assert_eq!(out.plane(1).row(0), &[128, 200, 128, 128]);
    }

    /// Bilinear interpolation in floating point with the border rule, pixel by pixel.
    fn reference(src: &Plane, map: &Affine, x: usize, y: usize, border: BorderType) -> f64 {
        let [a, b, c, d, e, f] = map.0;
        let (sx, sy) = (
            a * x as f64 + b * y as f64 + c,
            d * x as f64 + e * y as f64 + f,
        );
        let (fx, fy) = (sx.floor(), sy.floor());
        let (n, m) = (src.row_bytes() as i64, src.rows() as i64);
        let pixel = |x: i64, y: i64| match (edge(x, n, border), edge(y, m, border)) {
            (Some(x), Some(y)) => f64::from(src.row(y as usize)[x as usize]),
            _ => 16.0,
        };
        let (tx, ty) = (sx - fx, sy - fy);
        let (ix, iy) = (fx as i64, fy as i64);
        let top = pixel(ix, iy) * (1.0 - tx) + pixel(ix + 1, iy) * tx;
        let bottom = pixel(ix, iy + 1) * (1.0 - tx) + pixel(ix + 1, iy + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    }

    #[test]
    fn rotated_warps_match_plain_bilinear_inside_and_at_the_borders() {
        let (w, h) = (90u32, 64u32);
        let mut frame = Frame::new(w, h, PixelFormat::I420).unwrap();
        for y in 0..h as usize {
            for (x, v) in frame.plane_mut(0).row_mut(y).iter_mut().enumerate() {
                *v = (128.0 + 60.0 * (x as f64 * 0.3).sin() + 60.0 * (y as f64 * 0.25).cos()) as u8;
            }
        }
        let angle = 3f64.to_radians();
        let map = Affine([
            angle.cos(),
            -angle.sin(),
            4.3,
            angle.sin(),
            angle.cos(),
            -6.7,
        ]);
        for border in [BorderType::Black, BorderType::Reflect101, BorderType::Wrap] {
            let out = warp_frame(&frame, &map, w + 10, h + 6, border).unwrap();
            for y in 0..(h + 6) as usize {
                for x in 0..(w + 10) as usize {
                    let expected = reference(frame.plane(0), &map, x, y, border);
                    let got = f64::from(out.plane(0).row(y)[x]);
                    assert!(
                        (got - expected).abs() <= 1.0,
                        "{border} ({x}, {y}): {got} vs {expected}"
                    );
                }
            }
        }
    }
}
