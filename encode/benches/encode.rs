//! Encoding speed of rtcgear-encode: H.264 against FFmpeg's own libx264 at the same settings on
//! the same clip, then VP8 beside H.264 (with the `vp8` feature). Run with
//! `cargo bench -p rtcgear-encode`; it prints markdown tables. `-- x264` or `-- vp8` after it
//! runs only that table.
//!
//! The frames are made before the clock starts, so only encoding is timed: from the first
//! `send_frame` to the end of `flush`. FFmpeg's figure is its `-benchmark` real time, which also
//! covers opening the encoder and reading the raw clip (from the page cache). The CPU figures
//! are the process's CPU time over the same span (every thread of the encoder's), per frame and
//! as a share of one core.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use rtcgear_capture::{Frame, FrameRate};
use rtcgear_encode::{Encoder, EncoderConfig, RateControl};
use rtcgear_test_support::tempdir::TempDir;

use common::pattern;

/// Frames in the clip: ten seconds at 30 fps.
const FRAMES: u64 = 300;
/// Runs of each measurement; the table shows the fastest, the one least disturbed by anything
/// else running on the machine.
const RUNS: usize = 5;
const FPS: FrameRate = FrameRate { num: 30, den: 1 };

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only = |name: &str| args.iter().any(|a| a == name);
    let (x264, vp8) = (only("x264"), only("vp8"));
    if x264 || !vp8 {
        against_ffmpeg();
    }
    if vp8 || !x264 {
        #[cfg(feature = "vp8")]
        vp8_beside_h264();
        #[cfg(not(feature = "vp8"))]
        println!("(VP8 left out: the bench was built without the `vp8` feature)");
    }
}

/// rtcgear-encode's H.264 against `ffmpeg -c:v libx264` at the same settings.
fn against_ffmpeg() {
    println!("| size | threads | rtcgear-encode (fps) | ffmpeg -c:v libx264 (fps) | ratio | bitrate (kbit/s) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (width, height) in [(640, 480), (1280, 720)] {
        let frames = pattern(width, height, FRAMES);
        let dir = TempDir::new("encode-bench");
        let clip = dir.path().join("clip.yuv");
        let raw: Vec<u8> = frames.iter().flat_map(Frame::to_packed).collect();
        std::fs::write(&clip, raw).expect("the temp folder is writable");

        for threads in [1, 0] {
            let mut config = EncoderConfig::new(width, height, FPS);
            config.threads = threads;
            // Alternate the two, so that both see the same load from anything else on the machine.
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                ours.push(encode(&config, &frames));
                theirs.push(ffmpeg(&config, &clip));
            }
            ours.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ours_fps, bytes) = ours[RUNS - 1];
            theirs.sort_by(f64::total_cmp);
            let theirs_fps = theirs[RUNS - 1];
            let kbps = bytes as f64 * 8.0 / (FRAMES as f64 / FPS.as_f64()) / 1000.0;
            let threads = if threads == 0 {
                "0 (auto)".to_owned()
            } else {
                threads.to_string()
            };
            println!(
                "| {width}x{height} | {threads} | {ours_fps:.0} | {theirs_fps:.0} | {:.2} | {kbps:.0} |",
                ours_fps / theirs_fps
            );
        }
    }
}

/// Encodes every frame and returns frames a second and the bytes produced.
fn encode(config: &EncoderConfig, frames: &[Frame]) -> (f64, u64) {
    let run = encode_h264(config, frames);
    (run.fps, run.bytes)
}

/// One timed encode of a clip.
#[derive(Clone, Copy, Debug)]
// Only the VP8 table shows the CPU figures.
#[cfg_attr(not(feature = "vp8"), allow(dead_code))]
struct Run {
    /// Frames a second, wall clock.
    fps: f64,
    /// Milliseconds of CPU time a frame, every thread of the process.
    cpu_ms: f64,
    /// CPU time over wall time: 1.0 is one core busy.
    cores: f64,
    /// The encoded bytes.
    bytes: u64,
}

/// Encodes every frame with rtcgear-encode's H.264 encoder.
fn encode_h264(config: &EncoderConfig, frames: &[Frame]) -> Run {
    // The bench's configs are EncoderConfig::new's defaults at valid sizes.
    let mut encoder = Encoder::new(config.clone()).expect("a valid config");
    timed(frames, |frame| {
        let mut bytes = 0;
        match frame {
            Some(frame) => encoder
                .send_frame(frame)
                .expect("the frame matches the config"),
            None => encoder.flush().expect("flushing works"),
        }
        while let Some(packet) = encoder.receive_packet() {
            bytes += packet.data.len() as u64;
        }
        bytes
    })
}

/// Times `step` over every frame and then once with `None` (the flush); `step` returns the bytes
/// it received.
fn timed(frames: &[Frame], mut step: impl FnMut(Option<&Frame>) -> u64) -> Run {
    let mut bytes = 0;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for frame in frames {
        bytes += step(Some(frame));
    }
    bytes += step(None);
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    let count = frames.len() as f64;
    Run {
        fps: count / seconds,
        cpu_ms: cpu * 1000.0 / count,
        cores: cpu / seconds,
        bytes,
    }
}

/// The CPU time of the whole process (all threads) in seconds.
fn cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to fill; the clock id is a constant
    // Linux always has.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// VP8 (libvpx through FFmpeg) beside rtcgear-encode's H.264 (libx264), each with its defaults
/// for live streaming and the same bitrate target, on the same clip.
#[cfg(feature = "vp8")]
fn vp8_beside_h264() {
    use rtcgear_encode::{Vp8Config, Vp8Encoder};

    println!();
    println!("| size | threads | codec | fps | CPU ms/frame | CPU (cores) | bitrate (kbit/s) |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: |");
    for (width, height) in [(640, 480), (1280, 720)] {
        let frames = pattern(width, height, FRAMES);
        // 0 is each encoder's default: x264 picks from the cores (2 slice threads here), VP8 as
        // libwebrtc would (1 on 2 cores); 2 shows libvpx's own threading.
        for threads in [1, 0, 2] {
            let mut h264 = EncoderConfig::new(width, height, FPS);
            h264.threads = threads;
            let mut vp8 = Vp8Config::new(width, height, FPS);
            vp8.threads = threads;
            let encode_vp8 = |frames: &[Frame]| {
                let mut encoder = Vp8Encoder::new(vp8.clone()).expect("a valid config");
                timed(frames, |frame| {
                    let mut bytes = 0;
                    match frame {
                        Some(frame) => encoder
                            .send_frame(frame)
                            .expect("the frame matches the config"),
                        None => encoder.flush().expect("flushing works"),
                    }
                    while let Some(packet) = encoder.receive_packet() {
                        bytes += packet.data.len() as u64;
                    }
                    bytes
                })
            };
            // Alternate the two, so that both see the same load from anything else running.
            let (mut x264_runs, mut vp8_runs) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                x264_runs.push(encode_h264(&h264, &frames));
                vp8_runs.push(encode_vp8(&frames));
            }
            let threads = if threads == 0 {
                format!("0 (default: x264 auto, VP8 {})", vp8.effective_threads())
            } else {
                threads.to_string()
            };
            for (codec, mut runs) in [("H.264 (x264)", x264_runs), ("VP8 (libvpx)", vp8_runs)] {
                // The fastest run, the one least disturbed by anything else on the machine.
                runs.sort_by(|a, b| a.fps.total_cmp(&b.fps));
                let best = runs[RUNS - 1];
                let kbps = best.bytes as f64 * 8.0 / (FRAMES as f64 / FPS.as_f64()) / 1000.0;
                println!(
                    "| {width}x{height} | {threads} | {codec} | {:.0} | {:.2} | {:.2} | {kbps:.0} |",
                    best.fps, best.cpu_ms, best.cores
                );
            }
        }
    }
}

/// Encodes the raw clip with FFmpeg's libx264 at the same settings and returns frames a second
/// from FFmpeg's `-benchmark` real time.
fn ffmpeg(config: &EncoderConfig, clip: &Path) -> f64 {
    let RateControl::Bitrate { kbps } = config.rate else {
        unreachable!("EncoderConfig::new sets a bitrate");
    };
    let size = format!("{}x{}", config.width, config.height);
    let rate = format!("{}", config.fps);
    let bitrate = format!("{kbps}k");
    let bufsize = format!("{}k", kbps * rtcgear_encode::VBV_FRAMES * FPS.den / FPS.num);
    let keyint = config.keyframe_interval.to_string();
    let threads = config.threads.to_string();
    let clip = clip.to_str().expect("temp paths are UTF-8");
    let output = common::run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostats",
            "-benchmark",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &size,
            "-r",
            &rate,
            "-i",
            clip,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-profile:v",
            "baseline",
            "-b:v",
            &bitrate,
            "-maxrate",
            &bitrate,
            "-bufsize",
            &bufsize,
            "-g",
            &keyint,
            "-threads",
            &threads,
            "-f",
            "null",
            "-",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let seconds: f64 = stderr
        .split_whitespace()
        .find_map(|word| word.strip_prefix("rtime="))
        .and_then(|s| s.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("no rtime in FFmpeg's -benchmark output:\n{stderr}"));
    FRAMES as f64 / seconds
}
