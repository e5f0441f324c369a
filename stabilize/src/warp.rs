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
    let (sw, sh) = (src.row_bytes() as i32, src.rows() as i32);
    let stride = src.stride();
    let data = src.data();
    let [m0, m1, m2, m3, m4, m5] = map.0;
    let (m0, m3) = (m0 as f32, m3 as f32);
    for y in 0..dst.rows() {
        let row = dst.row_mut(y);
        // Row starts in f64 and steps in f32: no error builds up along the row.
        let (bx, by) = ((m1 * y as f64 + m2) as f32, (m4 * y as f64 + m5) as f32);
        for (x, out) in row.iter_mut().enumerate() {
            let (sx, sy) = (bx + m0 * x as f32, by + m3 * x as f32);
            let (fx, fy) = (sx.floor(), sy.floor());
            let (ix, iy) = (fx as i32, fy as i32);
            let wx = ((sx - fx) * 256.0) as u32;
            let wy = ((sy - fy) * 256.0) as u32;
            let (p00, p01, p10, p11) = if ix >= 0 && iy >= 0 && ix < sw - 1 && iy < sh - 1 {
                let at = iy as usize * stride + ix as usize;
                (
                    u32::from(data[at]),
                    u32::from(data[at + 1]),
                    u32::from(data[at + stride]),
                    u32::from(data[at + stride + 1]),
                )
            } else {
                let pixel = |x: i32, y: i32| match (edge(x, sw, border), edge(y, sh, border)) {
                    (Some(x), Some(y)) => u32::from(data[y as usize * stride + x as usize]),
                    _ => u32::from(fill),
                };
                (
                    pixel(ix, iy),
                    pixel(ix + 1, iy),
                    pixel(ix, iy + 1),
                    pixel(ix + 1, iy + 1),
                )
            };
            let top = p00 * (256 - wx) + p01 * wx;
            let bottom = p10 * (256 - wx) + p11 * wx;
            *out = ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8;
        }
    }
}

/// The index that position `i` of a row or column of `n` pixels reads, or `None` for the fill.
fn edge(i: i32, n: i32, border: BorderType) -> Option<i32> {
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
        let s = |v: &[i32]| v.iter().map(|&i| Some(i)).collect::<Vec<_>>();
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
}
