//! The smoke test of a cross-built `rtcgear`: `rtcgear serve` under qemu streams over
//! loopback to the native headless Chromium, which must play it: the test pattern, then
//! `pi:0` through the tests' stand-in `rpicam-vid` in both camera paths.
//!
//! xtask depends on none of the workspace's crates, so this talks to ChromeDriver itself: W3C
//! WebDriver is a few JSON requests over plain HTTP, and the page's state comes back as one
//! string. The Chromium flags are those of `rtcgear_tests::Browser`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

/// Page state as one space-separated string: connection state, frames decoded, video size.
const STATE_SCRIPT: &str = "const r = window.rtcgear, v = document.getElementById('video'); \
    return [r ? r.state : 'loading', r && r.stats ? (r.stats.framesDecoded || 0) : 0, \
    v ? v.videoWidth : 0, v ? v.videoHeight : 0].join(' ')";

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
    let standin = root.join("capture/tests/data/rpicam-vid-standin");
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

    let browser = Browser::start(&chromedriver, &chromium, &work.join("chromium-profile"))?;
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
        let http_port = free_tcp_port()?;
        let udp_port = free_udp_port()?;
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
        let mut server = Guard::new(server, "the emulated server");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
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
            match request(addr, "GET", "/api/streams", None) {
                Ok((200, _)) => break,
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

        browser.goto(&format!("http://{addr}/"))?;
        let deadline = Instant::now() + PLAY_LIMIT;
        let playing = loop {
            let state = browser.state()?;
            if state.connected && state.frames > 0 && state.width > 0 {
                break state;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name}: Chromium did not play the emulated stream within {PLAY_LIMIT:?} \
                     (state {}, {} frames, {}x{}){}",
                    state.name,
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
        let before = browser.state()?.frames;
        thread::sleep(MEASURE);
        let after = browser.state()?;
        let frames = after.frames.saturating_sub(before);
        if !after.connected || frames < MIN_FRAMES {
            return Err(format!(
                "{name}: Chromium decoded only {frames} frames in {MEASURE:?} (state {}; at \
                 least {MIN_FRAMES} expected){}",
                after.name,
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

/// A child process that is killed and reaped when the guard goes, whatever happened.
struct Guard {
    child: Option<Child>,
    what: &'static str,
}

impl Guard {
    fn new(child: Child, what: &'static str) -> Guard {
        Guard {
            child: Some(child),
            what,
        }
    }

    fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Waits up to `limit` for the process to end.
    fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.kill().is_ok() {
                eprintln!("(stopped {})", self.what);
            }
            let _ = child.wait();
        }
    }
}

/// Headless Chromium under ChromeDriver, one session.
struct Browser {
    /// Kept for its drop, which stops ChromeDriver after the session is deleted.
    _driver: Guard,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

struct PageState {
    name: String,
    connected: bool,
    frames: u64,
    width: u32,
    height: u32,
}

impl Browser {
    fn start(chromedriver: &Path, chromium: &Path, profile: &Path) -> Result<Browser, String> {
        let port = free_tcp_port()?;
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver.display()))?;
        let driver = Guard::new(child, "chromedriver");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(request(addr, "GET", "/status", None), Ok((200, _))) {
            if Instant::now() > deadline {
                return Err("chromedriver did not answer within 20 s".into());
            }
            thread::sleep(Duration::from_millis(100));
        }
        std::fs::create_dir_all(profile)
            .map_err(|e| format!("cannot create {}: {e}", profile.display()))?;
        let mut args: Vec<String> = [
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
        .map(|a| json_string(a))
        .collect();
        args.push(json_string(&format!(
            "--user-data-dir={}",
            profile.display()
        )));
        let capabilities = format!(
            "{{\"capabilities\":{{\"alwaysMatch\":{{\"browserName\":\"chrome\",\
             \"goog:chromeOptions\":{{\"binary\":{},\"args\":[{}]}}}}}}}}",
            json_string(&chromium.display().to_string()),
            args.join(",")
        );
        let (status, body) = request(addr, "POST", "/session", Some(&capabilities))?;
        let session = json_string_field(&body, "sessionId")
            .filter(|_| status == 200)
            .ok_or_else(|| {
                format!(
                    "ChromeDriver opened no Chromium session ({status}): {}",
                    json_string_field(&body, "message").unwrap_or(body.clone())
                )
            })?;
        Ok(Browser {
            _driver: driver,
            addr,
            session,
            profile: profile.to_path_buf(),
        })
    }

    fn call(&self, method: &str, path: &str, body: &str) -> Result<String, String> {
        let path = format!("/session/{}{path}", self.session);
        let (status, reply) = request(self.addr, method, &path, Some(body))?;
        if status != 200 {
            return Err(format!(
                "WebDriver {method} {path} answered {status}: {}",
                json_string_field(&reply, "message").unwrap_or(reply.clone())
            ));
        }
        Ok(reply)
    }

    fn goto(&self, url: &str) -> Result<(), String> {
        self.call("POST", "/url", &format!("{{\"url\":{}}}", json_string(url)))
            .map(drop)
    }

    fn state(&self) -> Result<PageState, String> {
        let body = format!("{{\"script\":{},\"args\":[]}}", json_string(STATE_SCRIPT));
        let reply = self.call("POST", "/execute/sync", &body)?;
        let value = json_string_field(&reply, "value")
            .ok_or_else(|| format!("the page's state script returned {reply}"))?;
        let mut fields = value.split_whitespace();
        let name = fields.next().unwrap_or("").to_string();
        let mut number = || {
            fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let frames = number();
        let width = u32::try_from(number()).unwrap_or(0);
        let height = u32::try_from(number()).unwrap_or(0);
        Ok(PageState {
            connected: name == "connected",
            name,
            frames,
            width,
            height,
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = request(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One HTTP/1.1 request to a loopback server: the status and the body. Every step is bounded.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let limit = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{method} http://{addr}{path}: {e}"))?;
    stream
        .set_read_timeout(Some(limit))
        .and_then(|()| stream.set_write_timeout(Some(limit)))
        .map_err(|e| format!("{method} http://{addr}{path}: {e}"))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| format!("{method} http://{addr}{path}: {e}"))?;

    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let read_line = |reader: &mut BufReader<TcpStream>, line: &mut String| {
        line.clear();
        reader
            .read_line(line)
            .map_err(|e| format!("{method} http://{addr}{path}: {e}"))
    };
    read_line(&mut reader, &mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} http://{addr}{path}: bad status line {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        if read_line(&mut reader, &mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse::<usize>().ok();
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut bytes = Vec::new();
    let io = |e: std::io::Error| format!("{method} http://{addr}{path}: {e}");
    if chunked {
        loop {
            read_line(&mut reader, &mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("{method} http://{addr}{path}: bad chunk {line:?}"))?;
            if size == 0 {
                break;
            }
            let start = bytes.len();
            bytes.resize(start + size, 0);
            reader.read_exact(&mut bytes[start..]).map_err(io)?;
            read_line(&mut reader, &mut line)?;
        }
    } else if let Some(length) = length {
        bytes.resize(length, 0);
        reader.read_exact(&mut bytes).map_err(io)?;
    } else {
        reader.read_to_end(&mut bytes).map_err(io)?;
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first string value of `"key"` in a JSON text, unescaped; `None` if there is none or
/// the value is not a string. Enough for WebDriver's replies, whose keys are unique.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let quoted = json_string(key);
    let mut rest = json;
    loop {
        let at = rest.find(&quoted)?;
        rest = &rest[at + quoted.len()..];
        let after = rest.trim_start();
        if let Some(value) = after.strip_prefix(':') {
            return parse_json_string(value.trim_start());
        }
    }
}

/// Reads the JSON string literal at the start of `text`.
fn parse_json_string(text: &str) -> Option<String> {
    let mut chars = text.strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
}

fn free_tcp_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port on loopback: {e}"))
}

fn free_udp_port() -> Result<u16, String> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port on loopback: {e}"))
}

/// Finds `program` on the PATH, or says which Debian package has it.
fn find_program(program: &str, package: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{program} is not installed: apt-get install {package} (as root)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_round_trip() {
        let text = "a \"quoted\" \\ path\nwith\ttabs and \u{1}";
        assert_eq!(parse_json_string(&json_string(text)).as_deref(), Some(text));
    }

    #[test]
    fn string_fields_are_found_past_other_keys() {
        let json = r#"{"value":{"sessionId":"ab\u0063","capabilities":{}}}"#;
        assert_eq!(json_string_field(json, "sessionId").as_deref(), Some("abc"));
        assert_eq!(json_string_field(json, "value"), None);
        assert_eq!(json_string_field(json, "missing"), None);
    }
}
