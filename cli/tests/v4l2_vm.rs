//! A real kernel V4L2 camera in Chromium: `rtcgear serve --source /dev/video0` runs in a VM
//! with the `vivid` virtual camera (`scripts/vivid-serve.sh`, built on
//! `../shared/tools/v4l2-vm.sh`), and headless Chromium on this machine plays it through the
//! VM's two forwarded loopback ports.
//!
//! Opt-in, because it needs root and qemu and takes about a minute: set `RTCGEAR_V4L2_VM=1`
//! (`scripts/test.sh` does, after the capture tests in the same VM):
//!
//! ```text
//! RTCGEAR_V4L2_VM=1 cargo test -p rtcgear --test v4l2_vm -- --nocapture
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtcgear_tests::{free_port, free_udp_port, http, Browser, TempDir};
use serde_json::Value;

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

/// The VM's script, its whole process group killed on drop (the script execs `timeout`,
/// which runs qemu).
struct Vm {
    child: Child,
    console: PathBuf,
}

impl Vm {
    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        format!(
            "\nthe VM's console ({}) ends:\n{tail}",
            self.console.display()
        )
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
fn a_vivid_camera_in_a_vm_plays_in_chromium() {
    if std::env::var("RTCGEAR_V4L2_VM").as_deref() != Ok("1") {
        println!("skipping the V4L2 camera in Chromium: set RTCGEAR_V4L2_VM=1 (needs root, qemu)");
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace");
    let script = workspace.join("scripts/vivid-serve.sh");
    let logs = TempDir::new("vivid-serve");
    let console = logs.path().join("console.log");
    let (http_port, udp_port) = (free_port(), free_udp_port());
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .args(["--size", &size, "--fps", &FPS.to_string()])
        .env("RTCGEAR", env!("CARGO_BIN_EXE_rtcgear"))
        .env("HTTP_PORT", http_port.to_string())
        .env("UDP_PORT", udp_port.to_string())
        .env("V4L2VM_TIMEOUT", "400")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&console).expect("the console log is created"))
        .stderr(Stdio::inherit())
        .process_group(0);
    let work = std::env::var_os("V4L2VM_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/v4l2-vm"));
    command.env("V4L2VM_WORK", &work);
    let started = Instant::now();
    let mut vm = Vm {
        child: command.spawn().expect("bash runs scripts/vivid-serve.sh"),
        console,
    };

    // The server answers through the forwarded port once the VM has booted.
    let streams_url = format!("http://127.0.0.1:{http_port}/api/streams");
    loop {
        if let Some(status) = vm.child.try_wait().expect("the VM's state") {
            panic!("the VM stopped ({status}){}", vm.console_tail());
        }
        if answers(http_port) {
            break;
        }
        assert!(
            started.elapsed() < SERVER_START_LIMIT,
            "the server in the VM did not answer {streams_url} within {SERVER_START_LIMIT:?}{}",
            vm.console_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (_, _, streams) = http(&streams_url, "GET", None, &[]);
    println!(
        "the server in the VM answered {:.1} s after boot began",
        started.elapsed().as_secs_f64()
    );
    let stream = &streams["streams"][0];
    assert_eq!(
        (&stream["width"], &stream["height"]),
        (&Value::from(SIZE.0), &Value::from(SIZE.1)),
        "the camera's stream: {stream}"
    );
    let console = std::fs::read_to_string(&vm.console).unwrap_or_default();
    assert!(
        console.lines().any(|line| line.contains("/dev/video0: ")
            && line.contains(&format!(" {size} at {FPS} fps"))),
        "the server does not say it opened /dev/video0 at {size}, {FPS} fps{}",
        vm.console_tail()
    );

    let browser = Browser::start();
    browser.goto(&format!("http://127.0.0.1:{http_port}/"));
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
        serde_json::json!([SIZE.0, SIZE.1]),
        "the video's size in Chromium"
    );
    let before = browser.frames_decoded();
    std::thread::sleep(MEASURE);
    let frames = browser.frames_decoded().saturating_sub(before);
    // Emulated, the VM's encoder may fall behind now and then; half the frame rate is the floor.
    let floor = FPS * MEASURE.as_secs() / 2;
    assert!(
        frames >= floor,
        "Chromium decoded {frames} frames in {MEASURE:?} (at least {floor} expected){}",
        vm.console_tail()
    );

    // vivid paints eight colour bars, with text over their middle: a row near the bottom of the
    // decoded picture crosses all eight.
    let colours = browser.eval(
        "const v = document.getElementById('video'); \
         const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight; \
         const g = c.getContext('2d'); g.drawImage(v, 0, 0); \
         const row = g.getImageData(0, Math.floor(c.height * 0.93), c.width, 1).data; \
         const seen = new Set(); \
         for (let x = 0; x < c.width; x++) { \
           const i = 4 * x; seen.add([row[i] >> 5, row[i + 1] >> 5, row[i + 2] >> 5].join()); } \
         return seen.size",
    );
    let colours = colours.as_u64().unwrap_or(0);
    assert!(
        colours >= 8,
        "a row near the bottom of Chromium's picture has {colours} colours; vivid's bars have 8"
    );

    // What Chromium shows, kept beside the VM's run folder for a look afterwards.
    let screenshot = work.join("serve/chromium.png");
    browser.screenshot(&screenshot);

    let (_, _, streams) = http(&streams_url, "GET", None, &[]);
    let stream = &streams["streams"][0];
    assert_eq!(stream["state"], "live", "the camera's stream: {stream}");
    assert_eq!(stream["viewers"], 1, "the camera's stream: {stream}");
    println!(
        "Chromium played vivid's /dev/video0 from the VM: {frames} frames of {size} in \
         {MEASURE:?}, {colours} colours across the picture (screenshot: {})",
        screenshot.display()
    );
    drop(browser);
    drop(vm);
}
