//! One stream in two codecs: Chromium plays H.264 in one tab and, forced to VP8 with
//! `setCodecPreferences` (as a browser without H.264 would offer), VP8 in another. Each codec
//! is encoded once, and VP8 only while someone watches in it.

use std::time::{Duration, Instant};

use rtcgear_test_support::tempdir::TempDir;
use rtcgear_test_support::webdriver::Browser;
use rtcgear_tests::TestServer;
use serde_json::Value;

use crate::heavy;

const PLAYING: &str = "return !!window.rtcgear && window.rtcgear.state === 'connected' \
    && window.rtcgear.stats.framesDecoded > 0 && document.getElementById('video').videoWidth > 0";

/// Makes the page's offers list VP8 alone, before the page's own scripts run.
const VP8_ONLY: &str = "(() => { \
    const create = RTCPeerConnection.prototype.createOffer; \
    RTCPeerConnection.prototype.createOffer = function (...args) { \
      const codecs = RTCRtpReceiver.getCapabilities('video').codecs \
        .filter(c => /^video\\/(vp8|rtx)$/i.test(c.mimeType)); \
      for (const t of this.getTransceivers()) { \
        if (t.receiver.track.kind === 'video') t.setCodecPreferences(codecs); \
      } \
      return create.apply(this, args); \
    }; \
  })();";

/// The codec the current tab decodes, from `getStats` (`video/H264`, `video/VP8`).
fn decoded_codec(browser: &Browser) -> String {
    let codec = browser.eval_async(
        "const done = arguments[arguments.length - 1]; \
         window.rtcgear.pc.getStats().then(stats => { \
           let found = null; \
           stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.codecId) \
             found = stats.get(s.codecId).mimeType; }); \
           done(found); \
         }, e => done(String(e)));",
    );
    codec.as_str().unwrap_or_default().to_string()
}

fn codecs(server: &TestServer) -> Value {
    server.streams()["streams"][0]["codecs"].clone()
}

fn encoded(server: &TestServer) -> (u64, u64) {
    let codecs = codecs(server);
    (
        codecs["H.264"]["frames_encoded"].as_u64().unwrap_or(0),
        codecs["VP8"]["frames_encoded"].as_u64().unwrap_or(0),
    )
}

#[test]
fn chromium_plays_h264_in_one_tab_and_vp8_in_another_each_encoded_once() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30)], |_| {});
    let browser = Browser::start();
    let h264_tab = browser.current_tab();
    browser.goto(&server.url("/"));
    browser.wait_for("the H.264 tab to play", Duration::from_secs(20), PLAYING);
    assert_eq!(decoded_codec(&browser), "video/H264");
    assert_eq!(codecs(&server)["VP8"]["encoding"], false);
    assert_eq!(encoded(&server).1, 0, "no VP8 while nobody watches in it");

    let vp8_tab = browser.new_tab();
    browser.on_new_document(VP8_ONLY);
    browser.goto(&server.url("/"));
    browser.wait_for("the VP8 tab to play", Duration::from_secs(20), PLAYING);
    assert_eq!(decoded_codec(&browser), "video/VP8");
    assert_eq!(browser.video_size(), serde_json::json!([640, 480]));
    // The picture is the test pattern's: the page reads its stamp.
    browser.wait_for(
        "the stamp to be read in VP8",
        Duration::from_secs(10),
        "return window.rtcgear.stats.stampsRead > 10",
    );
    let codecs_now = codecs(&server);
    assert_eq!(codecs_now["H.264"]["viewers"], 1, "{codecs_now}");
    assert_eq!(codecs_now["VP8"]["viewers"], 1, "{codecs_now}");
    assert_eq!(codecs_now["VP8"]["encoding"], true, "{codecs_now}");

    // Both tabs keep decoding, and each codec is encoded about 30 times a second, not once
    // per viewer.
    let (h264_before, vp8_before) = encoded(&server);
    let started = Instant::now();
    let decoded = |tab: &str| {
        browser.switch_to(tab);
        browser.frames_decoded()
    };
    let before = [decoded(&h264_tab), decoded(&vp8_tab)];
    std::thread::sleep(Duration::from_secs(3));
    let after = [decoded(&h264_tab), decoded(&vp8_tab)];
    let elapsed = started.elapsed().as_secs_f64();
    for (name, (b, a)) in ["H.264", "VP8"].iter().zip(before.iter().zip(after)) {
        assert!(
            a >= b + 45,
            "the {name} tab decoded {} frames in 3 s",
            a - b
        );
    }
    let (h264_after, vp8_after) = encoded(&server);
    for (name, frames) in [
        ("H.264", h264_after - h264_before),
        ("VP8", vp8_after - vp8_before),
    ] {
        let most = (elapsed + 0.5) * 30.0 * 1.2;
        assert!(
            (45.0..most).contains(&(frames as f64)),
            "{frames} {name} frames encoded in {elapsed:.1} s"
        );
    }

    // The VP8 tab leaves: its encoder stops, H.264 goes on.
    browser.switch_to(&vp8_tab);
    browser.goto("about:blank");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = codecs(&server);
        if now["VP8"]["encoding"] == false && now["VP8"]["viewers"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "VP8 still encoding: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, vp8_stopped) = encoded(&server);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        encoded(&server).1,
        vp8_stopped,
        "VP8 frames after the last VP8 viewer left"
    );
    browser.switch_to(&h264_tab);
    let before = browser.frames_decoded();
    std::thread::sleep(Duration::from_secs(1));
    assert!(browser.frames_decoded() >= before + 15);
}

/// A stream passed through as it came (H.264, a keyframe every 10 s) plays in VP8 too: its
/// H.264 is decoded for the VP8 encoder, which starts on the newest picture of the GOP, so a
/// VP8 tab that comes 2 s into the GOP does not wait for the next keyframe.
#[test]
fn a_passed_through_stream_is_decoded_for_a_vp8_tab() {
    let _turn = heavy();
    let dir = TempDir::new("passthrough-vp8");
    let server = TestServer::passthrough(dir.path());
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    browser.wait_for("the H.264 tab to play", Duration::from_secs(20), PLAYING);
    assert_eq!(decoded_codec(&browser), "video/H264");
    std::thread::sleep(Duration::from_secs(2));

    browser.new_tab();
    browser.on_new_document(VP8_ONLY);
    browser.goto(&server.url("/"));
    browser.wait_for("the VP8 tab to play", Duration::from_secs(20), PLAYING);
    assert_eq!(decoded_codec(&browser), "video/VP8");
    assert_eq!(browser.video_size(), serde_json::json!([640, 360]));
    let first_frame = browser
        .eval("return window.rtcgear.stats.firstFrameMs")
        .as_f64()
        .unwrap_or(f64::MAX);
    assert!(
        first_frame < 2500.0,
        "the VP8 tab waited {first_frame} ms: for the next keyframe, not the decoded GOP"
    );
    let before = browser.frames_decoded();
    std::thread::sleep(Duration::from_secs(2));
    let after = browser.frames_decoded();
    assert!(
        after >= before + 30,
        "{before} -> {after} VP8 frames in 2 s"
    );
    assert_eq!(codecs(&server)["VP8"]["encoding"], true);
}

/// A browser that offers neither H.264 nor VP8 (Chromium made to offer VP9 alone) is told so
/// on the page, in words, instead of reconnecting forever.
#[test]
fn a_browser_with_neither_codec_is_told_so_on_the_page() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 320, 240, 15)], |_| {});
    let browser = Browser::start();
    browser.on_new_document(&VP8_ONLY.replace("(vp8|rtx)", "(vp9|rtx)"));
    browser.goto(&server.url("/"));
    browser.wait_for(
        "the page to give up on codecs",
        Duration::from_secs(20),
        "return window.rtcgear.state === 'failed' && !!window.rtcgear.problem",
    );
    let says = browser.eval("return document.getElementById('state').textContent");
    let says = says.as_str().unwrap_or_default();
    for words in ["neither H.264 nor VP8", "another browser"] {
        assert!(says.contains(words), "{words:?} in {says:?}");
    }
    // It does not keep offering.
    let reconnects = browser.eval("return window.rtcgear.reconnects");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(browser.eval("return window.rtcgear.reconnects"), reconnects);
    assert_eq!(server.streams()["streams"][0]["viewers"], 0);
}
