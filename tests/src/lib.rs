//! The harness of rtcgear's end-to-end tests: rtcgear's server in this process, on free
//! loopback ports.
//!
//! The tests themselves live in `e2e/`. What they share with other crates' tests (headless
//! Chromium through ChromeDriver, HTTP calls, ports, temp folders, FFmpeg clips) is in
//! `rtcgear-test-support`; the browser tests need Debian's `chromium` and `chromium-driver`
//! (the README's test command installs them) and say so plainly when they are missing.
#![deny(missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};

use rtcgear_capture::ffmpeg::{FfmpegH264Source, FfmpegOptions};
use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Server, ServerConfig, ShutdownHandle, StreamConfig};
use rtcgear_test_support::clips::Clip;
use rtcgear_test_support::http;
use serde_json::Value;

/// A server running in this process on loopback, stopped and joined on drop.
pub struct TestServer {
    /// The HTTP address.
    pub addr: SocketAddr,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves the streams (name, width, height, fps) on free loopback ports.
    pub fn start(
        streams: &[(&str, u32, u32, u32)],
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        Self::start_with(streams, configure, |stream| stream)
    }

    /// Like [`TestServer::start`], with a hook over every stream's settings.
    pub fn start_with(
        streams: &[(&str, u32, u32, u32)],
        configure: impl FnOnce(&mut ServerConfig),
        each: impl Fn(StreamConfig) -> StreamConfig,
    ) -> TestServer {
        let streams = streams
            .iter()
            .map(|&(name, width, height, fps)| {
                let pattern =
                    TestPattern::new(width, height, FrameRate::from_int(fps).expect("fps > 0"))
                        .expect("a valid test pattern size");
                each(StreamConfig::new(name, pattern))
            })
            .collect();
        Self::start_configured(streams, configure)
    }

    /// Serves the given streams on free loopback ports.
    pub fn start_streams(streams: Vec<StreamConfig>) -> TestServer {
        Self::start_configured(streams, |_| {})
    }

    /// Serves the given streams on free loopback ports, with a hook over the server's settings.
    pub fn start_configured(
        streams: Vec<StreamConfig>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = ServerConfig::default();
        config.bind = Ipv4Addr::LOCALHOST.into();
        config.http_port = 0;
        config.udp_port = Some(0);
        configure(&mut config);
        let mut builder = Server::builder().config(config);
        for stream in streams {
            builder = builder.stream(stream);
        }
        let server = builder.build().expect("the server starts");
        let addr = server.http_addr();
        let stop = server.shutdown_handle();
        let thread = thread::spawn(move || server.run().expect("the server runs"));
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `/api/streams`, parsed.
    pub fn streams(&self) -> Value {
        http::request(&self.url("/api/streams"), "GET", None, &[]).2
    }

    /// Stops the server and waits for every thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl TestServer {
    /// One stream passing [`passthrough_clip`] (made in `dir`) through, looped.
    pub fn passthrough(dir: &Path) -> TestServer {
        let clip = passthrough_clip(dir);
        let mut options = FfmpegOptions::default();
        options.looping = true;
        let source = FfmpegH264Source::open(clip.to_str().expect("a UTF-8 path"), options)
            .expect("H.264 without B-frames passes through");
        TestServer::start_streams(vec![StreamConfig::passthrough("", source)])
    }
}

/// A 12-second 640x360 H.264 clip in `dir` that browsers play as it is (baseline, no
/// B-frames) with a single keyframe every 10 seconds: long enough that a late viewer of it
/// passed through could only start at once from a cache of its GOP.
pub fn passthrough_clip(dir: &Path) -> PathBuf {
    Clip::testsrc2(640, 360, 30, 12)
        .args(&[
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "veryfast",
        ])
        .args(&["-g", "300", "-keyint_min", "300", "-sc_threshold", "0"])
        .args(&["-pix_fmt", "yuv420p"])
        .make(&dir.join("passthrough.mp4"))
}
