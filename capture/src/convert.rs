//! Pixel-format conversions, through the SIMD kernels of `yuvutils-rs`.
//!
//! Every format converts to and from I420, the pipeline's native format; conversions between two
//! other formats go through I420. YUV data is BT.601 video range, as cameras and x264 expect.

use std::borrow::Cow;

use yuvutils_rs::{
    BufferStoreMut, YuvConversionMode, YuvPackedImageMut, YuvPlanarImage, YuvPlanarImageMut,
    YuvRange, YuvStandardMatrix,
};

use crate::{CaptureError, Frame, PixelFormat, Plane};

const RANGE: YuvRange = YuvRange::Limited;
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

impl Frame {
    /// This frame in another pixel format, with the same counter and capture time.
    ///
    /// Converting to the frame's own format clones it.
    pub fn to_format(&self, format: PixelFormat) -> Result<Frame, CaptureError> {
        if format == self.format() {
            return Ok(self.clone());
        }
        let i420 = match self.format() {
            PixelFormat::I420 => None,
            _ => Some(to_i420(self)?),
        };
        let i420 = i420.as_ref().unwrap_or(self);
        let out = if format == PixelFormat::I420 {
            i420.clone()
        } else {
            from_i420(i420, format)?
        };
        Ok(out.with_meta(self.counter(), self.time()))
    }

    /// This frame in I420, without a copy when it is I420 already.
    pub fn into_i420(self) -> Result<Frame, CaptureError> {
        if self.format() == PixelFormat::I420 {
            Ok(self)
        } else {
            self.to_format(PixelFormat::I420)
        }
    }
}

fn err(from: PixelFormat, to: PixelFormat, reason: impl ToString) -> CaptureError {
    CaptureError::Conversion {
        from,
        to,
        reason: reason.to_string(),
    }
}

/// A plane's bytes as yuvutils-rs reads them: whole rows of `stride` bytes. Its kernels walk
/// a plane in steps of the stride (`chunks_exact`), so a last row that stops right after its
/// pixels, as [`Plane::new`] allows, would be skipped and the frame's last rows left black;
/// such a plane is copied with that row padded.
fn whole_rows(plane: &Plane) -> Cow<'_, [u8]> {
    let whole = plane.stride() * plane.rows();
    let data = plane.data();
    if data.len() >= whole {
        Cow::Borrowed(data)
    } else {
        let mut padded = Vec::with_capacity(whole);
        padded.extend_from_slice(data);
        padded.resize(whole, 0);
        Cow::Owned(padded)
    }
}

/// The I420 `frame` for yuvutils-rs, over its planes' bytes `[y, u, v]` from [`whole_rows`].
fn planar<'a>(frame: &Frame, [y, u, v]: &'a [Cow<'_, [u8]>; 3]) -> YuvPlanarImage<'a, u8> {
    YuvPlanarImage {
        y_plane: y,
        y_stride: frame.plane(0).stride() as u32,
        u_plane: u,
        u_stride: frame.plane(1).stride() as u32,
        v_plane: v,
        v_stride: frame.plane(2).stride() as u32,
        width: frame.width(),
        height: frame.height(),
    }
}

/// The whole rows of an I420 frame's three planes, for [`planar`].
fn i420_planes(frame: &Frame) -> [Cow<'_, [u8]>; 3] {
    [0, 1, 2].map(|index| whole_rows(frame.plane(index)))
}

fn to_i420(frame: &Frame) -> Result<Frame, CaptureError> {
    let (from, to) = (frame.format(), PixelFormat::I420);
    let (width, height) = (frame.width(), frame.height());
    let mut out = Frame::new(width, height, PixelFormat::I420)?;
    match from {
        PixelFormat::I420 => return Ok(frame.clone()),
        PixelFormat::Gray8 => {
            let src = frame.plane(0);
            let dst = out.plane_mut(0);
            for y in 0..src.rows() {
                dst.row_mut(y).copy_from_slice(src.row(y));
            }
        }
        PixelFormat::Nv12 => {
            // NV12 and I420 share the luma plane; the chroma only needs de-interleaving.
            let src = frame.plane(0);
            for y in 0..src.rows() {
                out.plane_mut(0).row_mut(y).copy_from_slice(src.row(y));
            }
            let uv = frame.plane(1);
            for y in 0..uv.rows() {
                let row = uv.row(y);
                for (x, pair) in row.chunks_exact(2).enumerate() {
                    out.plane_mut(1).row_mut(y)[x] = pair[0];
                    out.plane_mut(2).row_mut(y)[x] = pair[1];
                }
            }
        }
        PixelFormat::Yuyv => {
            // YUYV to I420 moves bytes and averages chroma over row pairs; no colour maths. It
            // is written out here because yuvutils-rs 0.8.3's `yuyv422_to_yuv420` drops luma
            // samples on its SIMD path for widths of 32 and more (the round-trip test shows it).
            let src = frame.plane(0);
            let (y_plane, (u_plane, v_plane)) = out.planes_split();
            for y in 0..src.rows() {
                let row = src.row(y);
                let luma = y_plane.row_mut(y);
                for (x, quad) in row.chunks_exact(4).enumerate() {
                    luma[2 * x] = quad[0];
                    luma[2 * x + 1] = quad[2];
                }
            }
            for cy in 0..u_plane.rows() {
                let top = src.row(2 * cy);
                let bottom = src.row((2 * cy + 1).min(src.rows() - 1));
                let (u_row, v_row) = (u_plane.row_mut(cy), v_plane.row_mut(cy));
                for x in 0..u_row.len() {
                    let (a, b) = (&top[4 * x..4 * x + 4], &bottom[4 * x..4 * x + 4]);
                    u_row[x] = (u16::from(a[1]) + u16::from(b[1])).div_ceil(2) as u8;
                    v_row[x] = (u16::from(a[3]) + u16::from(b[3])).div_ceil(2) as u8;
                }
            }
        }
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
            let (y_plane, rest) = out.planes_split();
            let (u_plane, v_plane) = rest;
            let mut image = YuvPlanarImageMut {
                y_stride: y_plane.stride() as u32,
                u_stride: u_plane.stride() as u32,
                v_stride: v_plane.stride() as u32,
                y_plane: BufferStoreMut::Borrowed(y_plane.data_mut()),
                u_plane: BufferStoreMut::Borrowed(u_plane.data_mut()),
                v_plane: BufferStoreMut::Borrowed(v_plane.data_mut()),
                width,
                height,
            };
            let src = frame.plane(0);
            let convert = match from {
                PixelFormat::Rgb24 => yuvutils_rs::rgb_to_yuv420,
                _ => yuvutils_rs::bgr_to_yuv420,
            };
            let result = convert(
                &mut image,
                &whole_rows(src),
                src.stride() as u32,
                RANGE,
                MATRIX,
                YuvConversionMode::Balanced,
            );
            result.map_err(|e| err(from, to, e))?;
        }
    }
    Ok(out)
}

fn from_i420(frame: &Frame, to: PixelFormat) -> Result<Frame, CaptureError> {
    let from = PixelFormat::I420;
    let (width, height) = (frame.width(), frame.height());
    let mut out = Frame::new(width, height, to)?;
    match to {
        PixelFormat::I420 => return Ok(frame.clone()),
        PixelFormat::Gray8 => {
            for y in 0..height as usize {
                out.plane_mut(0)
                    .row_mut(y)
                    .copy_from_slice(frame.plane(0).row(y));
            }
        }
        PixelFormat::Nv12 => {
            for y in 0..height as usize {
                out.plane_mut(0)
                    .row_mut(y)
                    .copy_from_slice(frame.plane(0).row(y));
            }
            for y in 0..frame.plane(1).rows() {
                let (u, v) = (frame.plane(1).row(y), frame.plane(2).row(y));
                let row = out.plane_mut(1).row_mut(y);
                for x in 0..u.len() {
                    row[2 * x] = u[x];
                    row[2 * x + 1] = v[x];
                }
            }
        }
        PixelFormat::Yuyv => {
            let plane = out.plane_mut(0);
            let stride = plane.stride() as u32;
            let mut packed = YuvPackedImageMut {
                yuy: BufferStoreMut::Borrowed(plane.data_mut()),
                yuy_stride: stride,
                width,
                height,
            };
            let planes = i420_planes(frame);
            yuvutils_rs::yuv420_to_yuyv422(&mut packed, &planar(frame, &planes))
                .map_err(|e| err(from, to, e))?;
        }
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
            let plane = out.plane_mut(0);
            let stride = plane.stride() as u32;
            let planes = i420_planes(frame);
            let image = planar(frame, &planes);
            let result = if to == PixelFormat::Rgb24 {
                yuvutils_rs::yuv420_to_rgb(&image, plane.data_mut(), stride, RANGE, MATRIX)
            } else {
                yuvutils_rs::yuv420_to_bgr(&image, plane.data_mut(), stride, RANGE, MATRIX)
            };
            result.map_err(|e| err(from, to, e))?;
        }
    }
    Ok(out)
}

impl Frame {
    /// The first plane and the other two, borrowed mutably at once (for I420).
    fn planes_split(&mut self) -> (&mut Plane, (&mut Plane, &mut Plane)) {
        let planes = self.planes_mut();
        let (y, rest) = planes.split_at_mut(1);
        let (u, v) = rest.split_at_mut(1);
        (&mut y[0], (&mut u[0], &mut v[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth BGR picture, where 4:2:0 subsampling loses little.
    fn gradient(width: u32, height: u32) -> Frame {
        let mut frame = Frame::new(width, height, PixelFormat::Bgr24).unwrap();
        for y in 0..height as usize {
            let row = frame.plane_mut(0).row_mut(y);
            for x in 0..width as usize {
                row[3 * x] = (x * 2) as u8;
                row[3 * x + 1] = (y * 3) as u8;
                row[3 * x + 2] = 200 - (x / 2) as u8;
            }
        }
        frame
    }

    fn max_diff(a: &Frame, b: &Frame) -> u8 {
        a.to_packed()
            .iter()
            .zip(b.to_packed().iter())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn every_format_round_trips_through_i420() {
        let bgr = gradient(64, 48);
        let i420 = bgr.to_format(PixelFormat::I420).unwrap();
        let d = max_diff(&bgr, &i420.to_format(PixelFormat::Bgr24).unwrap());
        assert!(d <= 6, "{d}");
        for format in PixelFormat::ALL {
            let there = i420.to_format(format).unwrap();
            assert_eq!(there.format(), format);
            let back = there.to_format(PixelFormat::I420).unwrap();
            let limit = match format {
                PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
                // YUYV keeps 4:2:2 chroma, which goes back to 4:2:0 by averaging rows.
                PixelFormat::Yuyv => 1,
                _ => 0,
            };
            if format == PixelFormat::Gray8 {
                assert_eq!(back.plane(0), i420.plane(0));
                assert!(back.plane(1).data().iter().all(|&c| c == 128));
            } else {
                let d = max_diff(&i420, &back);
                assert!(d <= limit, "{format}: {d}");
            }
        }
    }

    #[test]
    fn rgb_and_bgr_swap_channels() {
        let bgr = gradient(32, 32);
        let rgb = bgr.to_format(PixelFormat::Rgb24).unwrap();
        let (b, r) = (bgr.plane(0).row(5), rgb.plane(0).row(5));
        assert!(b[0].abs_diff(r[2]) <= 3 && b[2].abs_diff(r[0]) <= 3);
    }

    #[test]
    fn planes_whose_last_row_stops_after_its_pixels_convert_whole() {
        // Rows padded to 7 bytes more than their pixels, but for the last, as `Plane::new`
        // allows: the conversions through yuvutils-rs once left the last two rows black.
        let tight = gradient(16, 4).to_format(PixelFormat::I420).unwrap();
        let short = |frame: &Frame, pad: usize| {
            let planes = frame
                .planes()
                .iter()
                .map(|plane| {
                    let stride = plane.row_bytes() + pad;
                    let mut data = vec![0; stride * plane.rows()];
                    for y in 0..plane.rows() {
                        data[y * stride..][..plane.row_bytes()].copy_from_slice(plane.row(y));
                    }
                    data.truncate(stride * (plane.rows() - 1) + plane.row_bytes());
                    Plane::new(data, stride, plane.row_bytes(), plane.rows()).unwrap()
                })
                .collect();
            Frame::from_planes(frame.width(), frame.height(), frame.format(), planes).unwrap()
        };
        let i420 = short(&tight, 7);
        for format in [PixelFormat::Yuyv, PixelFormat::Rgb24, PixelFormat::Bgr24] {
            let want = tight.to_format(format).unwrap();
            assert_eq!(
                i420.to_format(format).unwrap().to_packed(),
                want.to_packed()
            );
            let there = short(&want, 7).to_format(PixelFormat::I420).unwrap();
            assert_eq!(
                there.to_packed(),
                want.to_format(PixelFormat::I420).unwrap().to_packed()
            );
        }
    }

    #[test]
    fn conversion_keeps_counter_and_time() {
        let frame = gradient(32, 32).with_meta(9, crate::CaptureTime::now());
        let out = frame.to_format(PixelFormat::Nv12).unwrap();
        assert_eq!(out.counter(), 9);
        assert_eq!(out.time(), frame.time());
    }
}
