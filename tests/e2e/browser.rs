//! The player page in headless Chromium.

use std::time::{Duration, Instant};

use rtcgear_test_support::webdriver::Browser;
use rtcgear_tests::TestServer;

use crate::heavy;

const PLAYING: &str = "return !!window.rtcgear && window.rtcgear.state === 'connected' \
    && window.rtcgear.stats.framesDecoded > 0 && document.getElementById('video').videoWidth > 0";

#[test]
fn the_page_plays_the_test_pattern_with_live_stats() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30)], |_| {});
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    browser.wait_for("the video to play", Duration::from_secs(20), PLAYING);
    let size = browser.video_size();
    assert_eq!(size, serde_json::json!([640, 480]));

    // Frames keep coming, and the page reads latency from the stamp in the picture.
    let before = browser.frames_decoded();
    std::thread::sleep(Duration::from_secs(2));
    let after = browser.frames_decoded();
    assert!(
        after >= before + 20,
        "only {} frames decoded in 2 s",
        after - before
    );
    browser.wait_for(
        "the stamp to be read",
        Duration::from_secs(10),
        "return window.rtcgear.stats.stampsRead > 10 && window.rtcgear.stats.latencyP50Ms !== null",
    );
    let latency = browser
        .eval("return window.rtcgear.stats.latencyP50Ms")
        .as_f64()
        .unwrap_or(f64::NAN);
    // A sanity range, not a performance target: the bench measures latency.
    assert!((0.0..2000.0).contains(&latency), "latency {latency} ms");
    browser.wait_for(
        "the stats panel to fill in",
        Duration::from_secs(5),
        "return document.getElementById('stat-resolution').textContent === '640×480' \
         && document.getElementById('stat-fps').textContent !== '–' \
         && document.getElementById('stat-viewers').textContent === '1'",
    );
    let streams = server.streams();
    assert_eq!(streams["streams"][0]["viewers"], 1);
    assert_eq!(streams["streams"][0]["state"], "live");
    if let Some(dir) = std::env::var_os("RTCGEAR_SCREENSHOTS") {
        browser.screenshot(&std::path::Path::new(&dir).join("player.png"));
    }
}

#[test]
fn three_tabs_play_at_once_from_one_encoder_and_a_late_tab_starts_at_once() {
    let _turn = heavy();
    // A long keyframe interval: a late viewer that starts within a second proves it was given
    // a keyframe of its own, not that it was lucky.
    // Three RTC threads: each tab's session goes to a thread of its own.
    let server = TestServer::start_with(
        &[("", 640, 480, 30)],
        |config| config.rtc_threads = 3,
        |stream| stream.keyframe_interval(Duration::from_secs(30)),
    );
    let browser = Browser::start();
    let first = browser.current_tab();
    browser.goto(&server.url("/"));
    browser.wait_for("tab 1 to play", Duration::from_secs(20), PLAYING);
    let started = Instant::now();
    let frames_before = server.streams()["streams"][0]["frames_encoded"]
        .as_u64()
        .unwrap_or(0);

    let mut tabs = vec![first];
    for n in 2..=3 {
        tabs.push(browser.new_tab());
        browser.goto(&server.url("/"));
        browser.wait_for(
            &format!("tab {n} to play"),
            Duration::from_secs(20),
            PLAYING,
        );
        let first_frame = browser
            .eval("return window.rtcgear.stats.firstFrameMs")
            .as_f64()
            .unwrap_or(f64::MAX);
        assert!(
            first_frame < 1000.0,
            "tab {n} waited {first_frame} ms for its first frame"
        );
    }
    let streams = server.streams();
    assert_eq!(streams["streams"][0]["viewers"], 3);
    let threads: Vec<_> = streams["rtc_threads"]
        .as_array()
        .expect("rtc_threads")
        .iter()
        .map(|thread| thread["viewers"].as_u64())
        .collect();
    assert_eq!(threads, [Some(1); 3]);

    // Every tab keeps decoding.
    let counts: Vec<u64> = tabs
        .iter()
        .map(|t| {
            browser.switch_to(t);
            browser.frames_decoded()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    for (tab, before) in tabs.iter().zip(counts) {
        browser.switch_to(tab);
        let after = browser.frames_decoded();
        assert!(
            after >= before + 20,
            "a tab decoded only {} frames in 2 s",
            after - before
        );
    }
    // One encoder for all three: about 30 encoded frames a second, not 90.
    let elapsed = started.elapsed().as_secs_f64();
    let encoded = server.streams()["streams"][0]["frames_encoded"]
        .as_u64()
        .unwrap_or(0)
        - frames_before;
    assert!(
        (encoded as f64) < (elapsed + 1.0) * 30.0 * 1.2,
        "{encoded} frames encoded in {elapsed:.1} s for three viewers"
    );
}

#[test]
fn named_streams_play_at_their_own_paths() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30), ("yard", 320, 240, 15)], |_| {});
    let browser = Browser::start();
    browser.goto(&server.url("/yard/"));
    browser.wait_for("the yard stream to play", Duration::from_secs(20), PLAYING);
    let size = browser.video_size();
    assert_eq!(size, serde_json::json!([320, 240]));
    let streams = server.streams();
    assert_eq!(streams["streams"][1]["name"], "yard");
    assert_eq!(streams["streams"][1]["viewers"], 1);
    assert_eq!(streams["streams"][0]["viewers"], 0);
    // The page links every stream.
    let links = browser
        .eval("return [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))");
    assert_eq!(links, serde_json::json!(["/", "/yard/"]));
}
