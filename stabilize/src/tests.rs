//! Tests of the whole stabilizer on synthetic pictures with known motion.

use rtcgear_capture::{Frame, PixelFormat};

use rtcgear_capture::{CaptureError, FrameRate, Source, SourceInfo};

use crate::{BorderType, Smoothing, Stabilized, Stabilizer, StabilizerConfig};

trait Numbered {
    fn numbered(self, counter: u64) -> Frame;
}

impl Numbered for Frame {
    fn numbered(mut self, counter: u64) -> Frame {
        self.set_counter(counter);
        self
    }
}

/// Frames made beforehand, as a source.
struct Clip(std::vec::IntoIter<Frame>);

impl Iterator for Clip {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(Ok)
    }
}

impl Source for Clip {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            width: 192,
            height: 144,
            format: PixelFormat::I420,
            // 30 is not zero.
            fps: FrameRate::from_int(30).unwrap(),
        }
    }
}

/// A random value in [0, 1) for each lattice point.
fn hash(x: i64, y: i64) -> f32 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smoothly interpolated lattice noise.
fn value_noise(x: f32, y: f32) -> f32 {
    let (fx, fy) = (x.floor(), y.floor());
    let (tx, ty) = (x - fx, y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (fx as i64, fy as i64);
    let top = hash(ix, iy) * (1.0 - sx) + hash(ix + 1, iy) * sx;
    let bottom = hash(ix, iy + 1) * (1.0 - sx) + hash(ix + 1, iy + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// A textured scene seen by a camera that moved its content by `(dx, dy)` pixels and `degrees`
/// about the frame centre.
fn textured(width: u32, height: u32, dx: f32, dy: f32, degrees: f32) -> Frame {
    let mut frame = Frame::new(width, height, PixelFormat::I420).expect("a valid size");
    let (c, s) = (degrees.to_radians().cos(), degrees.to_radians().sin());
    let (cx, cy) = ((width as f32 - 1.0) / 2.0, (height as f32 - 1.0) / 2.0);
    let plane = frame.plane_mut(0);
    for y in 0..height as usize {
        for (x, v) in plane.row_mut(y).iter_mut().enumerate() {
            // The scene point this pixel shows: the inverse of the camera's motion.
            let (px, py) = (x as f32 - cx - dx, y as f32 - cy - dy);
            let (sx, sy) = (c * px + s * py, -s * px + c * py);
            let t = 0.65 * value_noise(sx / 6.0, sy / 6.0) + 0.35 * value_noise(sx / 2.5, sy / 2.5);
            *v = (30.0 + 200.0 * t) as u8;
        }
    }
    frame
}

fn check_motion(width: u32, height: u32, dx: f32, dy: f32, degrees: f32) {
    let mut stabilizer = Stabilizer::new(StabilizerConfig::new()).unwrap();
    stabilizer
        .send_frame(textured(width, height, 0.0, 0.0, 0.0))
        .unwrap();
    stabilizer
        .send_frame(textured(width, height, dx, dy, degrees))
        .unwrap();
    let motion = stabilizer
        .last_motion()
        .expect("a second frame has a motion");
    assert!(motion.reliable, "{motion:?}");
    let tolerance = 0.05;
    assert!(
        (motion.dx - f64::from(dx)).abs() < tolerance,
        "dx {} vs {dx}",
        motion.dx
    );
    assert!(
        (motion.dy - f64::from(dy)).abs() < tolerance,
        "dy {} vs {dy}",
        motion.dy
    );
    let error = motion.angle.to_degrees() - f64::from(degrees);
    assert!(
        error.abs() < 0.01,
        "angle {} vs {degrees}",
        motion.angle.to_degrees()
    );
}

#[test]
fn estimates_subpixel_shifts() {
    check_motion(320, 240, 3.4, -2.7, 0.0);
    check_motion(320, 240, -7.8, 5.25, 0.0);
}

#[test]
fn estimates_rotation_with_shift() {
    check_motion(320, 240, 1.5, 0.5, 0.8);
    check_motion(320, 240, -4.0, 2.0, -1.0);
}

#[test]
fn estimates_at_reduced_tracking_scale() {
    // 1280 wide is tracked at 640: the estimate is still well within a tenth of a pixel.
    check_motion(1280, 720, 6.3, -3.6, 0.3);
}

#[test]
fn flat_frames_pass_through_unchanged() {
    let mut stabilizer = Stabilizer::new(StabilizerConfig::new().smoothing_radius(3)).unwrap();
    let mut frames = Vec::new();
    for i in 0..8u8 {
        let mut frame = Frame::new(64, 48, PixelFormat::I420).unwrap();
        frame.plane_mut(0).data_mut().fill(40 + i);
        frames.push(frame.clone());
        stabilizer.send_frame(frame).unwrap();
        assert!(!stabilizer.last_motion().is_some_and(|m| m.reliable));
    }
    stabilizer.flush();
    for frame in frames {
        let out = stabilizer
            .receive_frame()
            .expect("one frame out per frame in");
        assert_eq!(out.to_packed(), frame.to_packed());
    }
    assert!(stabilizer.receive_frame().is_none());
    assert_eq!(stabilizer.stats().unreliable, 8);
}

#[test]
fn noise_frames_pass_through_unchanged() {
    let mut stabilizer = Stabilizer::new(StabilizerConfig::new().smoothing_radius(2)).unwrap();
    let mut frames = Vec::new();
    for i in 0..6i64 {
        let mut frame = Frame::new(160, 120, PixelFormat::I420).unwrap();
        for (k, v) in frame.plane_mut(0).data_mut().iter_mut().enumerate() {
            *v = (hash(k as i64, i) * 255.0) as u8;
        }
        frames.push(frame.clone());
        stabilizer.send_frame(frame).unwrap();
    }
    stabilizer.flush();
    for frame in frames {
        assert_eq!(
            stabilizer.receive_frame().unwrap().to_packed(),
            frame.to_packed()
        );
    }
}

#[test]
fn a_scene_cut_is_not_a_motion() {
    let mut stabilizer = Stabilizer::new(StabilizerConfig::new()).unwrap();
    stabilizer
        .send_frame(textured(320, 240, 0.0, 0.0, 0.0))
        .unwrap();
    let mut other = Frame::new(320, 240, PixelFormat::I420).unwrap();
    for (k, v) in other.plane_mut(0).data_mut().iter_mut().enumerate() {
        *v = if (k / 320 / 20 + k % 320 / 20) % 2 == 0 {
            30
        } else {
            220
        };
    }
    stabilizer.send_frame(other).unwrap();
    assert!(!stabilizer.last_motion().unwrap().reliable);
}

#[test]
fn flush_returns_every_delayed_frame_in_order() {
    for radius in [0, 1, 4, 25] {
        let mut stabilizer =
            Stabilizer::new(StabilizerConfig::new().smoothing_radius(radius)).unwrap();
        let mut counters = Vec::new();
        for i in 0..10 {
            let frame = textured(96, 64, i as f32 * 0.7, 0.0, 0.0).numbered(i);
            stabilizer.send_frame(frame).unwrap();
            while let Some(frame) = stabilizer.receive_frame() {
                counters.push(frame.counter());
            }
        }
        assert_eq!(counters.len(), 10usize.saturating_sub(radius));
        stabilizer.flush();
        while let Some(frame) = stabilizer.receive_frame() {
            counters.push(frame.counter());
        }
        assert_eq!(counters, (0..10).collect::<Vec<_>>(), "radius {radius}");
    }
}

#[test]
fn causal_mode_has_no_delay() {
    let config = StabilizerConfig::new().smoothing(Smoothing::Causal);
    let mut stabilizer = Stabilizer::new(config).unwrap();
    assert_eq!(stabilizer.delay(), 0);
    for i in 0..5 {
        stabilizer
            .send_frame(textured(160, 120, i as f32, 0.0, 0.0))
            .unwrap();
        assert!(stabilizer.receive_frame().is_some());
    }
}

#[test]
fn odd_chroma_tiny_and_changing_sizes_never_panic() {
    let mut stabilizer =
        Stabilizer::new(StabilizerConfig::new().smoothing_radius(2).border_size(3)).unwrap();
    let sizes = [
        (66, 50),
        (66, 50),
        (2, 2),
        (2, 2),
        (34, 18),
        (130, 98),
        (130, 98),
    ];
    for (i, (w, h)) in sizes.into_iter().enumerate() {
        let frame = textured(w, h, i as f32, 0.5, 0.0).numbered(i as u64);
        stabilizer.send_frame(frame).unwrap();
    }
    stabilizer.flush();
    let mut out = Vec::new();
    while let Some(frame) = stabilizer.receive_frame() {
        out.push((frame.counter(), frame.width(), frame.height()));
    }
    let expected: Vec<_> = sizes
        .into_iter()
        .enumerate()
        .map(|(i, (w, h))| (i as u64, w + 6, h + 6))
        .collect();
    assert_eq!(out, expected);
    assert_eq!(stabilizer.stats().segments, 4);
}

#[test]
fn other_pixel_formats_come_out_as_i420() {
    let mut stabilizer = Stabilizer::new(StabilizerConfig::new().smoothing_radius(0)).unwrap();
    let frame = textured(64, 48, 0.0, 0.0, 0.0)
        .to_format(PixelFormat::Bgr24)
        .unwrap();
    stabilizer.send_frame(frame).unwrap();
    assert_eq!(
        stabilizer.receive_frame().unwrap().format(),
        PixelFormat::I420
    );
}

/// The residual motion between consecutive frames, measured by a fresh stabilizer.
fn residual(frames: &[Frame]) -> f64 {
    let mut meter = Stabilizer::new(StabilizerConfig::new()).unwrap();
    let mut sum = 0.0;
    for frame in frames {
        meter.send_frame(frame.clone()).unwrap();
        if let Some(m) = meter.last_motion() {
            sum += m.dx * m.dx + m.dy * m.dy;
        }
    }
    (sum / frames.len() as f64).sqrt()
}

#[test]
fn jitter_is_removed_and_border_options_apply() {
    let jitter = [
        0.0, 3.0, -2.0, 2.5, -3.0, 1.0, -1.5, 3.0, -2.5, 0.5, 2.0, -1.0, 0.0,
    ];
    let input: Vec<Frame> = jitter
        .iter()
        .enumerate()
        .map(|(i, &j)| textured(192, 144, j, -j * 0.5, 0.0).numbered(i as u64))
        .collect();
    for border in [
        BorderType::Black,
        BorderType::Reflect,
        BorderType::Replicate,
    ] {
        let config = StabilizerConfig::new()
            .smoothing_radius(6)
            .border_size(8)
            .crop_zoom(true)
            .border_type(border);
        let clip = Clip(input.clone().into_iter());
        let stabilized: Vec<Frame> = Stabilized::new(clip, config)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stabilized.len(), input.len());
        assert!(stabilized
            .iter()
            .all(|f| (f.width(), f.height()) == (192, 144)));
        let (before, after) = (residual(&input), residual(&stabilized));
        assert!(after < 0.25 * before, "{border}: {before} -> {after}");
    }
}

#[test]
fn the_causal_filter_removes_jitter_without_delay() {
    let input: Vec<Frame> = (0..30)
        .map(|i| {
            // A steady pan of one pixel a frame plus alternating jitter.
            let jitter = if i % 2 == 0 { 2.0 } else { -2.0 };
            textured(192, 144, i as f32 + jitter, 0.5 * jitter, 0.0).numbered(i as u64)
        })
        .collect();
    let config = StabilizerConfig::new()
        .smoothing(Smoothing::Causal)
        .smoothing_radius(10);
    let mut stabilizer = Stabilizer::new(config).unwrap();
    let mut output = Vec::new();
    for frame in input.clone() {
        stabilizer.send_frame(frame).unwrap();
        output.push(stabilizer.receive_frame().expect("no delay"));
    }
    // Past the filter's warm-up, the frame-to-frame motion is close to the pan alone.
    let pan = 1.0f64;
    let jitter = |frames: &[Frame]| {
        let mut meter = Stabilizer::new(StabilizerConfig::new()).unwrap();
        let mut sum = 0.0;
        for frame in frames {
            meter.send_frame(frame.clone()).unwrap();
            if let Some(m) = meter.last_motion() {
                sum += (m.dx - pan).powi(2) + (m.dy).powi(2);
            }
        }
        (sum / frames.len() as f64).sqrt()
    };
    let (before, after) = (jitter(&input[15..]), jitter(&output[15..]));
    assert!(after < 0.3 * before, "{before} -> {after}");
}
