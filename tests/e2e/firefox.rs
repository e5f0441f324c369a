//! Firefox ESR as Debian ships it (no OpenH264, so its offers carry VP8, VP9 and AV1), headless
//! under geckodriver: it plays the page in VP8 while Chromium plays H.264 from the same stream,
//! and it plays a WHEP stream from a script of its own.

use std::time::{Duration, Instant};

use rtcgear_test_support::webdriver::Browser;
use rtcgear_tests::TestServer;
use serde_json::{json, Value};

use crate::heavy;

const PLAYING: &str = "return !!window.rtcgear && window.rtcgear.state === 'connected' \
    && window.rtcgear.stats.framesDecoded > 0 && document.getElementById('video').videoWidth > 0";

/// What the current tab's `pc` (`window.rtcgear.pc` on the page, `window.whep.pc` in the WHEP
/// test) decodes and through which candidate pair: `{codec, frames, pair}`.
fn inbound(browser: &Browser, pc: &str) -> Value {
    browser.eval_async(&format!(
        "const done = arguments[arguments.length - 1]; \
         {pc}.getStats().then(stats => {{ \
           const out = {{codec: null, frames: 0, pair: null}}; \
           stats.forEach(s => {{ \
             if (s.type === 'inbound-rtp' && s.kind === 'video') {{ \
               out.frames = s.framesDecoded || 0; \
               if (s.codecId && stats.get(s.codecId)) out.codec = stats.get(s.codecId).mimeType; \
             }} \
             if (s.type === 'candidate-pair' && (s.selected || s.nominated) \
                 && s.state === 'succeeded') {{ \
               const l = stats.get(s.localCandidateId), r = stats.get(s.remoteCandidateId); \
               const side = c => c && (c.candidateType + ' ' + (c.protocol || '') + ' ' \
                 + (c.address || c.ip) + ':' + c.port); \
               out.pair = side(l) + ' -> ' + side(r); \
             }} \
           }}); \
           done(out); \
         }}, e => done({{error: String(e)}}));"
    ))
}

/// Frames `pc` has decoded, from `getStats`.
fn frames(browser: &Browser, pc: &str) -> u64 {
    inbound(browser, pc)["frames"].as_u64().unwrap_or(0)
}

fn codecs(server: &TestServer) -> Value {
    server.streams()["streams"][0]["codecs"].clone()
}

#[test]
fn firefox_plays_the_page_in_vp8_while_chromium_plays_h264_from_the_same_stream() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30)], |_| {});
    let chromium = Browser::start();
    chromium.goto(&server.url("/"));
    chromium.wait_for("Chromium to play", Duration::from_secs(20), PLAYING);
    assert_eq!(
        inbound(&chromium, "window.rtcgear.pc")["codec"],
        "video/H264"
    );

    let started = Instant::now();
    let firefox = Browser::start_firefox();
    let launched = started.elapsed();
    firefox.goto(&server.url("/"));
    firefox.wait_for("Firefox to play", Duration::from_secs(30), PLAYING);
    let playing = started.elapsed();
    let stats = inbound(&firefox, "window.rtcgear.pc");
    eprintln!(
        "Firefox: session in {launched:.1?}, playing {playing:.1?} after launch, \
         first frame {} ms after it offered; {stats}",
        firefox.eval("return window.rtcgear.stats.firstFrameMs")
    );
    assert_eq!(stats["codec"], "video/VP8", "{stats}");
    assert_eq!(firefox.video_size(), json!([640, 480]));
    // The picture is the test pattern's: the page reads its stamp in Firefox too.
    firefox.wait_for(
        "Firefox to read the stamp",
        Duration::from_secs(10),
        "return window.rtcgear.stats.stampsRead > 10",
    );
    let now = codecs(&server);
    assert_eq!(now["H.264"]["viewers"], 1, "{now}");
    assert_eq!(now["VP8"]["viewers"], 1, "{now}");
    assert_eq!(now["VP8"]["encoding"], true, "{now}");

    // Both keep decoding, each its own codec (frames counted by getStats now, not by the
    // page's once-a-second sample).
    let decoded = |browser: &Browser| frames(browser, "window.rtcgear.pc");
    let before = [decoded(&chromium), decoded(&firefox)];
    std::thread::sleep(Duration::from_secs(3));
    let after = [decoded(&chromium), decoded(&firefox)];
    for (name, (b, a)) in ["Chromium", "Firefox"].iter().zip(before.iter().zip(after)) {
        assert!(a >= b + 45, "{name} decoded {} frames in 3 s", a - b);
    }
    assert_eq!(
        inbound(&chromium, "window.rtcgear.pc")["codec"],
        "video/H264"
    );
    assert_eq!(inbound(&firefox, "window.rtcgear.pc")["codec"], "video/VP8");

    // Firefox leaves: the VP8 encoder stops, Chromium plays on.
    drop(firefox);
    let left = Instant::now();
    let deadline = left + Duration::from_secs(20);
    loop {
        let now = codecs(&server);
        if now["VP8"]["encoding"] == false && now["VP8"]["viewers"] == 0 {
            eprintln!("VP8 stopped {:.1?} after Firefox quit", left.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "VP8 still encoding: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let h264_before = codecs(&server)["H.264"]["frames_encoded"]
        .as_u64()
        .unwrap_or(0);
    let before = decoded(&chromium);
    std::thread::sleep(Duration::from_secs(2));
    let after = decoded(&chromium);
    let h264_after = codecs(&server)["H.264"]["frames_encoded"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        after >= before + 30,
        "Chromium decoded {} frames in 2 s after Firefox left ({} H.264 frames encoded)",
        after - before,
        h264_after - h264_before
    );
}

/// Offers from a plain page of the server's origin, as any WHEP player would: a recvonly
/// video transceiver, ICE gathered, `POST /whep` (application/sdp), the answer set and the
/// track shown in a `<video>`. Gives `{status, location, contentType}`.
const WHEP_PLAY: &str = "const done = arguments[arguments.length - 1]; (async () => { \
    const pc = new RTCPeerConnection(); \
    const video = document.createElement('video'); \
    video.muted = true; video.autoplay = true; video.playsInline = true; \
    document.body.appendChild(video); \
    window.whep = {pc, video}; \
    pc.addTransceiver('video', {direction: 'recvonly'}); \
    pc.ontrack = e => { video.srcObject = e.streams[0] || new MediaStream([e.track]); }; \
    await pc.setLocalDescription(await pc.createOffer()); \
    await new Promise(resolve => { \
      if (pc.iceGatheringState === 'complete') return resolve(); \
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); }; \
      setTimeout(resolve, 3000); \
    }); \
    window.whep.offer = pc.localDescription.sdp; \
    const response = await fetch('/whep', {method: 'POST', \
      headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp}); \
    const answer = await response.text(); \
    const out = {status: response.status, location: response.headers.get('Location'), \
      contentType: response.headers.get('Content-Type')}; \
    if (response.status === 201) await pc.setRemoteDescription({type: 'answer', sdp: answer}); \
    else out.body = answer; \
    return out; \
  })().then(done, e => done({error: String(e)}));";

#[test]
fn firefox_plays_a_whep_stream_from_its_own_script_and_ends_the_session() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30)], |_| {});
    let firefox = Browser::start_firefox();
    // Any page of the server's origin will do, as long as it plays nothing itself: a static
    // file (Firefox shows text as an HTML document).
    firefox.goto(&server.url("/static/stamp.js"));
    let offered = firefox.eval_async(WHEP_PLAY);
    assert_eq!(offered["status"], 201, "{offered}");
    assert_eq!(offered["contentType"], "application/sdp", "{offered}");
    let location = offered["location"]
        .as_str()
        .unwrap_or_else(|| panic!("no Location: {offered}"))
        .to_string();
    let offer = firefox
        .eval("return window.whep.offer")
        .as_str()
        .unwrap_or_default()
        .to_string();
    let offered_codecs: Vec<&str> = offer
        .lines()
        .filter_map(|line| line.strip_prefix("a=rtpmap:"))
        .collect();
    eprintln!("Firefox offers {offered_codecs:?}");
    assert!(
        !offer.contains("H264"),
        "Firefox ESR as Debian ships it offers no H.264:\n{offer}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while firefox.eval(
        "return window.whep.pc.connectionState === 'connected' \
         && window.whep.video.videoWidth > 0 && !window.whep.video.paused",
    ) != true
    {
        if Instant::now() > deadline {
            let state = firefox.eval(
                "const w = window.whep; return {pc: [w.pc.connectionState, \
                 w.pc.iceConnectionState, w.pc.iceGatheringState], video: [w.video.videoWidth, \
                 w.video.paused, w.video.readyState, String(w.video.error && w.video.error.message)], \
                 remote: w.pc.remoteDescription && w.pc.remoteDescription.sdp}",
            );
            let stats = inbound(&firefox, "window.whep.pc");
            panic!("Firefox plays no WHEP stream after 30 s: {state:#} {stats}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = inbound(&firefox, "window.whep.pc");
    eprintln!("Firefox over WHEP: {stats}");
    assert_eq!(stats["codec"], "video/VP8", "{stats}");
    assert_eq!(
        firefox.eval("return [window.whep.video.videoWidth, window.whep.video.videoHeight]"),
        json!([640, 480])
    );
    let before = stats["frames"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let after = frames(&firefox, "window.whep.pc");
    assert!(
        after >= before + 30,
        "{} frames decoded in 2 s",
        after - before
    );
    let now = codecs(&server);
    assert_eq!(now["VP8"]["viewers"], 1, "{now}");
    assert_eq!(now["H.264"]["viewers"], 0, "{now}");

    // The player ends its session: DELETE of the Location, from Firefox too.
    let deleted = firefox.eval_async(&format!(
        "const done = arguments[arguments.length - 1]; \
         fetch({location:?}, {{method: 'DELETE'}}).then(r => done(r.status), e => done(String(e)));"
    ));
    assert_eq!(deleted, 200, "DELETE {location}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = codecs(&server);
        if now["VP8"]["viewers"] == 0 && now["VP8"]["encoding"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "the session lives on: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
