//! The stamp reader on arbitrary frames: the first five bytes give the width, height and pixel
//! format, the rest fills the planes (repeated when short); and on arbitrary luma planes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtcgear_capture::{Frame, PixelFormat, Stamp};

const FORMATS: [PixelFormat; 6] = [
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::Gray8,
    PixelFormat::Yuyv,
    PixelFormat::Rgb24,
    PixelFormat::Bgr24,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let width = u32::from(u16::from_le_bytes([data[0], data[1]]) % 1024);
    let height = u32::from(u16::from_le_bytes([data[2], data[3]]) % 1024);
    let format = FORMATS[usize::from(data[4]) % FORMATS.len()];
    let pixels = &data[5..];
    let stride = usize::from(data[5]);
    let _ = Stamp::read_luma(pixels, width as usize, height as usize, stride);
    let Ok(mut frame) = Frame::new(width, height, format) else {
        return;
    };
    for index in 0..frame.planes().len() {
        let plane = frame.plane_mut(index);
        for (i, byte) in plane.data_mut().iter_mut().enumerate() {
            *byte = pixels[i % pixels.len()];
        }
    }
    if let Some(stamp) = Stamp::read(&frame) {
        // A stamp read back can be painted again.
        let _ = stamp.paint(&mut frame);
    }
});
