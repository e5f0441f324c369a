//! The `rtcgear` binary as a user runs it: help, bad input and its exit codes, `serve` answering
//! HTTP and stopping on SIGTERM/SIGINT, `encode` and `export-web`. Every child process is
//! bounded in time and killed if it overstays, so no test can hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rtcgear_test_support::clips::Clip;
use rtcgear_test_support::live::LiveStream;
use rtcgear_test_support::ports::free_tcp_port;
use rtcgear_test_support::rpicam;
use rtcgear_test_support::tempdir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_rtcgear");

/// A child that is killed when dropped, so a failing assertion leaves no process behind.
struct Running {
    child: Child,
    stdout_lines: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Running {
    fn spawn(args: &[&str]) -> Running {
        Running::spawn_with_env(args, &[])
    }

    fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            // Logs at their default level, whatever the caller's environment says.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rtcgear");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // Both pipes are drained all along, so the child never blocks on a full pipe.
        let (tx, stdout_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        Running {
            child,
            stdout_lines,
            stderr: Some(stderr),
        }
    }

    /// Waits for the child to exit within `limit`; kills it and fails the test otherwise.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "rtcgear did not exit within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next stdout line, or `None` after `limit` or at the end of output.
    fn next_line(&self, limit: Duration) -> Option<String> {
        self.stdout_lines.recv_timeout(limit).ok()
    }

    /// Everything on stderr; only once the child has exited.
    fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .map(|thread| thread.join().unwrap_or_default())
            .unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished run printed, and how it ended.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `rtcgear args` to the end, within `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut running = Running::spawn(args);
    let status = running.wait(limit);
    let mut stdout = String::new();
    while let Some(line) = running.next_line(Duration::from_secs(2)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    Output {
        code: status.code(),
        stdout,
        stderr: running.stderr_text(),
    }
}

const QUICK: Duration = Duration::from_secs(10);

#[test]
fn help_lists_the_commands_and_the_serve_flags() {
    let top = run(&["--help"], QUICK);
    assert_eq!(top.code, Some(0), "{}", top.stderr);
    for command in ["serve", "encode", "export-web"] {
        assert!(
            top.stdout.contains(command),
            "--help lacks {command}:\n{}",
            top.stdout
        );
    }

    let serve = run(&["serve", "--help"], QUICK);
    assert_eq!(serve.code, Some(0), "{}", serve.stderr);
    for flag in [
        "--source",
        "--stream",
        "--bind",
        "--port",
        "--udp-port",
        "--size",
        "--fps",
        "--bitrate",
        "--web-dir",
        "--ice-server",
        "--turn-secret",
        "--turn-ttl",
        "--public-ip",
        "--max-viewers",
        "-v, --verbose",
    ] {
        assert!(
            serve.stdout.contains(flag),
            "serve --help lacks {flag}:\n{}",
            serve.stdout
        );
    }
}

/// Checks that `serve ARGS` exits with `code` and a message on stderr naming `flag`.
fn check_refused(args: &[&str], code: i32, flag: &str, why: &str) {
    // On a free loopback port, so that a bug that lets the input through still cannot clash
    // with anything; the time limit then ends it.
    let mut all = vec![
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--udp-port",
        "0",
    ];
    // `--bind` given twice would be a clap error of its own.
    if args.contains(&"--bind") {
        all.truncate(1);
        all.extend(["--port", "0", "--udp-port", "0"]);
    }
    all.extend(args);
    let out = run(&all, QUICK);
    assert_eq!(out.code, Some(code), "{args:?}: stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(flag) && out.stderr.contains(why),
        "{args:?}: stderr lacks {flag:?} and {why:?}:\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("http://"),
        "{args:?} served:\n{}",
        out.stdout
    );
}

#[test]
fn bad_values_are_usage_errors() {
    check_refused(&["--size", "12"], 2, "--size", "WIDTHxHEIGHT");
    check_refused(&["--size", "321x240"], 2, "--size", "even");
    check_refused(&["--fps", "0"], 2, "--fps", "1..=240");
    check_refused(
        &["--ice-server", "turn:alice@host"],
        2,
        "--ice-server",
        "USER:PASS",
    );
    check_refused(
        &["--ice-server", "turn:alice:p%4@host"],
        2,
        "--ice-server",
        "%40",
    );
    check_refused(&["--bind", "nonsense"], 2, "--bind", "nonsense");
    check_refused(&["--latency", "fast"], 2, "--latency", "balanced");
    check_refused(
        &["--tcp-port", "9000", "--no-tcp"],
        2,
        "--tcp-port",
        "--no-tcp",
    );
    check_refused(
        &["--public-ip", "no-such-host.invalid"],
        2,
        "--public-ip",
        "cannot resolve the host name \"no-such-host.invalid\"",
    );
    check_refused(&["--public-ip", "10.0.0.0/8"], 2, "--public-ip", "neither");
    check_refused(
        &["--format", "purple"],
        2,
        "--format",
        "yuyv, nv12, yu12, mjpeg or h264",
    );
}

#[test]
fn unusable_settings_exit_1_naming_the_flag() {
    check_refused(
        &["--source", "/dev/video9"],
        1,
        "--source",
        "/dev/video9: no such device",
    );
    check_refused(
        &["--source", "no-such-clip.mp4"],
        1,
        "--source",
        "no such file",
    );
    check_refused(
        &["--source", "ftp://host/x"],
        1,
        "--source",
        "unknown URL scheme",
    );
    check_refused(&["--source", "pi:x"], 1, "--source", "pi:N");
    // A camera's H.264 is passed through: nothing here decodes it for a transform.
    check_refused(
        &["--source", "/dev/video9", "--format", "h264", "--stabilize"],
        1,
        "--format h264",
        "--stabilize needs the pictures",
    );
    check_refused(
        &["--source", "/dev/video9", "--format", "h264"],
        1,
        "--source",
        "/dev/video9: no such device",
    );
    check_refused(
        &["--format", "yuyv"],
        1,
        "--format",
        "applies to V4L2 cameras only",
    );
    check_refused(&["--stream", "=test"], 1, "--stream", "name is empty");
    check_refused(
        &["--ice-server", "turn:127.0.0.1:3478"],
        1,
        "--ice-server turn:127.0.0.1:3478",
        "needs --turn-secret",
    );
    check_refused(&["--stream", "yard"], 1, "--stream", "NAME=SOURCE");
    check_refused(
        &["--web-dir", "/nonexistent"],
        1,
        "--web-dir",
        "/nonexistent",
    );
}

/// Starts `rtcgear serve` on free loopback ports and returns it with its URL.
fn serve() -> (Running, String) {
    serve_with(&["--size", "320x240"], &[])
}

/// Starts `rtcgear serve` on free loopback ports with more flags and environment variables,
/// and returns it with its URL.
fn serve_with(flags: &[&str], env: &[(&str, &str)]) -> (Running, String) {
    let mut args = vec![
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--udp-port",
        "0",
    ];
    args.extend_from_slice(flags);
    let running = Running::spawn_with_env(&args, env);
    let deadline = Instant::now() + QUICK;
    while let Some(line) = running.next_line(deadline.saturating_duration_since(Instant::now())) {
        let line = line.trim();
        if line.starts_with("http://") {
            return (running, line.to_string());
        }
    }
    let mut running = running;
    let _ = running.child.kill();
    panic!("no URL on stdout; stderr:\n{}", running.stderr_text());
}

/// `GET url + path` over plain HTTP/1.1; returns the status line and the body.
fn get(url: &str, path: &str) -> (String, String) {
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .expect("a URL like http://127.0.0.1:PORT/");
    let addr: SocketAddr = authority.parse().expect("an IP and a port");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("setting a timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("sending the request");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("reading the reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("headers and a body");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

fn check_serve_stops_on(signal: &str) {
    let (mut running, url) = serve();
    let port = url
        .trim_end_matches('/')
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .expect("a port in the URL");
    assert!(url.starts_with("http://127.0.0.1:") && port != 0, "{url}");
    let (status, body) = get(&url, "/api/streams");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    assert!(
        body.trim_start().starts_with(['[', '{']),
        "not JSON: {body}"
    );
    assert!(body.contains("\"width\":320"), "{body}");

    running.signal(signal);
    let status = running.wait(Duration::from_secs(5));
    let log = running.stderr_text();
    assert_eq!(
        status.code(),
        Some(0),
        "after SIG{signal}: {status}; stderr:\n{log}"
    );
    // A log that goes to a pipe (or a file, or journald) has no colour escapes in it.
    assert!(log.contains("INFO") && log.contains("stopped"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour escapes in a piped log:\n{log:?}"
    );
}

/// `--public-ip` takes several addresses and host names, announced with the media port.
#[test]
fn public_addresses_and_host_names_are_announced() {
    let (mut running, _) = serve_with(
        &[
            "--size",
            "320x240",
            "--public-ip",
            "192.0.2.7",
            "--public-ip",
            "localhost",
        ],
        &[],
    );
    running.signal("TERM");
    running.wait(Duration::from_secs(5));
    let log = running.stderr_text();
    let line = log
        .lines()
        .find(|line| line.contains("ICE candidates"))
        .unwrap_or_else(|| panic!("no candidates logged:\n{log}"));
    assert!(line.contains("192.0.2.7:"), "{line}");
    // localhost is 127.0.0.1, the bound address: announced once.
    assert_eq!(line.matches("127.0.0.1:").count(), 1, "{line}");
}

#[test]
fn serve_answers_and_stops_on_sigterm() {
    check_serve_stops_on("TERM");
}

#[test]
fn serve_answers_and_stops_on_sigint() {
    check_serve_stops_on("INT");
}

#[test]
fn serve_on_a_taken_port_says_so() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = taken.local_addr().expect("its address").port().to_string();
    // Serving with `flags` exits 1, and stderr holds each of `words`.
    let refused = |flags: &[&str], words: &[&str]| {
        let mut args = vec!["serve", "--bind", "127.0.0.1", "--size", "320x240"];
        args.extend(flags);
        let out = run(&args, QUICK);
        assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
        assert!(
            words.iter().all(|w| out.stderr.contains(w)),
            "{words:?} in {}",
            out.stderr
        );
    };
    refused(&["--port", &port], &[&port, "--port"]);
    refused(
        &["--port", "0", "--udp-port", "0", "--tcp-port", &port],
        &["ICE-TCP", "--tcp-port"],
    );
    drop(taken);
}

/// ICE-TCP is on by default, on the HTTP port; `--tcp-port` moves it and `--no-tcp` turns it
/// off, as the log says.
#[test]
fn ice_tcp_follows_its_flags() {
    let logged = |flags: &[&str]| -> String {
        let mut all = vec!["--size", "320x240"];
        all.extend(flags);
        let (mut running, _) = serve_with(&all, &[]);
        running.signal("TERM");
        running.wait(Duration::from_secs(5));
        let log = running.stderr_text();
        log.lines()
            .find(|line| line.contains("ICE candidates"))
            .unwrap_or_else(|| panic!("no candidates logged:\n{log}"))
            .to_string()
    };
    assert!(logged(&[]).contains("and ICE-TCP on TCP "));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let line = logged(&["--tcp-port", &port.to_string()]);
    assert!(
        line.contains(&format!("and ICE-TCP on TCP {port};")),
        "{line}"
    );
    let line = logged(&["--no-tcp"]);
    assert!(!line.contains("ICE-TCP"), "{line}");
}

#[test]
fn encode_writes_the_frames_asked_for() {
    let dir = TempDir::new("encode");
    let file = dir.path().join("x.h264");
    let file_arg = file.to_str().expect("a UTF-8 temporary path");
    let out = run(
        &[
            "encode", "-o", file_arg, "--frames", "30", "--size", "320x240",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(out.stdout.contains("wrote 30 frames"), "{}", out.stdout);
    assert!(file.metadata().expect("the output exists").len() > 0);

    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&file)
        .output()
        .expect("running ffprobe");
    let report = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(report.contains("nb_read_frames=30"), "{report}");
    assert!(
        report.contains("width=320") && report.contains("height=240"),
        "{report}"
    );
}

#[test]
fn devices_lists_cameras_or_says_there_are_none() {
    let out = run(&["devices"], QUICK);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let has_cameras = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
        .unwrap_or(false);
    if !has_cameras {
        assert!(
            out.stdout.contains("no V4L2 cameras found"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn export_web_writes_once_unless_forced() {
    let dir = TempDir::new("export");
    let target = dir.path().join("web");
    let target_arg = target.to_str().expect("a UTF-8 temporary path");
    let first = run(&["export-web", target_arg], QUICK);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let index = target.join("templates/index.html");
    let player = target.join("static/player.js");
    assert!(index.is_file() && player.is_file(), "{}", first.stdout);
    assert!(first.stdout.contains("index.html"), "{}", first.stdout);

    // A change of ours survives a second run without --force.
    std::fs::write(&player, "// mine\n").expect("editing player.js");
    let second = run(&["export-web", target_arg], QUICK);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stdout.contains("nothing written"),
        "{}",
        second.stdout
    );
    assert!(!second.stdout.contains("wrote "), "{}", second.stdout);
    assert_eq!(
        std::fs::read_to_string(&player).expect("reading player.js"),
        "// mine\n"
    );

    let forced = run(&["export-web", "--force", target_arg], QUICK);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    assert_ne!(
        std::fs::read_to_string(&player).expect("reading player.js"),
        "// mine\n"
    );
}

#[test]
fn stabilize_writes_every_frame_into_the_container_of_its_extension() {
    let dir = TempDir::new("stabilize");
    let shaky = dir.path().join("shaky.mp4");
    // A textured scene seen through a crop window that jumps a few pixels every frame.
    Clip::testsrc2(360, 240, 25, 2)
        .args(&["-vf", "crop=320:200:20+8*sin(n*2.1):20+8*cos(n*1.7)"])
        .args(&["-c:v", "libx264"])
        .make(&shaky);
    for extension in ["mp4", "mkv"] {
        let steady = dir.path().join(format!("steady.{extension}"));
        let out = run(
            &[
                "stabilize",
                shaky.to_str().expect("UTF-8"),
                steady.to_str().expect("UTF-8"),
                "--border-size",
                "8",
            ],
            Duration::from_secs(120),
        );
        assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
        assert!(
            out.stdout.contains("wrote 50 frames of 336x216"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("estimated jitter"), "{}", out.stdout);
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,nb_read_frames",
            ])
            .args([
                "-show_entries",
                "format=format_name",
                "-of",
                "default=noprint_wrappers=1",
            ])
            .arg(&steady)
            .output()
            .expect("running ffprobe");
        let report = String::from_utf8_lossy(&probe.stdout);
        assert!(
            report.contains("codec_name=h264") && report.contains("nb_read_frames=50"),
            "{report}"
        );
        let container = if extension == "mp4" {
            "mp4"
        } else {
            "matroska"
        };
        assert!(report.contains(container), "{report}");
    }
    let refused = run(
        &["stabilize", shaky.to_str().expect("UTF-8"), "out.avi"],
        QUICK,
    );
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("OUT out.avi"), "{}", refused.stderr);
    let missing = run(&["stabilize", "/no/such.mp4", "out.mp4"], QUICK);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("IN /no/such.mp4"),
        "{}",
        missing.stderr
    );
}

/// Waits until `/api/streams` says the default stream is live (its source delivers), within
/// `limit`; returns the stream's JSON text.
fn wait_live(url: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(url, "/api/streams");
        assert!(status.contains("200"), "{status}");
        if body.contains("\"state\":\"live\"") || body.contains("\"state\":\"idle\"") {
            return body;
        }
        assert!(Instant::now() < deadline, "the source never came: {body}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `rtcgear serve` on a free loopback port with `flags`, expecting it to refuse to start:
/// returns its exit code and its stderr.
fn serve_refused(flags: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut args = vec!["serve", "--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(flags);
    let mut running = Running::spawn_with_env(&args, env);
    let status = running.wait(QUICK);
    (status.code(), running.stderr_text())
}

/// Stops a served child with SIGTERM and returns its log.
fn stop(mut running: Running) -> String {
    running.signal("TERM");
    let status = running.wait(QUICK);
    assert!(status.success(), "{status}");
    running.stderr_text()
}

fn rpicam_standin() -> String {
    rpicam::standin().to_string_lossy().into_owned()
}

#[test]
fn a_pi_camera_is_served_through_rpicam_vid_passing_hardware_h264_through() {
    let standin = rpicam_standin();
    let env = [("RTCGEAR_RPICAM_VID", standin.as_str())];
    let (running, url) = serve_with(
        &[
            "--source",
            "pi:0",
            "--pi-codec",
            "h264",
            "--size",
            "320x240",
            "--always-live",
        ],
        &env,
    );
    let streams = wait_live(&url, QUICK);
    assert!(streams.contains("\"width\":320"), "{streams}");
    let log = stop(running);
    assert!(
        log.contains("passing the Pi's hardware H.264 through"),
        "{log}"
    );
    assert!(log.contains("H.264 passed through"), "{log}");

    // Off a Pi, `auto` takes raw frames and encodes them here, and says why.
    let (running, url) = serve_with(&["--source", "pi:0", "--size", "320x240"], &env);
    wait_live(&url, QUICK);
    let log = stop(running);
    assert!(log.contains("raw frames encoded here"), "{log}");
    assert!(log.contains("no Pi hardware H.264 encoder"), "{log}");

    // No camera 5: the child's own words, naming the flag.
    let out = serve_refused(&["--source", "pi:5"], &env);
    assert_eq!(out.0, Some(1), "{}", out.1);
    assert!(out.1.contains("--source \"pi:5\""), "{}", out.1);
    assert!(out.1.contains("no cameras available"), "{}", out.1);
}

#[test]
fn a_video_page_is_resolved_by_yt_dlp_to_its_stream() {
    let dir = TempDir::new("yt-dlp");
    // The stream yt-dlp will point at: a clip on disk, as a file URL of FFmpeg's.
    let clip = Clip::testsrc2(320, 240, 30, 2)
        .h264()
        .make(&dir.path().join("clip.mp4"));
    // A stand-in yt-dlp: checks it was asked for a URL with a height limit, prints the stream.
    let calls = dir.path().join("calls.log");
    let standin = dir.path().join("yt-dlp");
    std::fs::write(
        &standin,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\n\
             case \"$*\" in *--get-url*height\\<=240*) echo 'file://{}' ;; \
             *) echo 'ERROR: unexpected arguments' >&2; exit 2 ;; esac\n",
            calls.display(),
            clip.display()
        ),
    )
    .expect("write the stand-in");
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&standin)
        .status()
        .expect("chmod");
    assert!(status.success());
    let standin = standin.to_string_lossy().into_owned();
    let env = [("RTCGEAR_YT_DLP", standin.as_str())];

    let (running, url) = serve_with(
        &[
            "--source",
            "https://www.youtube.com/watch?v=aqz-KE-bpKQ",
            "--size",
            "320x240",
            "--loop",
            "--always-live",
        ],
        &env,
    );
    wait_live(&url, QUICK);
    let log = stop(running);
    assert!(log.contains("asking yt-dlp"), "{log}");
    let asked = std::fs::read_to_string(&calls).expect("yt-dlp was run");
    assert!(
        asked.contains("https://www.youtube.com/watch?v=aqz-KE-bpKQ"),
        "{asked}"
    );

    // Any other site's page, with --stream-mode; and a yt-dlp that fails says why.
    let out = serve_refused(
        &["--stream-mode", "--source", "https://video.example/watch/1"],
        &env,
    );
    assert_eq!(out.0, Some(1), "{}", out.1);
    assert!(out.1.contains("--stream-mode"), "{}", out.1);
    assert!(out.1.contains("unexpected arguments"), "{}", out.1);
}

#[test]
fn a_video_page_whose_stream_drops_is_resolved_again_by_yt_dlp() {
    let dir = TempDir::new("yt-dlp-again");
    // Passed through, so one connection opens it: FFmpeg's `-listen 1` serves one client.
    let clip = Clip::testsrc2(320, 240, 30, 2)
        .h264()
        .args(&["-profile:v", "baseline"])
        .make(&dir.path().join("clip.mp4"));
    // A stand-in yt-dlp that answers with whatever URL the test puts in `answer`, as the real
    // one answers with a fresh, signed URL each time.
    let (calls, answer, standin) = (
        dir.path().join("calls.log"),
        dir.path().join("answer"),
        dir.path().join("yt-dlp"),
    );
    std::fs::write(
        &standin,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\ncat '{}'\n",
            calls.display(),
            answer.display()
        ),
    )
    .expect("write the stand-in");
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&standin)
        .status()
        .expect("chmod");
    assert!(status.success());
    let (first_port, second_port) = (free_tcp_port(), free_tcp_port());
    let url_on = |port: u16| format!("http://127.0.0.1:{port}/live.ts\n");
    std::fs::write(&answer, url_on(first_port)).expect("write the answer");
    let first = LiveStream::start(&clip, first_port);

    let standin = standin.to_string_lossy().into_owned();
    let (running, url) = serve_with(
        &[
            "--source",
            "https://www.youtube.com/watch?v=aqz-KE-bpKQ",
            "--always-live",
        ],
        &[("RTCGEAR_YT_DLP", standin.as_str())],
    );
    wait_live(&url, QUICK);
    // The first URL expires with its server; yt-dlp now answers with another.
    std::fs::write(&answer, url_on(second_port)).expect("write the answer");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(&url, "/api/streams");
        if body.contains("\"state\":\"reconnecting\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the drop never showed: {body}");
        thread::sleep(Duration::from_millis(100));
    }
    let _second = LiveStream::start(&clip, second_port);
    wait_live(&url, Duration::from_secs(30));
    let log = stop(running);
    assert!(log.contains("asking yt-dlp again"), "{log}");
    assert!(
        log.contains(&format!("yt-dlp found a stream on 127.0.0.1:{second_port}")),
        "{log}"
    );
    let asked = std::fs::read_to_string(&calls).expect("yt-dlp was run");
    assert!(asked.lines().count() >= 2, "{asked}");
    assert!(
        asked
            .lines()
            .all(|line| line.ends_with("https://www.youtube.com/watch?v=aqz-KE-bpKQ")),
        "{asked}"
    );
}

#[test]
fn a_turn_secret_gives_the_page_fresh_credentials_and_is_never_printed() {
    const SECRET: &str = "cli-north-wind";
    let (running, url) = serve_with(
        &[
            "--size",
            "320x240",
            "--ice-server",
            "turn:127.0.0.1:3478",
            "--turn-ttl",
            "2",
            "-vv",
        ],
        &[("RTCGEAR_TURN_SECRET", SECRET)],
    );
    let (status, page) = get(&url, "/");
    assert!(status.contains("200"), "{status}");
    // HTML-escaped JSON in the page's data-ice-servers.
    for part in [
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
        ":rtcgear&quot;",
        "&quot;credential&quot;:&quot;",
    ] {
        assert!(page.contains(part), "the page lacks {part}:\n{page}");
    }
    assert!(!page.contains(SECRET), "{page}");
    let log = stop(running);
    assert!(!log.contains(SECRET), "{log}");
}
