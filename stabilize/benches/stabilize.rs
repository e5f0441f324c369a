//! Stabilization benchmark: seeded synthetic shaky clips with a known camera path.
//!
//! For each clip (a textured and a low-texture scene, 1280x720 and 640x480, jitter of 2 px /
//! 0.2 deg and 8 px / 1 deg on a smooth pan) it reports:
//!
//! - the error of rtcgear-stabilize's inter-frame motion estimate against the known motion;
//! - residual jitter: the RMS of the high-frequency part of the inter-frame motion, measured by a
//!   dense Gauss-Newton alignment of consecutive frames (an ECC-style direct method written here,
//!   independent of both stabilizers' feature tracking), for the input and for each output;
//! - frames per second on one core.
//!
//! With `.tools/stab-venv` present (see `vidgear_stabilizer.py`), vidgear's Stabilizer runs on
//! the same clips (written as raw I420 under `target/stabilize-bench/`) and is measured the same
//! way. `STAB_FRAMES` sets the clip length (default 150); `STAB_ONLY` a substring of the clip
//! names to run.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rtcgear_capture::{Frame, PixelFormat};
use rtcgear_stabilize::{Smoothing, Stabilizer, StabilizerConfig};

fn main() {
    let frames: usize = std::env::var("STAB_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let only = std::env::var("STAB_ONLY").unwrap_or_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf();
    let python = root.join(".tools/stab-venv/bin/python");
    let script = root.join("stabilize/benches/vidgear_stabilizer.py");
    let scratch = root.join("target/stabilize-bench");
    let vidgear = python.exists() && std::env::var("STAB_VIDGEAR").as_deref() != Ok("0");
    if vidgear {
        fs::create_dir_all(&scratch).expect("target/ is writable");
    } else {
        eprintln!("no {}: skipping vidgear", python.display());
    }

    let mut rows = Vec::new();
    for (width, height) in [(1280u32, 720u32), (640, 480)] {
        for scene in [Scene::Textured, Scene::LowTexture] {
            for jitter in [Jitter::SMALL, Jitter::LARGE] {
                let name = format!(
                    "{}-{width}x{height}-{}px",
                    scene.name(),
                    jitter.pixels as u32
                );
                if !name.contains(&only) {
                    continue;
                }
                let clip = Clip::render(width, height, scene, jitter, frames, seed_of(&name));
                let input = measure(&clip.frames);
                let mut row = Row {
                    name,
                    input,
                    results: Vec::new(),
                };
                for (label, smoothing) in [
                    ("rtcgear moving average", Smoothing::MovingAverage),
                    ("rtcgear causal", Smoothing::Causal),
                ] {
                    row.results.push(run_ours(&clip, label, smoothing));
                }
                if vidgear {
                    for mode in ["asw", "kalman"] {
                        match run_vidgear(&python, &script, &scratch, &clip, mode) {
                            Ok(result) => row.results.push(result),
                            Err(err) => eprintln!("vidgear {mode} on {}: {err}", row.name),
                        }
                    }
                    let _ = fs::remove_file(scratch.join(format!("{}.yuv", clip.name)));
                }
                print_row(&row);
                rows.push(row);
            }
        }
    }
    println!();
    println!("| clip | stabilizer | jitter in (px) | jitter out (px) | removed | fps (CPU) | fps (wall) | motion error (px / deg) | reliable |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        for r in &row.results {
            let error = r
                .error
                .map(|(px, deg, reliable)| {
                    (
                        format!("{px:.3} / {deg:.4}"),
                        format!("{:.0}%", reliable * 100.0),
                    )
                })
                .unwrap_or(("-".into(), "-".into()));
            println!(
                "| {} | {} | {:.3} | {:.3} | {:.1}% | {} | {:.0} | {} | {} |",
                row.name,
                r.label,
                row.input,
                r.jitter,
                100.0 * (1.0 - r.jitter / row.input),
                r.cpu_fps.map(|f| format!("{f:.0}")).unwrap_or("-".into()),
                r.fps,
                error.0,
                error.1
            );
        }
    }
}

struct Row {
    name: String,
    input: f64,
    results: Vec<Outcome>,
}

struct Outcome {
    label: String,
    jitter: f64,
    /// Frames a second by the wall clock.
    fps: f64,
    /// Frames a second by the CPU time of the stabilizing thread: on a shared machine this is
    /// the steadier figure for "one core".
    cpu_fps: Option<f64>,
    /// RMS translation error (px), RMS angle error (deg), share of reliable estimates.
    error: Option<(f64, f64, f64)>,
}

fn print_row(row: &Row) {
    eprintln!("{}: input jitter {:.3} px", row.name, row.input);
    for r in &row.results {
        eprintln!(
            "  {:<26} jitter {:.3} px ({:+.1}% removed), {:.0} fps ({:.0} by CPU time){}",
            r.label,
            r.jitter,
            100.0 * (1.0 - r.jitter / row.input),
            r.fps,
            r.cpu_fps.unwrap_or(f64::NAN),
            r.error
                .map(|(px, deg, ok)| format!(
                    ", motion error {px:.3} px / {deg:.4} deg, {:.0}% reliable",
                    ok * 100.0
                ))
                .unwrap_or_default()
        );
    }
}

fn run_ours(clip: &Clip, label: &str, smoothing: Smoothing) -> Outcome {
    let config = StabilizerConfig::new().smoothing(smoothing);
    // The settings are the defaults, which are valid.
    let mut stabilizer = Stabilizer::new(config).expect("valid settings");
    let mut outputs = Vec::with_capacity(clip.frames.len());
    let mut estimates = Vec::with_capacity(clip.frames.len());
    // Frames are cloned before the clock starts, so the timing is the stabilizer's alone.
    let inputs: Vec<Frame> = clip.frames.clone();
    let start = Instant::now();
    let cpu_start = thread_cpu();
    for frame in inputs {
        // I420 frames of one size never fail.
        stabilizer.send_frame(frame).expect("I420 input");
        estimates.push(stabilizer.last_motion());
        while let Some(frame) = stabilizer.receive_frame() {
            outputs.push(frame);
        }
    }
    stabilizer.flush();
    while let Some(frame) = stabilizer.receive_frame() {
        outputs.push(frame);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = thread_cpu().map(|end| end - cpu_start.unwrap_or(end));
    let mut sum_px = 0.0;
    let mut sum_deg = 0.0;
    let mut reliable = 0usize;
    let mut count = 0usize;
    for (t, estimate) in estimates.iter().enumerate().skip(1) {
        let Some(m) = estimate else { continue };
        let truth = clip.motion(t);
        count += 1;
        if m.reliable {
            reliable += 1;
        }
        sum_px += (m.dx - truth[0]).powi(2) + (m.dy - truth[1]).powi(2);
        sum_deg += (m.angle - truth[2]).to_degrees().powi(2);
    }
    let n = count.max(1) as f64;
    Outcome {
        label: label.into(),
        jitter: measure(&outputs),
        fps: clip.frames.len() as f64 / seconds,
        cpu_fps: cpu_seconds.map(|s| clip.frames.len() as f64 / s),
        error: Some((
            (sum_px / n).sqrt(),
            (sum_deg / n).sqrt(),
            reliable as f64 / n,
        )),
    }
}

fn run_vidgear(
    python: &Path,
    script: &Path,
    scratch: &Path,
    clip: &Clip,
    mode: &str,
) -> Result<Outcome, String> {
    let input = scratch.join(format!("{}.yuv", clip.name));
    let output = scratch.join(format!("{}.{mode}.yuv", clip.name));
    // Written once per clip, removed after the last mode.
    if !input.exists() {
        let file = fs::File::create(&input).map_err(|e| e.to_string())?;
        let mut writer = BufWriter::new(file);
        for frame in &clip.frames {
            writer
                .write_all(&frame.to_packed())
                .map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())?;
    }
    let result = Command::new(python)
        .arg(script)
        .args(["--input", &path_str(&input), "--output", &path_str(&output)])
        .args(["--size", &format!("{}x{}", clip.width, clip.height)])
        .args(["--mode", mode])
        .env("OMP_NUM_THREADS", "1")
        .env("OPENCV_FOR_THREADS_NUM", "1")
        .output()
        .map_err(|e| e.to_string())?;
    if !result.status.success() {
        return Err(String::from_utf8_lossy(&result.stderr).into_owned());
    }
    // The script prints "frames seconds cpu_seconds" for its stabilize() calls alone.
    let stdout = String::from_utf8_lossy(&result.stdout);
    let mut words = stdout.split_whitespace();
    let mut number = || -> Result<f64, String> {
        words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("cannot read the script's output {stdout:?}"))
    };
    let (_, seconds, cpu_seconds) = (number()?, number()?, number()?);
    // Frames that went in: vidgear's sliding window keeps its last frames.
    let frames = clip.frames.len() as f64;
    let outputs = read_clip(&output, clip.width, clip.height)?;
    let _ = fs::remove_file(&output);
    Ok(Outcome {
        label: format!("vidgear {mode}"),
        jitter: measure(&outputs),
        fps: frames / seconds,
        cpu_fps: Some(frames / cpu_seconds),
        error: None,
    })
}

/// The CPU time of this thread so far in seconds, from /proc (Linux).
fn thread_cpu() -> Option<f64> {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e9)
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn read_clip(path: &PathBuf, width: u32, height: u32) -> Result<Vec<Frame>, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(file);
    let len = rtcgear_capture::packed_len(width, height, PixelFormat::I420);
    let mut buf = vec![0u8; len];
    let mut frames = Vec::new();
    while reader.read_exact(&mut buf).is_ok() {
        frames.push(
            Frame::from_packed(width, height, PixelFormat::I420, &buf)
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(frames)
}

// ---------------------------------------------------------------------------------------------
// Synthetic clips.

#[derive(Clone, Copy)]
enum Scene {
    /// Value noise at three scales, random rectangles and fine grain: plenty of corners.
    Textured,
    /// A soft gradient with a few faint blobs: almost nothing to track.
    LowTexture,
}

impl Scene {
    fn name(self) -> &'static str {
        match self {
            Scene::Textured => "textured",
            Scene::LowTexture => "lowtexture",
        }
    }
}

#[derive(Clone, Copy)]
struct Jitter {
    /// Each frame's shift is uniform in +-pixels on both axes (scaled with the frame width from
    /// 1280), its rotation uniform in +-degrees.
    pixels: f64,
    degrees: f64,
}

impl Jitter {
    const SMALL: Jitter = Jitter {
        pixels: 2.0,
        degrees: 0.2,
    };
    const LARGE: Jitter = Jitter {
        pixels: 8.0,
        degrees: 1.0,
    };
}

struct Clip {
    name: String,
    width: u32,
    height: u32,
    frames: Vec<Frame>,
    /// The camera pose per frame: frame pixel p (relative to the centre) shows the world point
    /// rotate(-angle) p + (ox, oy).
    poses: Vec<[f64; 3]>,
}

impl Clip {
    fn render(
        width: u32,
        height: u32,
        scene: Scene,
        jitter: Jitter,
        count: usize,
        seed: u64,
    ) -> Clip {
        let mut rng = Rng(seed);
        let scale = f64::from(width) / 1280.0;
        let pan = 2.0 * scale;
        let margin = 40.0 + 16.0 * jitter.pixels + f64::from(width) * 0.02;
        let world_w = (f64::from(width) + pan * count as f64 + 2.0 * margin) as usize;
        let world_h = (f64::from(height) + 2.0 * margin + 24.0 * scale) as usize;
        let world = World::new(world_w, world_h, scene, &mut rng);
        let mut poses = Vec::with_capacity(count);
        for t in 0..count {
            let t_f = t as f64;
            let jx = rng.uniform(-1.0, 1.0) * jitter.pixels * scale;
            let jy = rng.uniform(-1.0, 1.0) * jitter.pixels * scale;
            let ja = rng.uniform(-1.0, 1.0) * jitter.degrees.to_radians();
            // The intended motion: a steady pan right with a slow vertical sway and roll.
            let ox = margin + f64::from(width) / 2.0 + pan * t_f + jx;
            let oy = world_h as f64 / 2.0 + 10.0 * scale * (t_f / 25.0).sin() + jy;
            let angle = 0.5f64.to_radians() * (t_f / 40.0).sin() + ja;
            poses.push([ox, oy, angle]);
        }
        let noise = match scene {
            Scene::Textured => 1.5,
            Scene::LowTexture => 2.5,
        };
        let frames = poses
            .iter()
            .enumerate()
            .map(|(t, pose)| world.view(width, height, *pose, noise, &mut rng, t as u64))
            .collect();
        Clip {
            name: format!(
                "{}-{width}x{height}-{}px",
                scene.name(),
                jitter.pixels as u32
            ),
            width,
            height,
            frames,
            poses,
        }
    }

    /// The true content motion from frame t-1 to frame t, as (dx, dy, angle) about the centre.
    fn motion(&self, t: usize) -> [f64; 3] {
        let [ox0, oy0, a0] = self.poses[t - 1];
        let [ox1, oy1, a1] = self.poses[t];
        // p1 = rotate(a1) (rotate(-a0) p0 + o0 - o1).
        let (dx, dy) = (ox0 - ox1, oy0 - oy1);
        let (c, s) = (a1.cos(), a1.sin());
        [c * dx - s * dy, s * dx + c * dy, a1 - a0]
    }
}

/// The scene, drawn once in luma and chroma at one pixel per world unit.
struct World {
    width: usize,
    height: usize,
    luma: Vec<f32>,
    u: Vec<f32>,
    v: Vec<f32>,
}

impl World {
    fn new(width: usize, height: usize, scene: Scene, rng: &mut Rng) -> World {
        let seed = rng.next();
        let mut luma = vec![0f32; width * height];
        let mut u = vec![0f32; width * height];
        let mut v = vec![0f32; width * height];
        for y in 0..height {
            for x in 0..width {
                let (xf, yf) = (x as f64, y as f64);
                let i = y * width + x;
                match scene {
                    Scene::Textured => {
                        let t = 0.5 * value_noise(seed, xf / 40.0, yf / 40.0)
                            + 0.3 * value_noise(seed + 1, xf / 11.0, yf / 11.0)
                            + 0.2 * value_noise(seed + 2, xf / 3.5, yf / 3.5);
                        luma[i] = (30.0 + 190.0 * t) as f32;
                    }
                    Scene::LowTexture => {
                        let t = 0.6 * (yf / height as f64)
                            + 0.15 * value_noise(seed, xf / 300.0, yf / 300.0);
                        luma[i] = (70.0 + 90.0 * t) as f32;
                    }
                }
                u[i] =
                    (128.0 + 30.0 * (value_noise(seed + 5, xf / 200.0, yf / 200.0) - 0.5)) as f32;
                v[i] =
                    (128.0 + 30.0 * (value_noise(seed + 6, xf / 200.0, yf / 200.0) - 0.5)) as f32;
            }
        }
        match scene {
            Scene::Textured => {
                // Random rectangles: sharp corners like windows, signs and furniture.
                for _ in 0..(width * height / 2500) {
                    let (rw, rh) = (rng.uniform(6.0, 60.0), rng.uniform(6.0, 60.0));
                    let (x0, y0) = (
                        rng.uniform(0.0, width as f64 - rw),
                        rng.uniform(0.0, height as f64 - rh),
                    );
                    let value = rng.uniform(20.0, 235.0) as f32;
                    for y in y0 as usize..(y0 + rh) as usize {
                        for x in x0 as usize..(x0 + rw) as usize {
                            luma[y * width + x] = value;
                        }
                    }
                }
                // Fine grain that moves with the scene.
                for value in &mut luma {
                    *value = (*value + rng.uniform(-6.0, 6.0) as f32).clamp(0.0, 255.0);
                }
            }
            Scene::LowTexture => {
                // A few faint, soft blobs.
                for _ in 0..4 {
                    let (cx, cy) = (
                        rng.uniform(0.0, width as f64),
                        rng.uniform(0.0, height as f64),
                    );
                    let r = rng.uniform(60.0, 160.0);
                    let amp = rng.uniform(-12.0, 12.0);
                    for y in 0..height {
                        for x in 0..width {
                            let d2 = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)) / (r * r);
                            if d2 < 9.0 {
                                luma[y * width + x] += (amp * (-d2).exp()) as f32;
                            }
                        }
                    }
                }
            }
        }
        World {
            width,
            height,
            luma,
            u,
            v,
        }
    }

    /// The frame a camera at `pose` sees, with fresh sensor noise of `noise` levels RMS.
    fn view(
        &self,
        width: u32,
        height: u32,
        [ox, oy, angle]: [f64; 3],
        noise: f64,
        rng: &mut Rng,
        counter: u64,
    ) -> Frame {
        // A valid I420 size: both sides are even.
        let mut frame = Frame::new(width, height, PixelFormat::I420).expect("even size");
        let (c, s) = (angle.cos(), angle.sin());
        let (cx, cy) = (
            (f64::from(width) - 1.0) / 2.0,
            (f64::from(height) - 1.0) / 2.0,
        );
        // World position of frame pixel (x, y): rotate(-angle) (p - centre) + o.
        let world = |x: f64, y: f64| {
            let (px, py) = (x - cx, y - cy);
            (c * px + s * py + ox, -s * px + c * py + oy)
        };
        let plane = frame.plane_mut(0);
        for y in 0..height as usize {
            let row = plane.row_mut(y);
            for (x, out) in row.iter_mut().enumerate() {
                let (wx, wy) = world(x as f64, y as f64);
                let value =
                    sample(&self.luma, self.width, self.height, wx, wy) + rng.gaussian() * noise;
                *out = (value + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
        for (index, data) in [(1, &self.u), (2, &self.v)] {
            let plane = frame.plane_mut(index);
            for y in 0..(height / 2) as usize {
                let row = plane.row_mut(y);
                for (x, out) in row.iter_mut().enumerate() {
                    let (wx, wy) = world(2.0 * x as f64 + 0.5, 2.0 * y as f64 + 0.5);
                    let value = sample(data, self.width, self.height, wx, wy);
                    *out = (value + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
        }
        frame.set_counter(counter);
        frame
    }
}

fn sample(data: &[f32], width: usize, height: usize, x: f64, y: f64) -> f64 {
    let x = x.clamp(0.0, (width - 2) as f64);
    let y = y.clamp(0.0, (height - 2) as f64);
    // Both are clamped to be positive, so truncation is the floor (and much faster).
    let (ix, iy) = (x as usize, y as usize);
    let (tx, ty) = (x - ix as f64, y - iy as f64);
    let i = iy * width + ix;
    let top = f64::from(data[i]) * (1.0 - tx) + f64::from(data[i + 1]) * tx;
    let bottom = f64::from(data[i + width]) * (1.0 - tx) + f64::from(data[i + width + 1]) * tx;
    top * (1.0 - ty) + bottom * ty
}

fn value_noise(seed: u64, x: f64, y: f64) -> f64 {
    let (fx, fy) = (x.floor(), y.floor());
    let (tx, ty) = (x - fx, y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (fx as i64, fy as i64);
    let h = |x: i64, y: i64| {
        let mut r = Rng(seed
            ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        r.next();
        r.unit()
    };
    let top = h(ix, iy) * (1.0 - sx) + h(ix + 1, iy) * sx;
    let bottom = h(ix, iy + 1) * (1.0 - sx) + h(ix + 1, iy + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Approximately normal with unit variance (the sum of four uniforms).
    fn gaussian(&mut self) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum();
        (sum - 2.0) * 3f64.sqrt()
    }
}

// ---------------------------------------------------------------------------------------------
// The independent jitter meter.

/// Residual jitter of a sequence of frames: the inter-frame motion by dense alignment, minus its
/// moving average over 15 frames (the intended motion), as the RMS displacement over the picture
/// (rotation counted at the RMS distance of a pixel from the centre).
fn measure(frames: &[Frame]) -> f64 {
    if frames.len() < 3 {
        return 0.0;
    }
    let (width, height) = (frames[0].width() as usize, frames[0].height() as usize);
    let factor = if width > 800 { 2 } else { 1 };
    let mut motions = Vec::with_capacity(frames.len());
    let mut previous = Levels::new(&frames[0], factor);
    for frame in &frames[1..] {
        let next = Levels::new(frame, factor);
        motions.push(align(&previous, &next, factor as f64));
        previous = next;
    }
    let radius = 7usize;
    let rho = (((width * width + height * height) as f64) / 12.0).sqrt();
    let mut sum = 0.0;
    for t in 0..motions.len() {
        let lo = t.saturating_sub(radius);
        let hi = (t + radius).min(motions.len() - 1);
        let mut mean = [0.0; 3];
        for m in &motions[lo..=hi] {
            for k in 0..3 {
                mean[k] += m[k];
            }
        }
        let n = (hi - lo + 1) as f64;
        let d: Vec<f64> = (0..3).map(|k| motions[t][k] - mean[k] / n).collect();
        sum += d[0] * d[0] + d[1] * d[1] + (d[2] * rho).powi(2);
    }
    (sum / motions.len() as f64).sqrt()
}

struct Gray {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

struct Levels(Vec<Gray>);

impl Levels {
    fn new(frame: &Frame, factor: usize) -> Levels {
        let plane = frame.plane(0);
        let (w, h) = (
            frame.width() as usize / factor,
            frame.height() as usize / factor,
        );
        let mut data = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0u32;
                for sy in 0..factor {
                    for sx in 0..factor {
                        sum += u32::from(plane.row(y * factor + sy)[x * factor + sx]);
                    }
                }
                data[y * w + x] = sum as f32 / (factor * factor) as f32;
            }
        }
        let mut levels = vec![Gray {
            width: w,
            height: h,
            data,
        }];
        while levels.len() < 4 {
            let last = &levels[levels.len() - 1];
            let (w, h) = (last.width / 2, last.height / 2);
            let mut data = vec![0f32; w * h];
            for y in 0..h {
                for x in 0..w {
                    let at =
                        |dx: usize, dy: usize| last.data[(2 * y + dy) * last.width + 2 * x + dx];
                    data[y * w + x] = 0.25 * (at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1));
                }
            }
            levels.push(Gray {
                width: w,
                height: h,
                data,
            });
        }
        Levels(levels)
    }
}

/// The motion (dx, dy in full-size pixels, angle) that carries `a`'s content onto `b`'s,
/// minimising the squared difference over the central 70% of the picture by Gauss-Newton,
/// coarse to fine.
fn align(a: &Levels, b: &Levels, factor: f64) -> [f64; 3] {
    let mut q = [0.0f64; 3];
    for level in (0..a.0.len()).rev() {
        if level + 1 < a.0.len() {
            q[0] *= 2.0;
            q[1] *= 2.0;
        }
        let (ga, gb) = (&a.0[level], &b.0[level]);
        let (w, h) = (ga.width, ga.height);
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let (x0, x1) = ((w as f64 * 0.15) as usize, (w as f64 * 0.85) as usize);
        let (y0, y1) = ((h as f64 * 0.15) as usize, (h as f64 * 0.85) as usize);
        // Jacobian rows and the Gauss-Newton matrix from a's gradients.
        let mut points = Vec::with_capacity((x1 - x0) * (y1 - y0));
        let mut hm = [[0.0f64; 3]; 3];
        for y in y0.max(1)..y1.min(h - 1) {
            for x in x0.max(1)..x1.min(w - 1) {
                let i = y * w + x;
                let gx = 0.5 * f64::from(ga.data[i + 1] - ga.data[i - 1]);
                let gy = 0.5 * f64::from(ga.data[i + w] - ga.data[i - w]);
                let (px, py) = (x as f64 - cx, y as f64 - cy);
                let j = [gx, gy, -gx * py + gy * px];
                for r in 0..3 {
                    for c in 0..3 {
                        hm[r][c] += j[r] * j[c];
                    }
                }
                points.push((px, py, f64::from(ga.data[i]), j));
            }
        }
        for _ in 0..30 {
            let (c, s) = (q[2].cos(), q[2].sin());
            let mut g = [0.0f64; 3];
            for &(px, py, value, j) in &points {
                let bx = c * px - s * py + q[0] + cx;
                let by = s * px + c * py + q[1] + cy;
                if bx < 0.0 || by < 0.0 || bx >= (w - 1) as f64 || by >= (h - 1) as f64 {
                    continue;
                }
                let e = sample(&gb.data, w, h, bx, by) - value;
                for k in 0..3 {
                    g[k] += j[k] * e;
                }
            }
            let Some(step) = solve3(hm, g) else { break };
            for k in 0..3 {
                q[k] -= step[k];
            }
            if step[0].abs() + step[1].abs() + step[2].abs() * w as f64 <= 1e-4 {
                break;
            }
        }
    }
    [q[0] * factor, q[1] * factor, q[2]]
}

fn solve3(m: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(m);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut x = [0.0; 3];
    for (k, out) in x.iter_mut().enumerate() {
        let mut mk = m;
        for r in 0..3 {
            mk[r][k] = b[r];
        }
        *out = det(mk) / d;
    }
    Some(x)
}
