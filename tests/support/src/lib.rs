//! Fixtures for rtcgear's tests, shared by the crates' tests, the end-to-end tests and the Pi
//! smoke test of `cargo xtask pi-test`. It depends on none of rtcgear's crates, so any of
//! them can use it, `rtcgear-capture` included.
//!
//! - [`ports`]: free TCP and UDP ports on loopback.
//! - [`tempdir`]: folders removed on drop.
//! - [`programs`]: finding the programs the tests run, or saying what to install.
//! - [`process`]: child processes killed and reaped on drop.
//! - [`http`]: one HTTP call, its body as JSON.
//! - [`webdriver`]: headless Chromium driven through ChromeDriver (W3C WebDriver).
//! - [`firefox`]: headless Firefox ESR driven through geckodriver, the same [`webdriver::Browser`].
//! - [`player`]: what rtcgear's player page shows, read through [`webdriver::Browser`].
//! - [`clips`]: clips made by the FFmpeg CLI; [`live`]: one served as a live HTTP stream.
//! - [`rtsp`]: GStreamer's RTSP server on loopback; [`rpicam`]: the stand-in `rpicam-vid`.
//! - [`relay`]: a lossy UDP relay, for what a bad network does.
//! - [`serial`]: tests that stream video take turns.
//! - [`netns`]: networks of Linux network namespaces (routers, NAT, firewalls), Chromium in one.
//!
//! Fixtures that fail panic with what is missing, as a test should; the ones the Pi smoke
//! test uses outside a test also come as fallible calls returning [`Error`].
//!
//! # Example
//!
//! A JSON answer from a one-shot server on a free loopback port, read with [`http::request`]:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpListener;
//!
//! use rtcgear_test_support::{http, ports, tempdir::TempDir};
//!
//! let port = ports::free_tcp_port();
//! let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
//! let server = std::thread::spawn(move || {
//!     let (mut client, _) = listener.accept().unwrap();
//!     let mut request = [0; 1024];
//!     let _ = client.read(&mut request).unwrap();
//!     let body = r#"{"streams":[]}"#;
//!     write!(
//!         client,
//!         "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
//!          content-length: {}\r\nconnection: close\r\n\r\n{body}",
//!         body.len()
//!     )
//!     .unwrap();
//! });
//! let (status, headers, body) =
//!     http::request(&format!("http://127.0.0.1:{port}/api/streams"), "GET", None, &[]);
//! server.join().unwrap();
//! assert_eq!(status, 200);
//! assert!(headers.contains(&("content-type".into(), "application/json".into())));
//! assert_eq!(body["streams"], serde_json::json!([]));
//!
//! // A folder of the test's own, gone when `dir` is dropped.
//! let dir = TempDir::new("example");
//! std::fs::write(dir.path().join("answer.json"), body.to_string()).unwrap();
//! let path = dir.path().to_path_buf();
//! drop(dir);
//! assert!(!path.exists());
//! ```
#![deny(missing_docs)]

use std::fmt;

pub mod clips;
pub mod firefox;
pub mod http;
pub mod live;
pub mod netns;
pub mod player;
pub mod ports;
pub mod process;
pub mod programs;
pub mod relay;
pub mod rpicam;
pub mod rtsp;
pub mod serial;
pub mod tempdir;
pub mod webdriver;

/// What went wrong in a fallible fixture, said in words: which call, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error that says `message`.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(error: Error) -> String {
        error.0
    }
}
