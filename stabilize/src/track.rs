//! Feature tracking on the luma plane: an image pyramid, FAST corners spread over a grid, and a
//! pyramidal Lucas-Kanade optical flow with a forward-backward check.

use imageproc::corners::corners_fast9;
use imageproc::image::GrayImage;
use rtcgear_capture::Plane;

/// Half the side of the Lucas-Kanade window: 13x13 pixels.
const RADIUS: usize = 6;
const WINDOW: usize = 2 * RADIUS + 1;
/// The template patch has one more pixel on each side, for its central-difference gradients.
const PATCH: usize = WINDOW + 2;
const MAX_ITERATIONS: usize = 20;
/// Iterations stop once a step is shorter than this, in pixels of the level.
const EPSILON: f32 = 0.01;
/// A window whose gradients are weaker than this (the smaller eigenvalue of the structure
/// tensor per pixel, in grey levels squared per pixel squared) cannot be tracked reliably.
const MIN_EIGENVALUE: f32 = 1.0;
/// How far a point tracked forward and back may land from where it started, in tracking pixels.
const MAX_FORWARD_BACKWARD: f32 = 0.5;
/// Pyramid levels stop above this size.
const MIN_LEVEL_SIDE: usize = 24;
const MAX_LEVELS: usize = 3;

/// A grey picture in floating point.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) data: Vec<f32>,
}

impl Image {
    /// The luma plane scaled down by `factor` (a power of two) with a box filter.
    fn from_luma(plane: &Plane, width: usize, height: usize, factor: usize) -> Image {
        let (w, h) = (width / factor, height / factor);
        let mut data = vec![0.0f32; w * h];
        if factor == 1 {
            for y in 0..h {
                let row = &plane.row(y)[..w];
                for (out, &v) in data[y * w..(y + 1) * w].iter_mut().zip(row) {
                    *out = f32::from(v);
                }
            }
        } else if factor == 2 {
            for y in 0..h {
                let (r0, r1) = (&plane.row(2 * y)[..2 * w], &plane.row(2 * y + 1)[..2 * w]);
                let out = &mut data[y * w..(y + 1) * w];
                for ((out, a), b) in out
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    let sum = u16::from(a[0]) + u16::from(a[1]) + u16::from(b[0]) + u16::from(b[1]);
                    *out = f32::from(sum) * 0.25;
                }
            }
        } else {
            let mut sums = vec![0u32; w];
            let scale = 1.0 / (factor * factor) as f32;
            for y in 0..h {
                sums.fill(0);
                for sy in 0..factor {
                    let row = plane.row(y * factor + sy);
                    for (sum, chunk) in sums.iter_mut().zip(row.chunks_exact(factor)) {
                        *sum += chunk.iter().map(|&v| u32::from(v)).sum::<u32>();
                    }
                }
                for (out, &sum) in data[y * w..(y + 1) * w].iter_mut().zip(&sums) {
                    *out = sum as f32 * scale;
                }
            }
        }
        Image {
            width: w,
            height: h,
            data,
        }
    }

    /// This picture at half the size, each pixel the mean of four.
    fn half(&self) -> Image {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = vec![0.0f32; w * h];
        for y in 0..h {
            let r0 = &self.data[2 * y * self.width..];
            let r1 = &self.data[(2 * y + 1) * self.width..];
            for (x, out) in data[y * w..(y + 1) * w].iter_mut().enumerate() {
                *out = 0.25 * (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]);
            }
        }
        Image {
            width: w,
            height: h,
            data,
        }
    }

    fn to_gray(&self) -> Option<GrayImage> {
        let bytes = self.data.iter().map(|&v| v.round() as u8).collect();
        GrayImage::from_raw(self.width as u32, self.height as u32, bytes)
    }

    /// Bilinear samples at `(x0 + c, y0 + r)` for `r, c` in `0..n`, into `out` (`n * n` long).
    /// Positions outside the picture take the nearest edge pixel.
    fn sample_patch(&self, x0: f32, y0: f32, n: usize, out: &mut [f32]) {
        let (xf, yf) = (x0.floor(), y0.floor());
        let (fx, fy) = (x0 - xf, y0 - yf);
        let (w00, w01, w10, w11) = (
            (1.0 - fx) * (1.0 - fy),
            fx * (1.0 - fy),
            (1.0 - fx) * fy,
            fx * fy,
        );
        let (ix, iy) = (xf as isize, yf as isize);
        let (w, h) = (self.width as isize, self.height as isize);
        if ix >= 0 && iy >= 0 && ix + (n as isize) < w && iy + (n as isize) < h {
            let (ix, iy) = (ix as usize, iy as usize);
            for r in 0..n {
                let row0 = &self.data[(iy + r) * self.width + ix..][..n + 1];
                let row1 = &self.data[(iy + r + 1) * self.width + ix..][..n + 1];
                let out = &mut out[r * n..(r + 1) * n];
                for c in 0..n {
                    out[c] = w00 * row0[c] + w01 * row0[c + 1] + w10 * row1[c] + w11 * row1[c + 1];
                }
            }
        } else {
            let at = |x: isize, y: isize| {
                let x = x.clamp(0, w - 1) as usize;
                let y = y.clamp(0, h - 1) as usize;
                self.data[y * self.width + x]
            };
            for r in 0..n {
                let y = iy + r as isize;
                for c in 0..n {
                    let x = ix + c as isize;
                    out[r * n + c] = w00 * at(x, y)
                        + w01 * at(x + 1, y)
                        + w10 * at(x, y + 1)
                        + w11 * at(x + 1, y + 1);
                }
            }
        }
    }

    /// The mean of all pixels.
    fn mean(&self) -> f32 {
        self.data.iter().sum::<f32>() / self.data.len().max(1) as f32
    }
}

/// A frame's luma, scaled down for tracking, at several resolutions.
#[derive(Clone, Debug)]
pub(crate) struct Pyramid {
    /// Full-size pixels per tracking pixel.
    pub(crate) factor: usize,
    pub(crate) levels: Vec<Image>,
}

impl Pyramid {
    /// The pyramid of a luma plane of `width` x `height`, tracked at most `tracking_width` wide.
    pub(crate) fn new(luma: &Plane, width: u32, height: u32, tracking_width: u32) -> Pyramid {
        let (width, height) = (width as usize, height as usize);
        let mut factor = 1;
        while width / factor > tracking_width as usize && height / (factor * 2) >= 32 {
            factor *= 2;
        }
        let mut levels = vec![Image::from_luma(luma, width, height, factor)];
        while levels.len() < MAX_LEVELS {
            let last = &levels[levels.len() - 1];
            if last.width / 2 < MIN_LEVEL_SIDE || last.height / 2 < MIN_LEVEL_SIDE {
                break;
            }
            let half = last.half();
            levels.push(half);
        }
        Pyramid { factor, levels }
    }

    /// The tracking picture (level 0).
    pub(crate) fn base(&self) -> &Image {
        &self.levels[0]
    }

    /// The mean absolute difference of the coarsest levels, in grey levels: large after a cut.
    pub(crate) fn difference(&self, other: &Pyramid) -> f32 {
        let (a, b) = (
            &self.levels[self.levels.len() - 1],
            &other.levels[other.levels.len() - 1],
        );
        if a.data.len() != b.data.len() {
            return f32::INFINITY;
        }
        let (ma, mb) = (a.mean(), b.mean());
        let sum: f32 = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| ((x - ma) - (y - mb)).abs())
            .sum();
        sum / a.data.len().max(1) as f32 + (ma - mb).abs()
    }

    /// Up to `max` corners of the tracking picture, the strongest in each cell of a grid, in
    /// level-0 coordinates.
    pub(crate) fn corners(&self, max: usize) -> Vec<(f32, f32)> {
        // Corners are found on the coarsest level at least 160 pixels wide: far fewer pixels to
        // test, and a corner there is a textured window at level 0 too.
        let level = (0..self.levels.len())
            .rev()
            .find(|&level| self.levels[level].width >= 160)
            .unwrap_or(0);
        let image = &self.levels[level];
        let Some(gray) = image.to_gray() else {
            return Vec::new();
        };
        let margin = (RADIUS + 2) as u32 >> level;
        let cell = ((image.width * image.height) as f32 / max as f32)
            .sqrt()
            .max(4.0);
        let cols = ((image.width as f32 / cell).ceil() as usize).max(1);
        let rows = ((image.height as f32 / cell).ceil() as usize).max(1);
        let mut best: Vec<Option<(f32, u32, u32)>> = vec![None; cols * rows];
        for threshold in [24u8, 12, 6] {
            let corners = corners_fast9(&gray, threshold);
            for corner in corners {
                if corner.x < margin
                    || corner.y < margin
                    || corner.x + margin >= image.width as u32
                    || corner.y + margin >= image.height as u32
                {
                    continue;
                }
                let col = ((corner.x as f32 / cell) as usize).min(cols - 1);
                let row = ((corner.y as f32 / cell) as usize).min(rows - 1);
                let slot = &mut best[row * cols + col];
                if slot.is_none_or(|(score, _, _)| corner.score > score) {
                    *slot = Some((corner.score, corner.x, corner.y));
                }
            }
            // Lower thresholds only when the picture gave too few corners to fit a motion well.
            if best.iter().flatten().count() >= max / 4 {
                break;
            }
        }
        let scale = (1 << level) as f32;
        let offset = (scale - 1.0) / 2.0;
        best.into_iter()
            .flatten()
            .map(|(_, x, y)| (x as f32 * scale + offset, y as f32 * scale + offset))
            .collect()
    }
}

/// Tracks `points` (level-0 coordinates of `from`) into `to` and back; returns the pairs
/// (start, end) that survive the forward-backward check.
pub(crate) fn track(
    from: &Pyramid,
    to: &Pyramid,
    points: &[(f32, f32)],
) -> Vec<((f32, f32), (f32, f32))> {
    let mut tracker = Tracker::default();
    let mut pairs = Vec::with_capacity(points.len());
    for &p in points {
        let Some(q) = tracker.track_point(from, to, p, (0.0, 0.0)) else {
            continue;
        };
        let Some(back) = tracker.track_point(to, from, q, (p.0 - q.0, p.1 - q.1)) else {
            continue;
        };
        let (ex, ey) = (back.0 - p.0, back.1 - p.1);
        if ex * ex + ey * ey <= MAX_FORWARD_BACKWARD * MAX_FORWARD_BACKWARD {
            pairs.push((p, q));
        }
    }
    pairs
}

/// Scratch buffers for one Lucas-Kanade track.
struct Tracker {
    patch: [f32; PATCH * PATCH],
    template: [f32; WINDOW * WINDOW],
    gx: [f32; WINDOW * WINDOW],
    gy: [f32; WINDOW * WINDOW],
    target: [f32; WINDOW * WINDOW],
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            patch: [0.0; PATCH * PATCH],
            template: [0.0; WINDOW * WINDOW],
            gx: [0.0; WINDOW * WINDOW],
            gy: [0.0; WINDOW * WINDOW],
            target: [0.0; WINDOW * WINDOW],
        }
    }
}

impl Tracker {
    /// Where the window around `p` in `from` went in `to`, starting from the displacement
    /// `guess` (level 0). `None` when the window has too little texture, the iterations diverge
    /// or the point leaves the picture.
    fn track_point(
        &mut self,
        from: &Pyramid,
        to: &Pyramid,
        p: (f32, f32),
        guess: (f32, f32),
    ) -> Option<(f32, f32)> {
        let top = from.levels.len().min(to.levels.len()) - 1;
        let scale = (1u32 << top) as f32;
        let (mut dx, mut dy) = (guess.0 / scale, guess.1 / scale);
        for level in (0..=top).rev() {
            let scale = (1u32 << level) as f32;
            // With 2x2 box averaging, pixel centre i of a level sits at 2i + 0.5 one level down.
            let offset = (scale - 1.0) / 2.0;
            let (px, py) = ((p.0 - offset) / scale, (p.1 - offset) / scale);
            let (a, b) = (&from.levels[level], &to.levels[level]);
            let r = RADIUS as f32;
            a.sample_patch(px - r - 1.0, py - r - 1.0, PATCH, &mut self.patch);
            let (mut gxx, mut gxy, mut gyy) = (0.0f32, 0.0f32, 0.0f32);
            for y in 0..WINDOW {
                for x in 0..WINDOW {
                    let at = (y + 1) * PATCH + x + 1;
                    let gx = 0.5 * (self.patch[at + 1] - self.patch[at - 1]);
                    let gy = 0.5 * (self.patch[at + PATCH] - self.patch[at - PATCH]);
                    let k = y * WINDOW + x;
                    self.template[k] = self.patch[at];
                    self.gx[k] = gx;
                    self.gy[k] = gy;
                    gxx += gx * gx;
                    gxy += gx * gy;
                    gyy += gy * gy;
                }
            }
            let n = (WINDOW * WINDOW) as f32;
            let det = gxx * gyy - gxy * gxy;
            let min_eigenvalue =
                0.5 * (gxx + gyy - ((gxx - gyy) * (gxx - gyy) + 4.0 * gxy * gxy).sqrt()) / n;
            if det <= f32::EPSILON || (level == 0 && min_eigenvalue < MIN_EIGENVALUE) {
                return None;
            }
            for _ in 0..MAX_ITERATIONS {
                b.sample_patch(px + dx - r, py + dy - r, WINDOW, &mut self.target);
                let (mut bx, mut by) = (0.0f32, 0.0f32);
                for k in 0..WINDOW * WINDOW {
                    let e = self.target[k] - self.template[k];
                    bx += self.gx[k] * e;
                    by += self.gy[k] * e;
                }
                let step_x = -(gyy * bx - gxy * by) / det;
                let step_y = -(gxx * by - gxy * bx) / det;
                dx += step_x;
                dy += step_y;
                if !(dx.is_finite() && dy.is_finite()) || dx.abs() > 1e4 || dy.abs() > 1e4 {
                    return None;
                }
                // Coarse levels only need to bring the next level within reach.
                let epsilon = if level == 0 { EPSILON } else { 4.0 * EPSILON };
                if step_x * step_x + step_y * step_y < epsilon * epsilon {
                    break;
                }
            }
            if level > 0 {
                dx *= 2.0;
                dy *= 2.0;
            }
        }
        let q = (p.0 + dx, p.1 + dy);
        let base = to.base();
        let inside = q.0 >= 0.0
            && q.1 >= 0.0
            && q.0 <= (base.width - 1) as f32
            && q.1 <= (base.height - 1) as f32;
        inside.then_some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtcgear_capture::{Frame, PixelFormat};

    /// A smooth texture, shifted by (sx, sy) pixels.
    fn textured(width: u32, height: u32, sx: f32, sy: f32) -> Frame {
        let mut frame = Frame::new(width, height, PixelFormat::I420).unwrap();
        let plane = frame.plane_mut(0);
        for y in 0..height as usize {
            let row = plane.row_mut(y);
            for (x, v) in row.iter_mut().enumerate() {
                let (fx, fy) = (x as f32 - sx, y as f32 - sy);
                let t = (fx * 0.21).sin() * (fy * 0.17).cos() + (fx * 0.05 + fy * 0.08).sin();
                *v = (128.0 + 60.0 * t) as u8;
            }
        }
        frame
    }

    #[test]
    fn lucas_kanade_finds_a_subpixel_shift() {
        let a = textured(320, 240, 0.0, 0.0);
        let b = textured(320, 240, 3.3, -2.6);
        let pa = Pyramid::new(a.plane(0), 320, 240, 640);
        let pb = Pyramid::new(b.plane(0), 320, 240, 640);
        let corners = pa.corners(100);
        assert!(corners.len() > 20, "{} corners", corners.len());
        let pairs = track(&pa, &pb, &corners);
        assert!(pairs.len() > corners.len() / 2);
        for (p, q) in pairs {
            assert!((q.0 - p.0 - 3.3).abs() < 0.1, "{p:?} -> {q:?}");
            assert!((q.1 - p.1 + 2.6).abs() < 0.1, "{p:?} -> {q:?}");
        }
    }

    #[test]
    fn a_flat_picture_has_no_corners() {
        let frame = Frame::new(320, 240, PixelFormat::I420).unwrap();
        let pyramid = Pyramid::new(frame.plane(0), 320, 240, 640);
        assert!(pyramid.corners(100).is_empty());
    }
}
