//! Encoding speed of rtcgear-encode, against FFmpeg's own libx264 at the same settings on the same
//! clip. Run with `cargo bench -p rtcgear-encode`; it prints a markdown table.
//!
//! The frames are made before the clock starts, so only encoding is timed: from the first
//! `send_frame` to the end of `flush`. FFmpeg's figure is its `-benchmark` real time, which also
//! covers opening the encoder and reading the raw clip (from the page cache).

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
    // The bench's configs are EncoderConfig::new's defaults at valid sizes.
    let mut encoder = Encoder::new(config.clone()).expect("a valid config");
    let mut bytes = 0;
    let start = Instant::now();
    for frame in frames {
        encoder
            .send_frame(frame)
            .expect("the frame matches the config");
        while let Some(packet) = encoder.receive_packet() {
            bytes += packet.data.len() as u64;
        }
    }
    encoder.flush().expect("flushing works");
    while let Some(packet) = encoder.receive_packet() {
        bytes += packet.data.len() as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    (frames.len() as f64 / seconds, bytes)
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
