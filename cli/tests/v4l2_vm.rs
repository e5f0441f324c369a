//! Real kernel V4L2 cameras in Chromium: `rtcgear serve` runs in a VM with the `vivid` virtual
//! camera (`scripts/vivid-serve.sh`, built on `../shared/tools/v4l2-vm.sh`), and headless
//! Chromium on this machine plays it through the VM's two forwarded loopback ports. A second
//! test has `v4l2loopback` stand in for a camera with its own H.264 encoder, passed through.
//!
//! Opt-in, because they need root and qemu and take about half a minute each: set
//! `RTCGEAR_V4L2_VM=1`, and for the H.264 camera `RTCGEAR_V4L2LOOPBACK_KO` to a
//! `v4l2loopback.ko` built for the VM's kernel (`scripts/v4l2loopback.sh`). `scripts/test.sh`
//! does both, after the capture tests in the same VM:
//!
//! ```text
//! RTCGEAR_V4L2_VM=1 cargo test -p rtcgear --test v4l2_vm -- --nocapture
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

use rtcgear_tests::{free_port, free_udp_port, http, Browser, TempDir};
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

/// The VM tool's work folder, which `scripts/vivid-serve.sh` shares.
fn vm_work() -> PathBuf {
    std::env::var_os("V4L2VM_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/v4l2-vm"))
}

/// `rtcgear serve` in the VM of `scripts/vivid-serve.sh`, its whole process group (the script
/// execs `timeout`, which runs qemu) killed on drop.
struct Vm {
    child: Child,
    console: PathBuf,
    http_port: u16,
    _logs: TempDir,
}

impl Vm {
    /// Boots the VM with `env` for the script and `args` for `rtcgear serve`, and waits until
    /// the server answers through the forwarded port.
    fn serve(env: &[(&str, &str)], args: &[&str]) -> Vm {
        let logs = TempDir::new("vivid-serve");
        let console = logs.path().join("console.log");
        let (http_port, udp_port) = (free_port(), free_udp_port());
        let started = Instant::now();
        let child = Command::new("bash")
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
            .expect("bash runs scripts/vivid-serve.sh");
        let mut vm = Vm {
            child,
            console,
            http_port,
            _logs: logs,
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
        let (_, _, streams) = http(&url, "GET", None, &[]);
        streams["streams"][0].clone()
    }

    /// Whether a line of the VM's console (the server's log) contains every one of `words`.
    fn said(&self, words: &[&str]) -> bool {
        let console = std::fs::read_to_string(&self.console).unwrap_or_default();
        console
            .lines()
            .any(|line| words.iter().all(|word| line.contains(word)))
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
    /// (at least half of `FPS`, as the emulated VM may fall behind now and then), and a row of
    /// the picture `row` of the way down with at least `min_colours` clearly different colours.
    /// Leaves a screenshot as `screenshots/NAME.png` in the VM's work folder.
    fn play_in_chromium(&self, name: &str, row: f64, min_colours: u64) {
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
        // Quantized to 3 bits a channel, so that compression's small errors do not count.
        let colours = browser.eval(&format!(
            "const v = document.getElementById('video'); \
             const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight; \
             const g = c.getContext('2d'); g.drawImage(v, 0, 0); \
             const row = g.getImageData(0, Math.floor(c.height * {row}), c.width, 1).data; \
             const seen = new Set(); \
             for (let x = 0; x < c.width; x++) {{ \
               const i = 4 * x; seen.add([row[i] >> 5, row[i + 1] >> 5, row[i + 2] >> 5].join()); }} \
             return seen.size"
        ));
        let colours = colours.as_u64().unwrap_or(0);
        let screenshots = vm_work().join("screenshots");
        std::fs::create_dir_all(&screenshots).expect("the screenshot folder is created");
        let screenshot = screenshots.join(format!("{name}.png"));
        browser.screenshot(&screenshot);
        assert!(
            colours >= min_colours,
            "a row of Chromium's picture has {colours} colours, {min_colours} expected \
             (screenshot: {})",
            screenshot.display()
        );
        let stream = self.stream();
        assert_eq!(stream["state"], "live", "the camera's stream: {stream}");
        assert_eq!(stream["viewers"], 1, "the camera's stream: {stream}");
        println!(
            "{frames} frames of {}x{} in {MEASURE:?}, {colours} colours across a row \
             (screenshot: {})",
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

fn enabled(what: &str) -> bool {
    let on = std::env::var("RTCGEAR_V4L2_VM").as_deref() == Ok("1");
    if !on {
        println!("skipping {what}: set RTCGEAR_V4L2_VM=1 (needs root and qemu)");
    }
    on
}

#[test]
fn a_vivid_camera_in_a_vm_plays_in_chromium() {
    if !enabled("the V4L2 camera in Chromium") {
        return;
    }
    let _turn = one_vm_at_a_time();
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    let vm = Vm::serve(&[], &["--size", &size, "--fps", &FPS.to_string()]);
    let stream = vm.stream();
    assert_eq!(
        (&stream["width"], &stream["height"]),
        (&json!(SIZE.0), &json!(SIZE.1)),
        "the camera's stream: {stream}"
    );
    assert!(
        vm.said(&["/dev/video0: ", &format!(" {size} at {FPS} fps")]),
        "the server does not say it opened /dev/video0 at {size}, {FPS} fps{}",
        vm.console_tail()
    );
    assert!(
        vm.said(&["encoded here"]),
        "the server does not say it encodes the camera's frames{}",
        vm.console_tail()
    );
    // vivid paints eight colour bars, with text over their middle: a row near the bottom of
    // the picture crosses all eight.
    vm.play_in_chromium("vivid", 0.93, 8);
}

#[test]
fn a_camera_with_its_own_h264_is_passed_through_to_chromium() {
    if !enabled("the H.264 V4L2 camera in Chromium") {
        return;
    }
    let Some(ko) = std::env::var_os("RTCGEAR_V4L2LOOPBACK_KO").filter(|ko| !ko.is_empty()) else {
        println!(
            "skipping the H.264 V4L2 camera in Chromium: RTCGEAR_V4L2LOOPBACK_KO is not set \
             (scripts/test.sh builds v4l2loopback.ko with scripts/v4l2loopback.sh)"
        );
        return;
    };
    let ko = PathBuf::from(ko);
    assert!(
        ko.is_file(),
        "RTCGEAR_V4L2LOOPBACK_KO: {} is missing",
        ko.display()
    );
    let _turn = one_vm_at_a_time();
    // The camera's encoder: x264 Baseline, a keyframe every second, in MPEG-TS so that FFmpeg
    // can loop it and write Annex B pictures, one write per picture, into the loopback device.
    // (The VM sees this machine's files.)
    let feed = vm_work().join("feed");
    std::fs::create_dir_all(&feed).expect("the feed folder is created");
    let clip = feed.join("camera.ts");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={}x{}:rate={FPS}", SIZE.0, SIZE.1))
        .args(["-t", "4", "-c:v", "libx264", "-profile:v", "baseline"])
        .args(["-g", &FPS.to_string(), "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made no clip: {status}");
    let writer = format!(
        "exec ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i {} \
         -c copy -f v4l2 /dev/video9",
        clip.display()
    );
    let ko = ko.display().to_string();
    let vm = Vm::serve(
        &[
            ("V4L2LOOPBACK_KO", &ko),
            ("FEED", &writer),
            ("SOURCE", "/dev/video9"),
        ],
        &["--format", "h264"],
    );
    assert!(
        vm.said(&["/dev/video9", "passing the camera's H.264 through"]),
        "the server does not say it passes the camera's H.264 through{}",
        vm.console_tail()
    );
    // testsrc2 paints six colour bars, with moving shapes over parts of them.
    vm.play_in_chromium("h264-camera", 0.5, 6);
    assert!(
        !vm.said(&["encoded here"]),
        "the server encodes the H.264 camera's pictures again{}",
        vm.console_tail()
    );
}
