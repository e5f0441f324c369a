//! The smoke test of a cross-built `rtcgear`: `rtcgear serve` under qemu streams over
//! loopback to the native headless Chromium, which must play it: the test pattern, then
//! `pi:0` through the tests' stand-in `rpicam-vid` in both camera paths.
//!
//! Chromium, ChromeDriver and the HTTP calls are the tests' own client code,
//! `rtcgear-test-support` (a crate that depends on none of ours, as xtask does not).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rtcgear_test_support::http;
use rtcgear_test_support::ports::{free_tcp_port, free_udp_port};
use rtcgear_test_support::process::ChildGuard;
use rtcgear_test_support::programs;
use rtcgear_test_support::rpicam;
use rtcgear_test_support::webdriver::{Browser, Launch};

use super::Target;

/// Small and slow enough for an emulated encoder on two shared cores.
const SIZE: (u32, u32) = (320, 240);
const FPS: u32 = 10;
/// How long the emulated server may take to answer HTTP.
const SERVER_START_LIMIT: Duration = Duration::from_secs(90);
/// How long Chromium may take from loading the page to showing decoded frames.
const PLAY_LIMIT: Duration = Duration::from_secs(120);
/// How long the frames are counted once the video plays.
const MEASURE: Duration = Duration::from_secs(5);
/// At least this many frames must be decoded while measuring (a quarter of the frame rate).
const MIN_FRAMES: u64 = (FPS as u64 * 5) / 4;
/// How long one WebDriver command may take (loading the emulated server's page is one).
const WEBDRIVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the smoke test of `binary` (a `target` build) and says what it saw: the test
/// pattern, and with `rpicam` both Pi camera paths through a stand-in `rpicam-vid` (the
/// hardware encoder's H.264 passed through, as on a Pi 4; raw frames encoded by x264, as on a
/// Pi 5).
pub fn run(root: &Path, target: &Target, binary: &Path, rpicam: bool) -> Result<(), String> {
    let title = format!(
        "smoke test: {} under {} to Chromium",
        target.triple, target.qemu
    );
    eprintln!("\n==> {title}");
    let started = Instant::now();
    let chromedriver = find_program("chromedriver", "chromium-driver")?;
    let chromium = find_program("chromium", "chromium")?;
    let qemu = find_program(target.qemu, "qemu-user")?;
    let work = root.join("target/pi").join(target.triple).join("smoke");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;

    // `--version` first: it proves the loader and every library resolve under qemu.
    let version = Command::new(&qemu)
        .arg(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    if !version.status.success() {
        return Err(format!(
            "{} {} --version failed: {}",
            target.qemu,
            binary.display(),
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    eprintln!(
        "emulated: {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );

    let mut cases = vec![Case {
        name: "test pattern",
        source: vec!["--source", "test"],
        env: None,
    }];
    // The stand-in writes what rpicam-vid writes (raw YUV420 or Annex B H.264), made by the
    // host's ffmpeg; the emulated rtcgear runs it as a child like the real one.
    let standin = rpicam::standin();
    if rpicam && standin.is_file() {
        let standin = standin.display().to_string();
        cases.push(Case {
            name: "pi:0, hardware H.264 passed through (Pi 4, 3, Zero 2)",
            source: vec!["--source", "pi:0", "--pi-codec", "h264"],
            env: Some(("RTCGEAR_RPICAM_VID", standin.clone())),
        });
        cases.push(Case {
            name: "pi:0, raw frames encoded by x264 (Pi 5)",
            source: vec!["--source", "pi:0", "--pi-codec", "yuv420"],
            env: Some(("RTCGEAR_RPICAM_VID", standin)),
        });
    } else if rpicam {
        eprintln!(
            "note: {} is missing: only the test pattern is streamed",
            standin.display()
        );
    }

    let launch = Launch::new(chromedriver, chromium)
        .profile(work.join("chromium-profile"))
        .timeout(WEBDRIVER_TIMEOUT);
    let browser = Browser::launch(launch)?;
    for (n, case) in cases.iter().enumerate() {
        let log = work.join(format!("server-{n}.log"));
        let seen = case.play(&qemu, binary, &browser, &log)?;
        eprintln!("{}: {seen}", case.name);
    }
    eprintln!(
        "<== {title}: {} streams played, {:.0} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One way of serving: the source arguments and the environment they need.
struct Case {
    name: &'static str,
    source: Vec<&'static str>,
    env: Option<(&'static str, String)>,
}

impl Case {
    /// Serves this case under qemu, has Chromium play it, stops the server with SIGTERM, and
    /// says what was seen.
    fn play(
        &self,
        qemu: &Path,
        binary: &Path,
        browser: &Browser,
        log_path: &Path,
    ) -> Result<String, String> {
        let started = Instant::now();
        let http_port = free_tcp_port();
        let udp_port = free_udp_port();
        let log = std::fs::File::create(log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let size = format!("{}x{}", SIZE.0, SIZE.1);
        let mut command = Command::new(qemu);
        command
            .arg(binary)
            .arg("serve")
            .args(&self.source)
            .args(["--bind", "127.0.0.1"])
            .args(["--port", &http_port.to_string()])
            .args(["--udp-port", &udp_port.to_string()])
            .args(["--size", &size, "--fps", &FPS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((name, value)) = &self.env {
            command.env(name, value);
        }
        let server = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
        let mut server = ChildGuard::new(server).announce("the emulated server");
        let addr = format!("127.0.0.1:{http_port}");
        let name = self.name;
        let server_log = || {
            let text = std::fs::read_to_string(log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("\n{} says:\n{}", log_path.display(), tail.join("\n"))
        };

        let deadline = Instant::now() + SERVER_START_LIMIT;
        loop {
            if let Some(status) = server.try_wait() {
                return Err(format!(
                    "{name}: the emulated server exited ({status}){}",
                    server_log()
                ));
            }
            match http::try_request(&format!("http://{addr}/api/streams"), "GET", None, &[]) {
                Ok((200, _, _)) => break,
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "{name}: the emulated server did not answer http://{addr}/api/streams \
                         within {SERVER_START_LIMIT:?}{}",
                        server_log()
                    ))
                }
                _ => thread::sleep(Duration::from_millis(250)),
            }
        }

        browser.try_goto(&format!("http://{addr}/"))?;
        let deadline = Instant::now() + PLAY_LIMIT;
        let playing = loop {
            let state = browser.try_player_state()?;
            if state.playing() {
                break state;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name}: Chromium did not play the emulated stream within {PLAY_LIMIT:?} \
                     (state {}, {} frames, {}x{}){}",
                    state.state,
                    state.frames,
                    state.width,
                    state.height,
                    server_log()
                ));
            }
            if let Some(status) = server.try_wait() {
                return Err(format!(
                    "{name}: the emulated server exited ({status}){}",
                    server_log()
                ));
            }
            thread::sleep(Duration::from_millis(250));
        };
        let first_frame = started.elapsed();
        if (playing.width, playing.height) != SIZE {
            return Err(format!(
                "{name}: Chromium plays {}x{}, the server was asked for {size}",
                playing.width, playing.height
            ));
        }
        let before = browser.try_player_state()?.frames;
        thread::sleep(MEASURE);
        let after = browser.try_player_state()?;
        let frames = after.frames.saturating_sub(before);
        if !after.connected() || frames < MIN_FRAMES {
            return Err(format!(
                "{name}: Chromium decoded only {frames} frames in {MEASURE:?} (state {}; at \
                 least {MIN_FRAMES} expected){}",
                after.state,
                server_log()
            ));
        }

        // systemd stops the service with SIGTERM: the emulated server must end cleanly on it.
        let pid = server.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = server.wait_for(Duration::from_secs(20)).ok_or_else(|| {
            format!(
                "{name}: the emulated server did not stop within 20 s of SIGTERM{}",
                server_log()
            )
        })?;
        if !status.success() {
            return Err(format!(
                "{name}: the emulated server ended with {status} on SIGTERM{}",
                server_log()
            ));
        }
        Ok(format!(
            "first frame in Chromium {:.1} s after the server started, then {frames} frames of \
             {size} in {:.0} s ({:.1} fps of {FPS}); clean stop on SIGTERM",
            first_frame.as_secs_f64(),
            MEASURE.as_secs_f64(),
            frames as f64 / MEASURE.as_secs_f64(),
        ))
    }
}

/// Finds `program` on the PATH, or says which Debian package has it.
fn find_program(program: &str, package: &str) -> Result<PathBuf, String> {
    programs::find(program)
        .ok_or_else(|| format!("{program} is not installed: apt-get install {package} (as root)"))
}
