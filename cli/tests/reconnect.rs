//! Things come back by themselves: the player page when the `rtcgear serve` process restarts
//! (within 3 s of the server answering again), and an RTSP source when its server drops and returns while the browser keeps watching.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use rtcgear_test_support::http;
use rtcgear_test_support::ports::{free_tcp_port, free_udp_port};
use rtcgear_test_support::rtsp::RtspServer;
use rtcgear_test_support::serial::heavy;
use rtcgear_test_support::tempdir::TempDir;
use rtcgear_test_support::webdriver::Browser;

/// A `rtcgear serve` process, killed on drop.
struct Serve(Child);

impl Serve {
    fn start(http_port: u16, udp_port: u16) -> Serve {
        let child = Command::new(env!("CARGO_BIN_EXE_rtcgear"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1",
                "--size",
                "320x240",
                "--port",
            ])
            .arg(http_port.to_string())
            .arg("--udp-port")
            .arg(udp_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rtcgear serve starts");
        let serve = Serve(child);
        // Polled often: the reconnection test measures from the moment it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("http://127.0.0.1:{http_port}/api/streams");
        while http::try_request(&url, "GET", None, &[]).is_err() {
            assert!(
                Instant::now() < deadline,
                "rtcgear serve did not answer within 10 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        serve
    }

    /// Kills the process with SIGKILL and reaps it.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Watches the page's `<video>` for presented frames (`requestVideoFrameCallback`), apart from
/// the page's own script: after `window.__mark` is set, `window.__firstAfterMark` is the wall
/// clock (ms since the epoch) of the first frame shown of a media stream other than
/// `window.__markStream` (the one playing when the server was killed: as its connection
/// closes, Chromium presents one last frame of it).
const FRAME_WATCH: &str = "const v = document.getElementById('video'); \
    window.__mark = false; window.__firstAfterMark = null; \
    const onFrame = () => { \
      const stream = v.srcObject && v.srcObject.id; \
      if (window.__mark && window.__firstAfterMark === null && stream !== window.__markStream) \
        window.__firstAfterMark = Date.now(); \
      v.requestVideoFrameCallback(onFrame); \
    }; \
    v.requestVideoFrameCallback(onFrame); return true";

/// Milliseconds since the epoch, as the page's `Date.now()` counts them.
fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
        * 1000.0
}

/// Kills the server under the open page (SIGKILL: no DTLS close, no HTTP answer), waits
/// `down`, starts it again on the same ports and returns the seconds from its HTTP port
/// answering to the page showing a new frame.
fn restart_under_the_page(
    browser: &Browser,
    server: &mut Serve,
    down: Duration,
    http_port: u16,
    udp_port: u16,
) -> f64 {
    let reconnects = browser
        .eval("return window.rtcgear.reconnects")
        .as_u64()
        .unwrap_or(0);
    server.kill();
    // Frames already on their way are shown within a few ms; none come after.
    thread::sleep(Duration::from_millis(200));
    browser.eval(
        "const v = document.getElementById('video'); \
         window.__markStream = v.srcObject && v.srcObject.id; \
         window.__mark = true; window.__firstAfterMark = null; return true",
    );
    thread::sleep(down.saturating_sub(Duration::from_millis(200)));
    *server = Serve::start(http_port, udp_port);
    let back = epoch_ms();
    browser.wait_for(
        "the page to show new frames",
        Duration::from_secs(30),
        "return window.__firstAfterMark !== null",
    );
    let shown = browser
        .eval("return window.__firstAfterMark")
        .as_f64()
        .expect("a frame time");
    let after = browser
        .eval("return window.rtcgear.reconnects")
        .as_u64()
        .unwrap_or(0);
    assert!(after > reconnects, "the page made a new session");
    (shown - back) / 1000.0
}

/// A page whose server is killed and started again (same ports) shows new frames within 3 s of
/// the server answering again, whether the server was back before the page noticed it had gone
/// (a quick restart) or the page had been retrying for a while. Before the page watched for
/// stalls and retried fast, this took 14 s.
#[test]
fn the_page_reconnects_by_itself_within_3_s_when_the_server_restarts() {
    let _turn = heavy();
    let (http_port, udp_port) = (free_tcp_port(), free_udp_port());
    let mut server = Serve::start(http_port, udp_port);
    let browser = Browser::start();
    browser.goto(&format!("http://127.0.0.1:{http_port}/"));
    browser.wait_for(
        "the video to play",
        Duration::from_secs(20),
        "return window.rtcgear.state === 'connected' && window.rtcgear.stats.framesDecoded > 10",
    );
    assert_eq!(browser.eval(FRAME_WATCH), Value::Bool(true));

    // Back at once, before the page can have noticed.
    let quick = restart_under_the_page(
        &browser,
        &mut server,
        Duration::from_millis(300),
        http_port,
        udp_port,
    );
    browser.wait_for(
        "the video to play again",
        Duration::from_secs(20),
        "return window.rtcgear.state === 'connected' && window.rtcgear.stats.framesDecoded > 10",
    );
    // Down for 8 s: the page has noticed and keeps trying.
    let late = restart_under_the_page(
        &browser,
        &mut server,
        Duration::from_secs(8),
        http_port,
        udp_port,
    );
    eprintln!("new frames {quick:.2} s after a quick restart, {late:.2} s after 8 s down");
    assert!(quick <= 3.0, "{quick:.2} s after a quick restart");
    assert!(late <= 3.0, "{late:.2} s after 8 s down");
    browser.wait_for(
        "the video to play again",
        Duration::from_secs(20),
        "return window.rtcgear.state === 'connected' && window.rtcgear.stats.framesDecoded > 10",
    );
}

#[test]
fn an_rtsp_source_plays_passed_through_and_comes_back_after_its_server_drops() {
    let _turn = heavy();
    // Live 640x360 H.264 at 30 fps, a keyframe a second.
    let rtsp_port = free_tcp_port();
    let rtsp = RtspServer::start(rtsp_port, (640, 360), 30, 30);
    let (http_port, udp_port) = (free_tcp_port(), free_udp_port());
    let dir = TempDir::new("rtsp-serve");
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_rtcgear"))
        .args(["serve", "--bind", "127.0.0.1", "--source"])
        .arg(rtsp.url())
        .arg("--port")
        .arg(http_port.to_string())
        .arg("--udp-port")
        .arg(udp_port.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("rtcgear serve starts");
    let _serve = Serve(child);
    let page = format!("http://127.0.0.1:{http_port}/");
    let deadline = Instant::now() + Duration::from_secs(15);
    while http::try_request(&format!("{page}api/streams"), "GET", None, &[]).is_err() {
        assert!(
            Instant::now() < deadline,
            "rtcgear serve did not answer within 15 s: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let browser = Browser::start();
    browser.goto(&page);
    browser.wait_for(
        "the RTSP stream to play",
        Duration::from_secs(20),
        "return window.rtcgear.state === 'connected' && window.rtcgear.stats.framesDecoded > 15",
    );
    assert_eq!(browser.video_size().to_string(), "[640,360]");

    drop(rtsp);
    browser.wait_for(
        "the page to show that the source is reconnecting",
        Duration::from_secs(20),
        "return document.getElementById('stat-source').textContent.startsWith('reconnecting')",
    );
    let before = browser.frames_decoded();
    let _rtsp = RtspServer::start(rtsp_port, (640, 360), 30, 30);
    browser.wait_for(
        "the picture to resume",
        Duration::from_secs(30),
        &format!("return window.rtcgear.stats.framesDecoded > {before} + 30"),
    );
    // The viewer stayed connected through it all.
    assert_eq!(browser.eval("return window.rtcgear.reconnects"), 0);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(log.contains("passing its H.264 through"), "{log}");
    assert!(log.contains("reopened"), "{log}");
}
