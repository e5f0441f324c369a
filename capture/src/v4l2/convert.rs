//! A filled buffer made into a frame: raw formats copied plane by plane, MJPEG decoded.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::V4l2Format;
use crate::{CaptureError, Frame, PixelFormat, Plane};

/// How the driver lays out one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) format: V4l2Format,
    pub(super) width: u32,
    pub(super) height: u32,
    /// Bytes from one row to the next in the first plane; 0 (some drivers) means packed, and
    /// MJPEG has none.
    pub(super) stride: usize,
}

impl Layout {
    /// The first plane's stride, never below its row.
    fn stride(&self) -> usize {
        let row = match self.format {
            V4l2Format::Yuyv => self.width as usize * 2,
            _ => self.width as usize,
        };
        self.stride.max(row)
    }

    /// Whether frames of this size can exist in this format (any size, for H.264).
    pub(super) fn check(&self) -> Result<(), CaptureError> {
        match self.format.pixel_format() {
            Some(format) => Frame::new(self.width, self.height, format).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// A frame from one filled buffer (`data` is the used part).
pub(super) fn to_frame(data: &[u8], layout: &Layout) -> Result<Frame, CaptureError> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    let stride = layout.stride();
    let short = |needed: usize| {
        CaptureError::InvalidGeometry(format!(
            "a {}x{} {} buffer needs {needed} bytes, the camera gave {}",
            layout.width,
            layout.height,
            layout.format,
            data.len()
        ))
    };
    // Plane `len` bytes from `offset`, or the error that says the buffer is short.
    let take = |offset: usize, len: usize| {
        data.get(offset..offset + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| short(offset + len))
    };
    let not_frames = || {
        CaptureError::InvalidArgument(
            "H.264 buffers are passed through, not made into frames".into(),
        )
    };
    let planes = match layout.format {
        V4l2Format::Mjpeg => return decode_mjpeg(data, layout.width, layout.height),
        V4l2Format::H264 => return Err(not_frames()),
        V4l2Format::Yuyv => vec![Plane::new(take(0, stride * h)?, stride, w * 2, h)?],
        V4l2Format::Nv12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            vec![
                Plane::new(take(0, stride * h)?, stride, w, h)?,
                Plane::new(take(stride * h, stride * ch)?, stride, cw * 2, ch)?,
            ]
        }
        V4l2Format::Yu12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let chroma_stride = stride.div_ceil(2);
            let u_at = stride * h;
            let v_at = u_at + chroma_stride * ch;
            vec![
                Plane::new(take(0, stride * h)?, stride, w, h)?,
                Plane::new(take(u_at, chroma_stride * ch)?, chroma_stride, cw, ch)?,
                Plane::new(take(v_at, chroma_stride * ch)?, chroma_stride, cw, ch)?,
            ]
        }
    };
    let format = layout.format.pixel_format().ok_or_else(not_frames)?;
    Frame::from_planes(layout.width, layout.height, format, planes)
}

/// An MJPEG frame decoded into RGB; a picture of another size than negotiated is an error.
fn decode_mjpeg(data: &[u8], width: u32, height: u32) -> Result<Frame, CaptureError> {
    let bad = |reason: String| CaptureError::Conversion {
        from: PixelFormat::Rgb24,
        to: PixelFormat::Rgb24,
        reason,
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(width as usize)
        .set_max_height(height as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    let pixels = decoder
        .decode()
        .map_err(|err| bad(format!("bad MJPEG frame: {err:?}")))?;
    let (got_w, got_h) = decoder
        .dimensions()
        .map(|(w, h)| (w as u32, h as u32))
        .unwrap_or((0, 0));
    if (got_w, got_h) != (width, height) {
        return Err(bad(format!(
            "an MJPEG frame of {got_w}x{got_h} in a {width}x{height} stream"
        )));
    }
    let row = width as usize * 3;
    let plane = Plane::new(pixels, row, row, height as usize)?;
    Frame::from_planes(width, height, PixelFormat::Rgb24, vec![plane])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_buffers_with_padded_rows_become_frames() {
        let (w, h, stride) = (4u32, 2u32, 16usize);
        // YUYV: 8 bytes of pixels a row, 16 with padding.
        let mut data = vec![0u8; stride * 2];
        data[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        data[16..24].copy_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16]);
        let layout = Layout {
            format: V4l2Format::Yuyv,
            width: w,
            height: h,
            stride,
        };
        let frame = to_frame(&data, &layout).unwrap();
        assert_eq!(frame.format(), PixelFormat::Yuyv);
        assert_eq!(frame.plane(0).row(1), &[9, 10, 11, 12, 13, 14, 15, 16]);
        // One byte short.
        assert!(to_frame(&data[..data.len() - 1], &layout).is_err());

        // YU12 with a packed layout (stride 0 means rows of the width).
        // Y is 4x2 bytes, U and V 2x1 each.
        let packed: Vec<u8> = (0..12u8).collect();
        let layout = Layout {
            format: V4l2Format::Yu12,
            width: w,
            height: h,
            stride: 0,
        };
        let frame = to_frame(&packed, &layout).unwrap();
        assert_eq!(frame.format(), PixelFormat::I420);
        assert_eq!(frame.to_packed(), packed);

        // NV12 with padding: the chroma plane starts after the padded luma.
        let stride = 8;
        let mut data = vec![0u8; stride * 3];
        data[stride * 2..stride * 2 + 4].copy_from_slice(&[100, 101, 102, 103]);
        let layout = Layout {
            format: V4l2Format::Nv12,
            width: w,
            height: h,
            stride,
        };
        let frame = to_frame(&data, &layout).unwrap();
        assert_eq!(frame.plane(1).row(0), &[100, 101, 102, 103]);
    }

    #[test]
    fn mjpeg_decodes_to_rgb() {
        // 32x16, left half red and right half blue, made by
        // `ffmpeg -f lavfi -i color=red:s=16x16[a];color=blue:s=16x16[b];[a][b]hstack -frames 1`.
        let jpeg = include_bytes!("../../tests/data/red-blue-32x16.jpg");
        let frame = decode_mjpeg(jpeg, 32, 16).unwrap();
        assert_eq!(frame.format(), PixelFormat::Rgb24);
        assert_eq!((frame.width(), frame.height()), (32, 16));
        let left = &frame.plane(0).row(8)[4 * 3..4 * 3 + 3];
        let right = &frame.plane(0).row(8)[28 * 3..28 * 3 + 3];
        assert!(left[0] > 200 && left[2] < 60, "left is red: {left:?}");
        assert!(right[2] > 200 && right[0] < 60, "right is blue: {right:?}");
        // Another size than negotiated, and garbage, are errors rather than panics.
        assert!(decode_mjpeg(jpeg, 64, 16).is_err());
        assert!(decode_mjpeg(&jpeg[..jpeg.len() / 3], 32, 16).is_err());
        assert!(decode_mjpeg(b"not a jpeg", 32, 16).is_err());
        assert!(decode_mjpeg(&[], 32, 16).is_err());
    }

    mod properties {
        //! Property tests: any raw buffer layout against the V4L2 layout rules written out
        //! here (exact: these formats are copied, not converted), and MJPEG that the camera
        //! garbled never panicking.

        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        /// Where a plane is in a buffer: the offset of its first row, the bytes from one row
        /// to the next, the pixel bytes of a row, and the rows.
        type PlaneAt = (usize, usize, usize, usize);

        /// A raw format, a size, the stride the driver gives (0 for "packed", as some do), and
        /// the buffer: the bytes the layout needs, where each plane is in them, and up to 8
        /// bytes more.
        fn buffer() -> impl Strategy<Value = (Layout, Vec<PlaneAt>, usize, Vec<u8>)> {
            let format = prop_oneof![
                Just(V4l2Format::Yuyv),
                Just(V4l2Format::Nv12),
                Just(V4l2Format::Yu12),
            ];
            let geometry = (format, 1..=40u32, 1..=40u32, 0..=16usize, any::<bool>());
            (geometry, 0..=8usize).prop_flat_map(
                |((format, width, height, padding, packed), extra)| {
                    let (w, h) = (width as usize, height as usize);
                    let row = if format == V4l2Format::Yuyv { 2 * w } else { w };
                    let stride = if packed { 0 } else { row + padding };
                    // The rules: rows `stride` apart (at least a row of pixels); NV12's
                    // interleaved chroma rows as far apart as the luma's, YU12's half as far
                    // (rounded up), each plane right after the one before.
                    let s = stride.max(row);
                    let (cw, ch, cs) = (w.div_ceil(2), h.div_ceil(2), s.div_ceil(2));
                    let planes = match format {
                        V4l2Format::Yuyv => vec![(0, s, 2 * w, h)],
                        V4l2Format::Nv12 => vec![(0, s, w, h), (s * h, s, 2 * cw, ch)],
                        _ => vec![
                            (0, s, w, h),
                            (s * h, cs, cw, ch),
                            (s * h + cs * ch, cs, cw, ch),
                        ],
                    };
                    let needed = planes
                        .iter()
                        .map(|&(offset, step, _, rows)| offset + step * rows)
                        .max()
                        .unwrap_or(0);
                    let layout = Layout {
                        format,
                        width,
                        height,
                        stride,
                    };
                    (
                        Just(layout),
                        Just(planes),
                        Just(needed),
                        vec(any::<u8>(), needed + extra),
                    )
                },
            )
        }

        /// 128 cases a property, or `PROPTEST_CASES` to look harder.
        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|cases| cases.parse().ok())
                .unwrap_or(128);
            ProptestConfig::with_cases(cases)
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn raw_buffers_become_frames_row_for_row(
                (layout, planes, needed, data) in buffer()
            ) {
                let frame = to_frame(&data[..needed], &layout);
                if layout.check().is_err() {
                    // A size the format cannot have (odd where it subsamples chroma).
                    prop_assert!(frame.is_err());
                    return Ok(());
                }
                let frame = frame.unwrap();
                prop_assert_eq!(Some(frame.format()), layout.format.pixel_format());
                prop_assert_eq!((frame.width(), frame.height()), (layout.width, layout.height));
                prop_assert_eq!(frame.planes().len(), planes.len());
                for (index, &(offset, step, bytes, rows)) in planes.iter().enumerate() {
                    prop_assert_eq!(frame.plane(index).rows(), rows);
                    for y in 0..rows {
                        let want = &data[offset + y * step..][..bytes];
                        prop_assert_eq!(frame.plane(index).row(y), want, "plane {} row {}", index, y);
                    }
                }
                // A byte short of the layout is an error; bytes past it are ignored.
                prop_assert!(to_frame(&data[..needed - 1], &layout).is_err());
                prop_assert_eq!(to_frame(&data, &layout).unwrap().to_packed(), frame.to_packed());
            }

            #[test]
            fn garbled_mjpeg_is_an_error_or_a_frame_of_the_size_asked_for(
                edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
                keep in any::<prop::sample::Index>(),
                noise in vec(any::<u8>(), 0..512),
            ) {
                let jpeg = include_bytes!("../../tests/data/red-blue-32x16.jpg");
                let mut data = jpeg.to_vec();
                for (at, byte) in edits {
                    data[at.index(jpeg.len())] = byte;
                }
                data.truncate(keep.index(jpeg.len() + 1).max(jpeg.len() / 2));
                for data in [&data[..], &noise[..]] {
                    if let Ok(frame) = decode_mjpeg(data, 32, 16) {
                        prop_assert_eq!(frame.format(), PixelFormat::Rgb24);
                        prop_assert_eq!((frame.width(), frame.height()), (32, 16));
                    }
                }
            }
        }
    }
}
