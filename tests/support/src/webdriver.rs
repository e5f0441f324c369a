//! Headless Chromium driven through ChromeDriver: W3C WebDriver, JSON over plain HTTP on
//! loopback.
//!
//! The tests need Debian's `chromium` and `chromium-driver` (the README's test command
//! installs them). [`Browser::start`] finds both on the `PATH` and panics with what to install
//! when they are missing; [`Browser::launch`] takes the programs from a [`Launch`] and returns
//! an [`Error`] instead, for callers outside a test (the Pi smoke test of `cargo xtask`).
//! A [`Browser`] can also be headless Firefox, through geckodriver: see [`crate::firefox`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http;
use crate::process::ChildGuard;
use crate::programs::require;
use crate::tempdir::TempDir;
use crate::Error;

/// Chromium's flags: headless, no sandbox or GPU (containers, CI), no QUIC and no background
/// traffic, no throttling of background tabs and timers, autoplay without a gesture.
pub const CHROMIUM_FLAGS: [&str; 14] = [
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
];

/// How long ChromeDriver may take to answer once started.
const DRIVER_START_LIMIT: Duration = Duration::from_secs(20);
/// How long ChromeDriver may take to open a Chromium session.
const SESSION_LIMIT: Duration = Duration::from_secs(30);

/// What [`Browser::launch`] starts: the two programs, Chromium's profile folder, and how long
/// one WebDriver command may take.
#[derive(Debug, Clone)]
pub struct Launch {
    chromedriver: PathBuf,
    chromium: PathBuf,
    profile: Option<PathBuf>,
    timeout: Duration,
    /// Flags after [`CHROMIUM_FLAGS`].
    flags: Vec<String>,
}

impl Launch {
    /// These programs, a fresh profile under the temp folder, and commands of up to
    /// [`http::TIMEOUT`].
    pub fn new(chromedriver: impl Into<PathBuf>, chromium: impl Into<PathBuf>) -> Launch {
        Launch {
            chromedriver: chromedriver.into(),
            chromium: chromium.into(),
            profile: None,
            timeout: http::TIMEOUT,
            flags: Vec::new(),
        }
    }

    /// Chromium started with `flag` too, after [`CHROMIUM_FLAGS`] (a setting under test).
    pub fn flag(mut self, flag: impl Into<String>) -> Launch {
        self.flags.push(flag.into());
        self
    }

    /// `chromedriver` and `chromium` as found on the `PATH`.
    ///
    /// # Panics
    ///
    /// If either is missing, naming the Debian package to install.
    pub fn from_path() -> Launch {
        Launch::new(
            require("chromedriver", "chromium-driver"),
            require("chromium", "chromium"),
        )
    }

    /// Chromium's profile in `dir` (made if needed, removed when the browser is dropped).
    pub fn profile(mut self, dir: impl Into<PathBuf>) -> Launch {
        self.profile = Some(dir.into());
        self
    }

    /// How long one WebDriver command may take (loading a page is one).
    pub fn timeout(mut self, timeout: Duration) -> Launch {
        self.timeout = timeout;
        self
    }
}

/// Headless Chromium under ChromeDriver: one session, any number of tabs. Dropping it ends
/// the session, ChromeDriver and Chromium, and removes the profile.
///
/// The methods without `try_` panic when WebDriver fails, as a test should; see also the
/// player page's helpers in [`crate::player`].
#[derive(Debug)]
pub struct Browser {
    // Dropped in this order after `drop` has ended the session: ChromeDriver, then the
    // profile Chromium no longer uses.
    _driver: ChildGuard,
    _profile: TempDir,
    base: String,
    session: String,
    timeout: Duration,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session, both found on the `PATH`.
    ///
    /// # Panics
    ///
    /// If either program is missing, or ChromeDriver opens no session.
    pub fn start() -> Browser {
        Browser::launch(Launch::from_path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts ChromeDriver on a free loopback port, waits until it answers, and opens a
    /// headless Chromium session.
    pub fn launch(launch: Launch) -> Result<Browser, Error> {
        let port = crate::ports::free_tcp_port();
        let child = Command::new(&launch.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::new(format!(
                    "cannot start {}: {e}",
                    launch.chromedriver.display()
                ))
            })?;
        Browser::on_driver(
            ChildGuard::new(child),
            format!("http://127.0.0.1:{port}"),
            launch,
        )
    }

    /// Opens a headless Chromium session on a ChromeDriver started by the caller: `driver`,
    /// answering at `base` (`http://HOST:PORT`), waited for as [`Browser::launch`] waits for
    /// its own and ended with the browser. The launch's Chromium, profile and timeout are
    /// used; its ChromeDriver is not. For a ChromeDriver that runs elsewhere, such as in
    /// another network namespace (see [`crate::netns`]).
    pub fn on_driver(
        mut driver: ChildGuard,
        base: String,
        launch: Launch,
    ) -> Result<Browser, Error> {
        let profile = match &launch.profile {
            Some(dir) => TempDir::at(dir)
                .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?,
            None => TempDir::new("chromium-profile"),
        };
        wait_for_driver(&mut driver, &base, launch.timeout, "chromedriver")?;

        let args: Vec<String> = CHROMIUM_FLAGS
            .iter()
            .map(|flag| flag.to_string())
            .chain(launch.flags.iter().cloned())
            .chain([format!("--user-data-dir={}", profile.path().display())])
            .collect();
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": launch.chromium, "args": args }
            }}
        });
        Browser::open_session(
            driver,
            profile,
            base,
            &capabilities,
            launch.timeout,
            ("ChromeDriver", "Chromium"),
        )
    }

    /// Opens a session with `capabilities` on the WebDriver server `driver` answering at
    /// `base` (already waited for), retrying for up to [`SESSION_LIMIT`]; `names` are the
    /// driver's and the browser's for the error. The browser keeps `driver` and `profile`.
    pub(crate) fn open_session(
        driver: ChildGuard,
        profile: TempDir,
        base: String,
        capabilities: &Value,
        timeout: Duration,
        names: (&str, &str),
    ) -> Result<Browser, Error> {
        let body = serde_json::to_vec(capabilities).expect("JSON");
        let deadline = Instant::now() + SESSION_LIMIT;
        let session = loop {
            let reply = http::send(
                &format!("{base}/session"),
                "POST",
                Some(("application/json", &body)),
                &[],
                timeout,
            );
            let why = match reply {
                Ok((200, _, value)) => match value["value"]["sessionId"].as_str() {
                    Some(session) => break session.to_string(),
                    None => format!("200 without a session: {value}"),
                },
                Ok((status, _, value)) => format!("{status}: {}", message(&value)),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                let (driver, browser) = names;
                return Err(Error::new(format!(
                    "{driver} opened no {browser} session within {SESSION_LIMIT:?} ({why})"
                )));
            }
            thread::sleep(Duration::from_millis(200));
        };
        Ok(Browser {
            _driver: driver,
            _profile: profile,
            base,
            session,
            timeout,
        })
    }

    /// One WebDriver command of this session: `method` to `/session/ID` + `path`, with `body`
    /// as JSON (none for `GET`); the reply's `value`, or an error saying what WebDriver said.
    pub fn command(&self, method: &str, path: &str, body: Value) -> Result<Value, Error> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let bytes = serde_json::to_vec(&body).expect("JSON");
        let payload = (method != "GET").then_some(("application/json", bytes.as_slice()));
        let (status, _, value) = http::send(&url, method, payload, &[], self.timeout)?;
        if status != 200 {
            return Err(Error::new(format!(
                "WebDriver {method} {path} answered {status}: {}",
                message(&value)
            )));
        }
        Ok(value["value"].clone())
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.command(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads `url` in the current tab (WebDriver waits for the page to load).
    pub fn try_goto(&self, url: &str) -> Result<(), Error> {
        self.command("POST", "/url", json!({ "url": url }))
            .map(drop)
    }

    /// Loads `url` in the current tab.
    ///
    /// # Panics
    ///
    /// If WebDriver fails.
    pub fn goto(&self, url: &str) {
        self.try_goto(url).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `script` (a function body; `return` gives the result) in the current tab.
    pub fn try_eval(&self, script: &str) -> Result<Value, Error> {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs `script` (a function body; `return` gives the result) in the current tab.
    ///
    /// # Panics
    ///
    /// If WebDriver fails, the script's own errors included.
    pub fn eval(&self, script: &str) -> Value {
        self.try_eval(script).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `script` asynchronously: it calls `arguments[arguments.length - 1](result)` when
    /// done.
    pub fn eval_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs `script` in the current tab before any of the page's own scripts, on every page
    /// it loads from now on (Chrome DevTools' `Page.addScriptToEvaluateOnNewDocument`, through
    /// ChromeDriver). Other tabs are not affected. Chromium only: geckodriver has no such
    /// command.
    pub fn on_new_document(&self, script: &str) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": "Page.addScriptToEvaluateOnNewDocument", "params": { "source": script } }),
        );
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
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = http::send(&url, "DELETE", None, &[], self.timeout);
    }
}

/// Waits until the WebDriver server `driver` (called `name` in errors) answers `GET /status`
/// at `base`, for up to [`DRIVER_START_LIMIT`].
pub(crate) fn wait_for_driver(
    driver: &mut ChildGuard,
    base: &str,
    timeout: Duration,
    name: &str,
) -> Result<(), Error> {
    let deadline = Instant::now() + DRIVER_START_LIMIT;
    while !matches!(
        http::send(&format!("{base}/status"), "GET", None, &[], timeout),
        Ok((200, _, _))
    ) {
        if let Some(status) = driver.try_wait() {
            return Err(Error::new(format!("{name} exited ({status})")));
        }
        if Instant::now() > deadline {
            return Err(Error::new(format!(
                "{name} did not answer within {DRIVER_START_LIMIT:?}"
            )));
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// WebDriver's error message in a reply, or the whole reply.
fn message(value: &Value) -> String {
    value["value"]["message"]
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}
