//! Headless Firefox driven through geckodriver: the same W3C WebDriver as ChromeDriver, so a
//! Firefox session is a [`Browser`] and every method of it (and of [`crate::player`]) works,
//! except [`Browser::on_new_document`], which is Chromium's DevTools.
//!
//! The tests need Debian's `firefox-esr` and geckodriver, which Debian does not package:
//! `scripts/deps.sh test` builds it with `cargo install --locked geckodriver --root
//! target/tools`. [`Browser::start_firefox`] finds geckodriver there or on the `PATH`, and
//! `firefox-esr` (or `firefox`) on the `PATH`, and panics with what to install when one is
//! missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::http;
use crate::process::ChildGuard;
use crate::programs::find;
use crate::tempdir::TempDir;
use crate::webdriver::{wait_for_driver, Browser};
use crate::Error;

/// Firefox's preferences for the tests (`moz:firefoxOptions.prefs`, on top of the ones
/// geckodriver sets for automation): WebRTC between processes of one machine, without prompts,
/// gestures or downloads from Mozilla.
pub fn firefox_prefs() -> Value {
    json!({
        // Firefox drops loopback ICE candidates unless told otherwise, and rtcgear's test
        // servers bind 127.0.0.1: without this no candidate pair forms and ICE fails.
        "media.peerconnection.ice.loopback": true,
        // Host candidates as addresses, not mDNS names (nothing resolves `.local` here).
        "media.peerconnection.ice.obfuscate_host_addresses": false,
        // Autoplay allowed (0), and without the user gesture the blocking policy wants (0).
        "media.autoplay.default": 0,
        "media.autoplay.blocking_policy": 0,
        // No permission prompt for media (headless, nobody would answer it).
        "media.navigator.permission.disabled": true,
        // Camera permission for every page. Unless a page may use the camera or microphone,
        // Firefox gathers ICE candidates on the default route's addresses alone (nICEr logs
        // "use only default local addresses: yes"), so the loopback pref above is not enough:
        // without this a receive-only page offers no 127.0.0.1 candidate and ICE fails.
        "permissions.default.camera": 1,
        // No OpenH264, so offers carry VP8, VP9 and AV1 only: Debian's firefox-esr has this
        // in /etc/firefox-esr/firefox-esr.js already; here too for a `firefox` from elsewhere.
        // (geckodriver already turns off plugin downloads from Mozilla.)
        "media.gmp-gmpopenh264.enabled": false,
    })
}

/// What Firefox logs when `RTCGEAR_FIREFOX_LOG` names a file (`MOZ_LOG`): ICE (nICEr, which
/// says which addresses it gathers on and why it ignores others), transport and signaling.
/// Each process writes its own file beside it (`FILE.moz_log`, `FILE.child-N.moz_log`).
pub const FIREFOX_LOG_MODULES: &str = "nicer:5,mtransport:5,signaling:4,jsep:4,timestamp";

/// What [`Browser::launch_firefox`] starts: geckodriver, Firefox, the folder its fresh profile
/// goes in, and how long one WebDriver command may take.
#[derive(Debug, Clone)]
pub struct FirefoxLaunch {
    geckodriver: PathBuf,
    firefox: PathBuf,
    profile_root: Option<PathBuf>,
    timeout: Duration,
}

impl FirefoxLaunch {
    /// These programs, a fresh profile under the temp folder, and commands of up to
    /// [`http::TIMEOUT`].
    pub fn new(geckodriver: impl Into<PathBuf>, firefox: impl Into<PathBuf>) -> FirefoxLaunch {
        FirefoxLaunch {
            geckodriver: geckodriver.into(),
            firefox: firefox.into(),
            profile_root: None,
            timeout: http::TIMEOUT,
        }
    }

    /// geckodriver from the repo's `target/tools/bin` (where `scripts/deps.sh test` builds it)
    /// or the `PATH`, and `firefox-esr` (or `firefox`) from the `PATH`.
    ///
    /// # Panics
    ///
    /// If either is missing, saying what installs it.
    pub fn find() -> FirefoxLaunch {
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin");
        let geckodriver = Some(tools.join("geckodriver"))
            .filter(|p| p.is_file())
            .or_else(|| find("geckodriver"))
            .unwrap_or_else(|| {
                panic!(
                    "geckodriver is not installed: the Firefox tests need it in {} or on the \
                     PATH; `scripts/deps.sh test` builds it there (cargo install --locked \
                     geckodriver --root target/tools)",
                    tools.display()
                )
            });
        let firefox = find("firefox-esr")
            .or_else(|| find("firefox"))
            .unwrap_or_else(|| {
                panic!(
                    "firefox-esr is not installed: the Firefox tests need Debian's firefox-esr; \
                     `scripts/deps.sh test` installs it"
                )
            });
        FirefoxLaunch::new(geckodriver, firefox)
    }

    /// Firefox's profile made in a fresh folder under `dir` (removed when the browser is
    /// dropped).
    pub fn profile_root(mut self, dir: impl Into<PathBuf>) -> FirefoxLaunch {
        self.profile_root = Some(dir.into());
        self
    }

    /// How long one WebDriver command may take (loading a page is one).
    pub fn timeout(mut self, timeout: Duration) -> FirefoxLaunch {
        self.timeout = timeout;
        self
    }
}

/// The session's capabilities: headless Firefox at `binary` with [`firefox_prefs`].
fn capabilities(binary: &Path) -> Value {
    json!({
        "capabilities": { "alwaysMatch": {
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "binary": binary,
                "args": ["-headless"],
                "prefs": firefox_prefs(),
            }
        }}
    })
}

impl Browser {
    /// Starts geckodriver and a headless Firefox session, as [`FirefoxLaunch::find`] finds
    /// them.
    ///
    /// # Panics
    ///
    /// If either program is missing, or geckodriver opens no session.
    pub fn start_firefox() -> Browser {
        Browser::launch_firefox(FirefoxLaunch::find()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts geckodriver on a free loopback port, waits until it answers, and opens a
    /// headless Firefox session in a fresh profile (geckodriver makes it in a folder of ours,
    /// removed with the browser). With `RTCGEAR_FIREFOX_LOG=FILE`, Firefox logs
    /// [`FIREFOX_LOG_MODULES`] there, for a test whose Firefox does not connect.
    pub fn launch_firefox(launch: FirefoxLaunch) -> Result<Browser, Error> {
        let profile = match &launch.profile_root {
            Some(dir) => TempDir::at(dir)
                .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?,
            None => TempDir::new("firefox-profile"),
        };
        let port = crate::ports::free_tcp_port();
        let mut command = Command::new(&launch.geckodriver);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--profile-root")
            .arg(profile.path());
        // Firefox inherits geckodriver's environment (`moz:firefoxOptions.env` did not reach
        // it here), so a log asked for goes through geckodriver's.
        if let Some(log) = std::env::var_os("RTCGEAR_FIREFOX_LOG") {
            command
                .env("MOZ_LOG", FIREFOX_LOG_MODULES)
                .env("MOZ_LOG_FILE", log);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::new(format!(
                    "cannot start {}: {e}",
                    launch.geckodriver.display()
                ))
            })?;
        let mut driver = ChildGuard::new(child);
        let base = format!("http://127.0.0.1:{port}");
        wait_for_driver(&mut driver, &base, launch.timeout, "geckodriver")?;
        Browser::open_session(
            driver,
            profile,
            base,
            &capabilities(&launch.firefox),
            launch.timeout,
            ("geckodriver", "Firefox"),
        )
    }
}
