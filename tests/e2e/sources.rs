//! Files and network streams, played in Chromium through the server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtcgear_capture::{FfmpegOptions, FfmpegSource};
use rtcgear_server::StreamConfig;
use rtcgear_tests::{free_port, Browser, TempDir, TestServer};

use crate::heavy;

const PLAYING: &str = "return !!window.rtcgear && window.rtcgear.state === 'connected' \
    && window.rtcgear.stats.framesDecoded > 15 && document.getElementById('video').videoWidth > 0";

/// A 3-second 640x360 H.264 clip of FFmpeg's `testsrc2`.
fn make_clip(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
        ])
        .args([
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg is installed (the README's test command installs it)");
    assert!(status.success());
    path
}

#[test]
fn a_looping_file_plays_in_the_browser() {
    let _turn = heavy();
    let dir = TempDir::new("file-source");
    let clip = make_clip(&dir);
    let mut options = FfmpegOptions::default();
    options.looping = true;
    let source =
        FfmpegSource::open(clip.to_str().expect("UTF-8"), options).expect("the clip opens");
    let server = TestServer::start_streams(vec![StreamConfig::new("", source)]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    browser.wait_for("the file to play", Duration::from_secs(20), PLAYING);
    let size = browser.video_size();
    assert_eq!(size, serde_json::json!([640, 360]));
    // Past the end of the 3-second clip, it still plays: it loops.
    std::thread::sleep(Duration::from_secs(4));
    let before = browser.frames_decoded();
    std::thread::sleep(Duration::from_secs(1));
    let after = browser.frames_decoded();
    assert!(after > before + 10, "{before} -> {after}");
}

/// FFmpeg serving a clip as a live HTTP MPEG-TS stream on loopback.
struct LiveStream(Child);

impl LiveStream {
    fn start(clip: &std::path::Path, port: u16) -> LiveStream {
        let child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(clip)
            .args(["-c", "copy", "-f", "mpegts", "-listen", "1"])
            .arg(format!("http://127.0.0.1:{port}/live.ts"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg starts");
        std::thread::sleep(Duration::from_millis(500));
        LiveStream(child)
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_network_stream_plays_and_comes_back_after_a_drop_while_viewers_stay() {
    let _turn = heavy();
    let dir = TempDir::new("network-source");
    let clip = make_clip(&dir);
    let port = free_port();
    let live = LiveStream::start(&clip, port);
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    let source = FfmpegSource::open(&format!("http://127.0.0.1:{port}/live.ts"), options)
        .expect("the live stream opens");
    let server = TestServer::start_streams(vec![
        StreamConfig::new("", source).pause_source_when_idle(false)
    ]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    browser.wait_for(
        "the network stream to play",
        Duration::from_secs(20),
        PLAYING,
    );

    drop(live);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = server.streams()["streams"][0].clone();
        if state["state"] == "reconnecting" {
            assert!(
                state["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{state}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the drop never showed: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    browser.wait_for(
        "the page to show the source's state",
        Duration::from_secs(5),
        "return document.getElementById('stat-source').textContent.startsWith('reconnecting')",
    );
    let before = browser.frames_decoded();
    let _live = LiveStream::start(&clip, port);
    browser.wait_for(
        "the picture to resume",
        Duration::from_secs(30),
        &format!("return window.rtcgear.stats.framesDecoded > {before} + 30"),
    );
    // The viewer stayed connected through it all.
    assert_eq!(browser.eval("return window.rtcgear.reconnects"), 0);
    assert_eq!(server.streams()["streams"][0]["state"], "live");
}

#[test]
fn a_stabilized_stream_plays_with_its_border() {
    use rtcgear_capture::{FrameRate, TestPattern};
    use rtcgear_stabilize::{Smoothing, Stabilized, StabilizerConfig};

    let _turn = heavy();
    let pattern =
        TestPattern::new(640, 480, FrameRate::from_int(30).expect("30 > 0")).expect("a valid size");
    let config = StabilizerConfig::new()
        .smoothing(Smoothing::Causal)
        .border_size(16);
    let source = Stabilized::new(pattern, config).expect("the stabilizer starts");
    let server = TestServer::start_streams(vec![StreamConfig::new("", source)]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    browser.wait_for(
        "the stabilized stream to play",
        Duration::from_secs(20),
        PLAYING,
    );
    let size = browser.video_size();
    assert_eq!(size, serde_json::json!([672, 512]));
    let before = browser.frames_decoded();
    std::thread::sleep(Duration::from_secs(2));
    let after = browser.frames_decoded();
    assert!(after >= before + 20, "{before} -> {after} in 2 s");
}
