//! Files and network streams, played in Chromium through the server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rtcgear_capture::ffmpeg::{FfmpegOptions, FfmpegSource};
use rtcgear_server::{StreamConfig, WhenIdle};
use rtcgear_test_support::clips::Clip;
use rtcgear_test_support::live::LiveStream;
use rtcgear_test_support::ports::free_tcp_port;
use rtcgear_test_support::rpicam;
use rtcgear_test_support::tempdir::TempDir;
use rtcgear_test_support::webdriver::Browser;
use rtcgear_tests::TestServer;

use crate::heavy;

const PLAYING: &str = "return !!window.rtcgear && window.rtcgear.state === 'connected' \
    && window.rtcgear.stats.framesDecoded > 15 && document.getElementById('video').videoWidth > 0";

/// A 3-second 640x360 H.264 clip of FFmpeg's `testsrc2`.
fn make_clip(dir: &TempDir) -> PathBuf {
    Clip::testsrc2(640, 360, 30, 3)
        .h264()
        .make(&dir.path().join("clip.mp4"))
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

#[test]
fn a_network_stream_plays_and_comes_back_after_a_drop_while_viewers_stay() {
    let _turn = heavy();
    let dir = TempDir::new("network-source");
    let clip = make_clip(&dir);
    let port = free_tcp_port();
    let live = LiveStream::start(&clip, port);
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    let source = FfmpegSource::open(&format!("http://127.0.0.1:{port}/live.ts"), options)
        .expect("the live stream opens");
    let server = TestServer::start_streams(vec![
        StreamConfig::new("", source).when_idle(WhenIdle::ReadSource)
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

#[test]
fn a_passed_through_file_plays_and_a_late_tab_starts_from_the_gop_cache() {
    let _turn = heavy();
    let dir = TempDir::new("passthrough");
    let server = TestServer::passthrough(dir.path());
    let browser = Browser::start();
    let first = browser.current_tab();
    browser.goto(&server.url("/"));
    browser.wait_for(
        "the passed-through file to play",
        Duration::from_secs(20),
        PLAYING,
    );
    assert_eq!(browser.video_size(), serde_json::json!([640, 360]));

    // Some seconds into the 10-second GOP, the next keyframe is far away.
    std::thread::sleep(Duration::from_secs(2));
    let late = browser.new_tab();
    browser.goto(&server.url("/"));
    browser.wait_for("the late tab to play", Duration::from_secs(20), PLAYING);
    let first_frame = browser
        .eval("return window.rtcgear.stats.firstFrameMs")
        .as_f64()
        .unwrap_or(f64::MAX);
    assert!(
        first_frame < 2500.0,
        "the late tab waited {first_frame} ms: it waited for a keyframe, not the GOP cache"
    );
    for tab in [&first, &late] {
        browser.switch_to(tab);
        let before = browser.frames_decoded();
        std::thread::sleep(Duration::from_secs(1));
        let after = browser.frames_decoded();
        assert!(after >= before + 15, "{before} -> {after}");
    }
}

#[test]
fn a_pi_camera_plays_through_rpicam_vid() {
    use rtcgear_capture::rpicam::{RpicamH264Source, RpicamOptions};
    use rtcgear_capture::EncodedSource;

    let _turn = heavy();
    // The stand-in writes what rpicam-vid writes, made by the FFmpeg CLI.
    let standin = rpicam::standin();
    let mut options = RpicamOptions::camera(0);
    options.size = (640, 480);
    options.program = Some(standin);
    let camera = RpicamH264Source::open(options).expect("the stand-in camera starts");
    assert!(camera.info().profile.is_some());
    let server = TestServer::start_streams(vec![
        StreamConfig::passthrough("", camera).when_idle(WhenIdle::ReadSource)
    ]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    browser.wait_for("the Pi camera to play", Duration::from_secs(20), PLAYING);
    assert_eq!(browser.video_size(), serde_json::json!([640, 480]));
    // The stand-in's picture is the test source: frames keep coming.
    let before = browser.frames_decoded();
    std::thread::sleep(Duration::from_secs(1));
    assert!(browser.frames_decoded() >= before + 15);
}
