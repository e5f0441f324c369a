//! Things come back by themselves: the player page when the `rtcgear serve` process restarts,
//! and an RTSP source when its server drops and returns while the browser keeps watching.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("http://127.0.0.1:{http_port}/api/streams");
        while http::try_request(&url, "GET", None, &[]).is_err() {
            assert!(
                Instant::now() < deadline,
                "rtcgear serve did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_page_reconnects_by_itself_when_the_server_restarts() {
    let _turn = heavy();
    let (http_port, udp_port) = (free_tcp_port(), free_udp_port());
    let server = Serve::start(http_port, udp_port);
    let browser = Browser::start();
    browser.goto(&format!("http://127.0.0.1:{http_port}/"));
    browser.wait_for(
        "the video to play",
        Duration::from_secs(20),
        "return window.rtcgear.state === 'connected' && window.rtcgear.stats.framesDecoded > 10",
    );
    // The process dies without a word (SIGKILL): no DTLS close, no HTTP answer.
    drop(server);
    browser.wait_for(
        "the page to notice the server is gone",
        Duration::from_secs(15),
        "return window.rtcgear.state !== 'connected'",
    );
    let _server = Serve::start(http_port, udp_port);
    browser.wait_for(
        "the page to play again",
        Duration::from_secs(20),
        "return window.rtcgear.reconnects > 0 && window.rtcgear.state === 'connected' \
         && window.rtcgear.stats.framesDecoded > 10",
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
        std::thread::sleep(Duration::from_millis(100));
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
