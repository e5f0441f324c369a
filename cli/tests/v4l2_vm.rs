//! Real kernel V4L2 cameras in Chromium: `rtcgear serve` runs in a VM with the `vivid` virtual
//! camera (`scripts/vivid-serve.sh`, built on `scripts/v4l2-vm.sh`), and headless
//! Chromium on this machine plays it through the VM's two forwarded loopback ports. A second
//! test has `v4l2loopback` stand in for a camera with its own H.264 encoder, passed through.
//!
//! Ignored by a plain `cargo test`, because they need root and qemu and take about half a
//! minute each; the H.264 camera also needs `RTCGEAR_V4L2LOOPBACK_KO` naming a
//! `v4l2loopback.ko` built for the VM's kernel (`scripts/v4l2loopback.sh`). `scripts/test.sh`
//! runs both, after the capture tests in the same VM:
//!
//! ```text
//! cargo test -p rtcgear --test v4l2_vm -- --ignored --nocapture
//! ```
//!
//! Each test leaves a screenshot of what Chromium showed in the VM's work folder
//! (`target/v4l2-vm/screenshots/`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rtcgear_test_support::http;
use rtcgear_test_support::ports::{free_tcp_port, free_udp_port};
use rtcgear_test_support::webdriver::Browser;
use serde_json::{json, Value};

/// vivid offers this size and frame rate exactly; software emulation encodes it in real time.
const SIZE: (u64, u64) = (320, 180);
const FPS: u64 = 10;
/// Boot, then the server's first answer (about 10 s here; the VM tool's first run fills its
/// cache first, which can take a minute).
const SERVER_START_LIMIT: Duration = Duration::from_secs(240);
/// From loading the page to decoded frames.
const PLAY_LIMIT: Duration = Duration::from_secs(60);
/// How long the frames are counted once the video plays.
const MEASURE: Duration = Duration::from_secs(5);
/// How far a colour in the decoded picture may be from the one painted, per channel (0-255):
/// compression and the limited-range conversions move it a little, swapped chroma far more.
const TOLERANCE: i64 = 56;
/// Colour bars at 75%: white (grey), yellow, cyan, green, magenta, red, blue, black.
const BARS_75: [[i64; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];
/// How long a line may take to reach the VM's console log after the server answers.
const LOG_LIMIT: Duration = Duration::from_secs(30);

/// The tests take turns: a VM and a browser each are what two cores hold.
fn one_vm_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace")
}

/// The VM tool's work folder, which `scripts/vivid-serve.sh` shares (a relative
/// `V4L2VM_WORK` is taken from the workspace, as the script takes it).
fn vm_work() -> PathBuf {
    let work = std::env::var_os("V4L2VM_WORK")
        .map_or_else(|| PathBuf::from("target/v4l2-vm"), PathBuf::from);
    workspace().join(work)
}

/// `rtcgear serve` in the VM of `scripts/vivid-serve.sh`, its whole process group (the script
/// execs `timeout`, which runs qemu) killed on drop.
struct Vm {
    child: Child,
    console: PathBuf,
    http_port: u16,
}

impl Vm {
    /// Boots the VM `name` with `env` for the script and `args` for `rtcgear serve`, and
    /// waits until the server answers through the forwarded port. The VM's console (the
    /// server's log) is kept as `logs/NAME.log` in the VM's work folder.
    fn serve(name: &str, env: &[(&str, &str)], args: &[&str]) -> Vm {
        let logs = vm_work().join("logs");
        std::fs::create_dir_all(&logs).expect("the log folder is created");
        let console = logs.join(format!("{name}.log"));
        let (http_port, udp_port) = (free_tcp_port(), free_udp_port());
        let started = Instant::now();
        // The script becomes `timeout`, which runs qemu: if this test dies without dropping
        // the VM, the kernel kills both (qemu has its own death signal, set by the script).
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "bash"])
            .arg(workspace().join("scripts/vivid-serve.sh"))
            .args(args)
            .env("RTCGEAR", env!("CARGO_BIN_EXE_rtcgear"))
            .env("HTTP_PORT", http_port.to_string())
            .env("UDP_PORT", udp_port.to_string())
            .env("V4L2VM_WORK", vm_work())
            .env("V4L2VM_TIMEOUT", "400")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&console).expect("the console log is created"))
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("setpriv (util-linux) runs scripts/vivid-serve.sh");
        let mut vm = Vm {
            child,
            console,
            http_port,
        };
        loop {
            if let Some(status) = vm.child.try_wait().expect("the VM's state") {
                panic!("the VM stopped ({status}){}", vm.console_tail());
            }
            if answers(http_port) {
                break;
            }
            assert!(
                started.elapsed() < SERVER_START_LIMIT,
                "the server in the VM did not answer within {SERVER_START_LIMIT:?}{}",
                vm.console_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        println!(
            "the server in the VM answered {:.1} s after boot began",
            started.elapsed().as_secs_f64()
        );
        vm
    }

    /// The default stream, as `/api/streams` describes it.
    fn stream(&self) -> Value {
        let url = format!("http://127.0.0.1:{}/api/streams", self.http_port);
        let (_, _, streams) = http::request(&url, "GET", None, &[]);
        streams["streams"][0].clone()
    }

    /// Whether a line of the VM's console (the server's log) contains every one of `words`.
    fn said(&self, words: &[&str]) -> bool {
        let console = std::fs::read_to_string(&self.console).unwrap_or_default();
        console
            .lines()
            .any(|line| words.iter().all(|word| line.contains(word)))
    }

    /// Waits up to `limit` for a line of the console with every one of `words`.
    fn wait_said(&self, words: &[&str], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.said(words) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    }

    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        format!(
            "\nthe VM's console ({}) ends:\n{tail}",
            self.console.display()
        )
    }

    /// Has Chromium play the default stream and checks what it shows: the size, the frame rate
    /// (at least half of `FPS`, as the emulated VM may fall behind now and then), and the
    /// picture: `bars` are the colours (RGB) of equal vertical bars across the whole width,
    /// sampled at their centres `row` of the way down, each within `TOLERANCE` of what Chromium
    /// shows. Leaves a screenshot as `screenshots/NAME.png` in the VM's work folder.
    fn play_in_chromium(&self, name: &str, row: f64, bars: &[[i64; 3]]) {
        let browser = Browser::start();
        browser.goto(&format!("http://127.0.0.1:{}/", self.http_port));
        let asked = Instant::now();
        browser.wait_for(
            "the camera to play",
            PLAY_LIMIT,
            "return window.rtcgear.state === 'connected' && window.rtcgear.stats.framesDecoded > 0",
        );
        println!(
            "Chromium shows the camera {:.1} s after loading the page",
            asked.elapsed().as_secs_f64()
        );
        assert_eq!(
            browser.video_size(),
            json!([SIZE.0, SIZE.1]),
            "the video's size in Chromium"
        );
        let before = browser.frames_decoded();
        std::thread::sleep(MEASURE);
        let frames = browser.frames_decoded().saturating_sub(before);
        let floor = FPS * MEASURE.as_secs() / 2;
        assert!(
            frames >= floor,
            "Chromium decoded {frames} frames in {MEASURE:?} (at least {floor} expected){}",
            self.console_tail()
        );
        let seen = browser.eval(&format!(
            "const v = document.getElementById('video'); \
             const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight; \
             const g = c.getContext('2d'); g.drawImage(v, 0, 0); \
             const y = Math.floor(c.height * {row}), n = {}; \
             return Array.from({{length: n}}, (_, i) => {{ \
               const d = g.getImageData(Math.floor((i + 0.5) * c.width / n), y, 1, 1).data; \
               return [d[0], d[1], d[2]]; }})",
            bars.len()
        ));
        let seen: Vec<[i64; 3]> = serde_json::from_value(seen).expect("colours as [r, g, b]");
        let screenshots = vm_work().join("screenshots");
        std::fs::create_dir_all(&screenshots).expect("the screenshot folder is created");
        let screenshot = screenshots.join(format!("{name}.png"));
        browser.screenshot(&screenshot);
        let close =
            |a: &[i64; 3], b: &[i64; 3]| a.iter().zip(b).all(|(a, b)| (a - b).abs() <= TOLERANCE);
        assert!(
            seen.iter().zip(bars).all(|(seen, bar)| close(seen, bar)),
            "Chromium's picture has bars {seen:?}, expected {bars:?} (within {TOLERANCE}; \
             screenshot: {})",
            screenshot.display()
        );
        let stream = self.stream();
        assert_eq!(stream["state"], "live", "the camera's stream: {stream}");
        assert_eq!(stream["viewers"], 1, "the camera's stream: {stream}");
        println!(
            "{frames} frames of {}x{} in {MEASURE:?}, bars {seen:?} (screenshot: {})",
            SIZE.0,
            SIZE.1,
            screenshot.display()
        );
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the server answers `GET /api/streams` on `port`. qemu accepts a forwarded connection
/// before the guest listens, then closes it, so only an HTTP answer counts.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /api/streams HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut status = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && status.ends_with(b" 200")
}

#[test]
#[ignore = "boots a VM (root, qemu, Chromium): scripts/test.sh runs it with --ignored"]
fn a_vivid_camera_in_a_vm_plays_in_chromium() {
    let _turn = one_vm_at_a_time();
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    // vidgear's way of naming the first camera, and `rtcgear devices` beside the server.
    let devices = format!("'{}' devices", env!("CARGO_BIN_EXE_rtcgear"));
    let vm = Vm::serve(
        "vivid",
        &[("SOURCE", "0"), ("FEED", &devices)],
        &["--size", &size, "--fps", &FPS.to_string()],
    );
    let stream = vm.stream();
    assert_eq!(
        (&stream["width"], &stream["height"]),
        (&json!(SIZE.0), &json!(SIZE.1)),
        "the camera's stream: {stream}"
    );
    for line in [
        &["/dev/video0  ", "(driver vivid"][..],
        &["  YUYV "][..],
        &[&format!("    {size}  "), " 15, 12.5, 10, "][..],
    ] {
        assert!(
            vm.wait_said(line, LOG_LIMIT),
            "`rtcgear devices` printed no line with {line:?}{}",
            vm.console_tail()
        );
    }
    assert!(
        vm.wait_said(
            &["/dev/video0: ", &format!(" {size} at {FPS} fps")],
            LOG_LIMIT
        ),
        "the server does not say it opened /dev/video0 at {size}, {FPS} fps{}",
        vm.console_tail()
    );
    assert!(
        vm.wait_said(&["encoded here"], LOG_LIMIT),
        "the server does not say it encodes the camera's frames{}",
        vm.console_tail()
    );
    // vivid paints eight 75% colour bars, with text over their middle: a row near the bottom
    // of the picture crosses all eight.
    vm.play_in_chromium("vivid", 0.93, &BARS_75);
}

#[test]
#[ignore = "boots a VM (root, qemu, Chromium) with v4l2loopback: scripts/test.sh runs it with --ignored"]
fn a_camera_with_its_own_h264_is_passed_through_to_chromium() {
    let ko = std::env::var_os("RTCGEAR_V4L2LOOPBACK_KO")
        .filter(|ko| !ko.is_empty())
        .expect(
            "RTCGEAR_V4L2LOOPBACK_KO names no v4l2loopback.ko built for the VM's kernel \
             (scripts/test.sh builds one with scripts/v4l2loopback.sh)",
        );
    let ko = PathBuf::from(ko);
    assert!(
        ko.is_file(),
        "RTCGEAR_V4L2LOOPBACK_KO: {} is missing",
        ko.display()
    );
    let _turn = one_vm_at_a_time();
    // The camera's encoder: x264 Baseline, a keyframe every second, in MPEG-TS so that FFmpeg
    // can loop it and write Annex B pictures, one write per picture, into the loopback device.
    // The picture is PAL's 75% colour bars (the first one white). (The VM sees this machine's
    // files.)
    let feed = vm_work().join("feed");
    std::fs::create_dir_all(&feed).expect("the feed folder is created");
    let clip = feed.join("camera.ts");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("pal75bars=size={}x{}:rate={FPS}", SIZE.0, SIZE.1))
        .args(["-t", "4", "-c:v", "libx264", "-profile:v", "baseline"])
        .args(["-g", &FPS.to_string(), "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made no clip: {status}");
    // Then `rtcgear devices`, once the writer's first picture has made the device offer H.264
    // (asked again every 2 s, ten times at most).
    let writer = format!(
        "ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i '{}' \
         -c copy -f v4l2 /dev/video9 & \
         for i in 1 2 3 4 5 6 7 8 9 10; do listed=$('{}' devices); \
           case \"$listed\" in *H264*) break ;; esac; sleep 2; done; echo \"$listed\"",
        clip.display(),
        env!("CARGO_BIN_EXE_rtcgear")
    );
    let ko = ko.display().to_string();
    let vm = Vm::serve(
        "h264-camera",
        &[
            ("V4L2LOOPBACK_KO", &ko),
            ("FEED", &writer),
            ("SOURCE", "/dev/video9"),
        ],
        &["--format", "h264"],
    );
    assert!(
        vm.wait_said(&["H264 ", "(passed through with --format h264)"], LOG_LIMIT),
        "`rtcgear devices` does not list /dev/video9's H.264{}",
        vm.console_tail()
    );
    assert!(
        vm.wait_said(
            &["/dev/video9", "passing the camera's H.264 through"],
            LOG_LIMIT
        ),
        "the server does not say it passes the camera's H.264 through{}",
        vm.console_tail()
    );
    let mut bars = BARS_75;
    bars[0] = [255, 255, 255];
    vm.play_in_chromium("h264-camera", 0.5, &bars);
    assert!(
        !vm.said(&["encoded here"]),
        "the server encodes the H.264 camera's pictures again{}",
        vm.console_tail()
    );
}
