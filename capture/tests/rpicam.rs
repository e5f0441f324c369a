//! The `rpicam-vid` sources against a stand-in that writes what `rpicam-vid` writes
//! (`rtcgear_test_support::rpicam`, which makes its video with the FFmpeg CLI): the process
//! handling, the parsing of raw frames and of the H.264 stream, restarts and clean-up.
//! On a Pi, `cargo test -p rtcgear-capture --features rpicam -- --ignored` runs the same
//! checks against the real camera.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtcgear_capture::rpicam::{RpicamH264Source, RpicamOptions, RpicamSource};
use rtcgear_capture::{h264, CaptureError, EncodedSource, PixelFormat, Source};
use rtcgear_test_support::rpicam;
use rtcgear_test_support::tempdir::TempDir;

/// A folder of this test's own, removed at the end.
struct Scratch(TempDir);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(TempDir::new(&format!("rpicam-{name}")))
    }

    /// A program that runs the stand-in with `env` set, logging its starts to `log`.
    fn standin(&self, env: &str) -> PathBuf {
        let standin = rpicam::standin();
        let path = self.0.path().join("rpicam-vid");
        let script = format!(
            "#!/bin/sh\nSTANDIN_LOG='{}' {env} exec '{}' \"$@\"\n",
            self.log().display(),
            standin.display()
        );
        std::fs::write(&path, script).expect("write the wrapper");
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod");
        assert!(status.success());
        path
    }

    fn log(&self) -> PathBuf {
        self.0.path().join("starts.log")
    }

    /// The stand-in's starts: its pid and arguments.
    fn starts(&self) -> Vec<(u32, String)> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (pid, args) = line.split_once(' ')?;
                Some((pid.parse().ok()?, args.to_string()))
            })
            .collect()
    }
}

fn require_ffmpeg() {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the rpicam-vid stand-in makes its video with the ffmpeg CLI; install ffmpeg"
    );
}

fn options(program: PathBuf) -> RpicamOptions {
    let mut options = RpicamOptions::camera(0);
    options.size = (320, 240);
    options.fps = 15;
    options.intra_period = Some(10);
    options.program = Some(program);
    options
}

fn alive(pid: u32) -> bool {
    // A zombie is gone too: it has exited and only waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

#[test]
fn raw_frames_are_i420_pictures_with_the_options_passed_on() {
    require_ffmpeg();
    let scratch = Scratch::new("raw");
    let mut options = options(scratch.standin(""));
    options.size = (330, 240); // rounded down to a multiple of 64: no row padding
    let mut camera = RpicamSource::open(options).expect("the stand-in starts");
    let info = camera.info();
    assert_eq!(
        (info.width, info.height, info.format),
        (320, 240, PixelFormat::I420)
    );
    let started = Instant::now();
    let frames: Vec<_> = camera
        .by_ref()
        .take(15)
        .collect::<Result<_, _>>()
        .expect("frames");
    let took = started.elapsed();
    for (n, frame) in frames.iter().enumerate() {
        assert_eq!(frame.counter(), n as u64);
        assert_eq!((frame.width(), frame.height()), (320, 240));
        let luma = frame.plane(0).row(120);
        assert!(
            luma.iter().any(|&y| y != luma[0]),
            "a picture, not a flat plane"
        );
    }
    assert!(
        took > Duration::from_millis(500),
        "15 frames at 15 fps come in real time, not in {took:?}"
    );
    let starts = scratch.starts();
    assert_eq!(starts.len(), 1);
    let args = &starts[0].1;
    for expected in [
        "--camera 0",
        "--width 320",
        "--height 240",
        "--framerate 15",
        "--codec yuv420",
        "--output -",
    ] {
        assert!(args.contains(expected), "{expected:?} in {args:?}");
    }
    let pid = starts[0].0;
    drop(camera);
    assert!(!alive(pid), "dropping the source kills rpicam-vid");
}

#[test]
fn hardware_h264_comes_as_access_units_that_decode() {
    require_ffmpeg();
    let scratch = Scratch::new("h264");
    let camera = RpicamH264Source::open(options(scratch.standin(""))).expect("the stand-in starts");
    let profile = camera
        .info()
        .profile
        .expect("the profile, read from the first SPS");
    assert!(profile.is_constrained_baseline(), "{profile}");
    let units: Vec<_> = camera
        .take(25)
        .collect::<Result<_, _>>()
        .expect("access units");
    assert!(units[0].keyframe && h264::has_sps(&units[0].data));
    let keyframes: Vec<u64> = units
        .iter()
        .filter(|u| u.keyframe)
        .map(|u| u.counter)
        .collect();
    assert_eq!(keyframes, vec![0, 10, 20], "--intra 10");
    for unit in &units {
        assert_eq!(unit.keyframe, h264::is_keyframe(&unit.data));
        // x264's sliced threads may cut a picture into slices; one of them starts it
        // (first_mb_in_slice 0, a leading 1 bit).
        let pictures = h264::nal_units(&unit.data)
            .filter(|nal| matches!(h264::nal_type(nal), 1 | 5) && nal[1] & 0x80 != 0)
            .count();
        assert_eq!(pictures, 1, "one picture per access unit");
    }
    let stream: Vec<u8> = units.iter().flat_map(|u| u.data.iter().copied()).collect();
    assert_eq!(
        decode(&stream),
        units.len(),
        "every access unit decodes to a picture"
    );
    let args = &scratch.starts()[0].1;
    for expected in [
        "--codec h264",
        "--inline",
        "--intra 10",
        "--profile baseline",
    ] {
        assert!(args.contains(expected), "{expected:?} in {args:?}");
    }
}

#[test]
fn a_camera_that_dies_is_restarted_and_says_why() {
    require_ffmpeg();
    let scratch = Scratch::new("restart");
    let mut camera =
        RpicamSource::open(options(scratch.standin("STANDIN_FRAMES=5"))).expect("starts");
    let mut frames = 0;
    let mut errors = Vec::new();
    // Bounded: 12 frames with two restarts in between take about 2 s.
    for item in camera.by_ref().take(14) {
        match item {
            Ok(_) => frames += 1,
            Err(err) => errors.push(err),
        }
        if frames == 12 {
            break;
        }
    }
    assert_eq!(
        frames, 12,
        "frames keep coming after restarts; errors: {errors:?}"
    );
    assert!(!errors.is_empty());
    for err in &errors {
        let text = err.to_string();
        assert!(matches!(err, CaptureError::Device { .. }), "{err:?}");
        assert!(text.starts_with("pi:0: "), "{text}");
        assert!(text.contains("exited with status 1"), "{text}");
        assert!(
            text.contains("stopped after 5 frames"),
            "the child's last words: {text}"
        );
        assert!(text.contains("restarting"), "{text}");
    }
    let starts = scratch.starts();
    assert!(starts.len() >= 3, "{starts:?}");
    let last = starts.last().expect("a start").0;
    drop(camera);
    assert!(!alive(last));
}

#[test]
fn a_missing_program_or_camera_is_a_clear_error() {
    let err =
        RpicamSource::open(options("/nonexistent/rpicam-vid".into())).expect_err("no such program");
    assert!(err.to_string().contains("/nonexistent/rpicam-vid"), "{err}");

    require_ffmpeg();
    let scratch = Scratch::new("missing");
    let mut options = options(scratch.standin(""));
    options.camera = 3;
    let err = RpicamH264Source::open(options).expect_err("no camera 3");
    let text = err.to_string();
    assert!(text.starts_with("pi:3: "), "{text}");
    assert!(text.contains("no cameras available"), "{text}");
}

/// The real camera, on a Pi: `cargo test -p rtcgear-capture --features rpicam -- --ignored`.
#[test]
#[ignore = "needs a Raspberry Pi with a camera and rpicam-vid"]
fn real_camera_on_a_pi() {
    let mut options = RpicamOptions::camera(0);
    options.size = (640, 480);
    let raw = RpicamSource::open(options.clone()).expect("rpicam-vid runs");
    assert_eq!(raw.take(30).filter(Result::is_ok).count(), 30);
    if rtcgear_capture::rpicam::has_hardware_h264() {
        let encoded = RpicamH264Source::open(options).expect("rpicam-vid runs");
        let units: Vec<_> = encoded.take(60).collect::<Result<_, _>>().expect("H.264");
        let stream: Vec<u8> = units.iter().flat_map(|u| u.data.iter().copied()).collect();
        assert_eq!(decode(&stream), 60);
    }
}

/// Decodes an Annex B stream with the FFmpeg CLI, failing on any error; the picture count.
fn decode(stream: &[u8]) -> usize {
    let mut child = Command::new("ffmpeg")
        .args([
            "-v", "error", "-f", "h264", "-i", "-", "-f", "framemd5", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ffmpeg");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream)
        .expect("feed ffmpeg");
    let output = child.wait_with_output().expect("ffmpeg ends");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && errors.trim().is_empty(),
        "ffmpeg: {errors}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .count()
}
