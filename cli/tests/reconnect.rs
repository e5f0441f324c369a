//! The player page reconnects by itself when the `rtcgear serve` process restarts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtcgear_tests::{free_port, free_udp_port, http, Browser};

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
        while std::panic::catch_unwind(|| http(&url, "GET", None, &[])).is_err() {
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
    let (http_port, udp_port) = (free_port(), free_udp_port());
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
