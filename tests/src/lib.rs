//! Helpers for rtcgear's end-to-end tests: a server on free loopback ports, headless Chromium
//! driven through ChromeDriver (W3C WebDriver over plain HTTP), and HTTP calls.
//!
//! The tests themselves live in `e2e/`. They need Debian's `chromium` and `chromium-driver`
//! (the README's test command installs them) and say so plainly when they are missing.
#![deny(missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Server, ServerConfig, ShutdownHandle, StreamConfig};
use serde_json::{json, Value};

mod relay;

pub use relay::{FlowStats, RateCap, Relay, RelayConfig, RelayStats};

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
        http(&self.url("/api/streams"), "GET", None, &[]).2
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

/// An HTTP reply: status, headers (lower-case names), and the body as JSON (a JSON string when
/// it is not JSON).
pub type Reply = (u16, Vec<(String, String)>, Value);

/// One HTTP call: status, headers (lower-case names) and the body (as JSON when it parses,
/// else as a JSON string).
pub fn http(
    url: &str,
    method: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let result = match body {
        Some((content_type, bytes)) => {
            let request = request
                .header("content-type", content_type)
                .body(bytes.to_vec())
                .expect("a valid request");
            agent.run(request)
        }
        None => agent.run(request.body(()).expect("a valid request")),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Finds an executable on the PATH, or explains what to install.
pub fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: these tests need Debian's {package}; \
                 the README's test command (`./scripts/test.sh`) installs it"
            )
        })
}

/// Headless Chromium under ChromeDriver: one session, any number of tabs.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session.
    pub fn start() -> Browser {
        let chromedriver = require("chromedriver", "chromium-driver");
        let chromium = require("chromium", "chromium");
        let port = free_port();
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Wait for "ChromeDriver was started successfully".
        if let Some(stdout) = driver.stdout.take() {
            let mut lines = BufReader::new(stdout).lines();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                match lines.next() {
                    Some(Ok(line)) if line.contains("started successfully") => break,
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            // Keep draining so ChromeDriver never blocks on a full pipe.
            thread::spawn(move || for _ in lines {});
        }
        let base = format!("http://127.0.0.1:{port}");
        let profile = TempDir::new("chromium-profile");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args }
            }}
        });
        let mut session = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while session.is_none() && Instant::now() < deadline {
            let body = serde_json::to_vec(&capabilities).expect("JSON");
            let (status, _, value) = try_http(
                &format!("{base}/session"),
                "POST",
                Some(("application/json", &body)),
            )
            .unwrap_or((0, Vec::new(), Value::Null));
            if status == 200 {
                session = value["value"]["sessionId"].as_str().map(str::to_string);
            } else {
                thread::sleep(Duration::from_millis(200));
            }
        }
        let session = session.expect("ChromeDriver opens a Chromium session");
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let bytes = serde_json::to_vec(&body).expect("JSON");
        let payload = (method != "GET").then_some(("application/json", bytes.as_slice()));
        let (status, _, value) = http(&url, method, payload, &[]);
        assert_eq!(status, 200, "WebDriver {method} {path}: {value}");
        value["value"].clone()
    }

    /// Loads `url` in the current tab.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `return` gives the result) in the current tab.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs `script` asynchronously: it calls `arguments[arguments.length - 1](result)` when done.
    pub fn eval_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs `script` in the current tab before any of the page's own scripts, on every page
    /// it loads from now on (Chrome DevTools' `Page.addScriptToEvaluateOnNewDocument`, through
    /// ChromeDriver). Other tabs are not affected.
    pub fn on_new_document(&self, script: &str) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": "Page.addScriptToEvaluateOnNewDocument", "params": { "source": script } }),
        );
    }

    /// Frames the player in the current tab has decoded since it last connected.
    pub fn frames_decoded(&self) -> u64 {
        self.eval("return window.rtcgear.stats.framesDecoded")
            .as_u64()
            .unwrap_or(0)
    }

    /// The video's size in the current tab, as `[width, height]`.
    pub fn video_size(&self) -> Value {
        self.eval(
            "const v = document.getElementById('video'); return [v.videoWidth, v.videoHeight]",
        )
    }

    /// Opens a new tab, switches to it, and returns its handle.
    pub fn new_tab(&self) -> String {
        let value = self.call("POST", "/window/new", json!({ "type": "tab" }));
        let handle = value["handle"]
            .as_str()
            .expect("a window handle")
            .to_string();
        self.switch_to(&handle);
        handle
    }

    /// The current tab's handle.
    pub fn current_tab(&self) -> String {
        self.call("GET", "/window", Value::Null)
            .as_str()
            .expect("a window handle")
            .to_string()
    }

    /// Makes `handle` the current tab.
    pub fn switch_to(&self, handle: &str) {
        self.call("POST", "/window", json!({ "handle": handle }));
    }

    /// Saves a screenshot of the current tab as PNG.
    pub fn screenshot(&self, path: &Path) {
        let value = self.call("GET", "/screenshot", Value::Null);
        let data = value.as_str().expect("base64 PNG");
        let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data)
            .expect("the screenshot is base64");
        std::fs::write(path, png).expect("the screenshot is written");
    }

    /// Polls `script` until it returns `true`, or panics with `what` and the last state.
    pub fn wait_for(&self, what: &str, limit: Duration, script: &str) {
        let deadline = Instant::now() + limit;
        loop {
            if self.eval(script) == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let state = self.eval(
                    "return window.rtcgear ? {state: window.rtcgear.state, says: document.getElementById('state').textContent, \
                     reconnects: window.rtcgear.reconnects, \
                     pc: window.rtcgear.pc && [window.rtcgear.pc.connectionState, window.rtcgear.pc.iceConnectionState], stats: window.rtcgear.stats} : null",
                );
                panic!("timed out after {limit:?} waiting for {what}; player: {state}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = try_http(&url, "DELETE", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn try_http(url: &str, method: &str, body: Option<(&str, &[u8])>) -> Option<Reply> {
    std::panic::catch_unwind(|| http(url, method, body, &[])).ok()
}

/// A folder under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder whose name starts with `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rtcgear-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temp folder");
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
