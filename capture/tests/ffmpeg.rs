//! FFmpeg sources against real media: clips made at test time by the FFmpeg CLI, and a network
//! stream that FFmpeg serves on loopback, dropped and brought back.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtcgear_capture::{FfmpegOptions, FfmpegSource, PixelFormat, Source};

fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
    command
}

/// A clip of FFmpeg's `testsrc2`, made once per test binary run.
fn clip(name: &str, args: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtcgear-capture-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp folder");
    let path = dir.join(name);
    if !path.exists() {
        // Tests run in parallel: each writes its own copy and renames it into place, so no
        // test ever reads a half-written clip.
        let partial =
            dir.join(format!("{:?}-{name}", std::thread::current().id()).replace(['(', ')'], ""));
        let status = ffmpeg()
            .args(args)
            .arg(&partial)
            .status()
            .expect("ffmpeg is installed (the README's test command installs it)");
        assert!(status.success(), "ffmpeg could not make {name}");
        std::fs::rename(&partial, &path).expect("the clip is moved into place");
    }
    path
}

fn h264_mp4() -> PathBuf {
    clip(
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

fn unpaced() -> FfmpegOptions {
    let mut options = FfmpegOptions::default();
    options.paced = false;
    options
}

#[test]
fn an_mp4_plays_every_frame_at_its_own_pace() {
    let path = h264_mp4();
    let source = FfmpegSource::open(path.to_str().expect("UTF-8 path"), FfmpegOptions::default())
        .expect("the clip opens");
    let info = source.info();
    assert_eq!(
        (info.width, info.height, info.format),
        (320, 240, PixelFormat::I420)
    );
    assert_eq!(info.fps.as_f64(), 30.0);
    let started = Instant::now();
    let frames: Vec<_> = source
        .collect::<Result<_, _>>()
        .expect("every frame decodes");
    assert_eq!(frames.len(), 60);
    // 59 frame intervals of 1/30 s at least: it plays at 1x, not as fast as it decodes.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert!(frames
        .iter()
        .enumerate()
        .all(|(i, f)| f.counter() == i as u64));
}

#[test]
fn other_codecs_containers_and_pixel_formats_are_decoded_to_i420() {
    let mkv = clip(
        "mpeg4.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=322x242:rate=25",
            "-t",
            "1",
            "-c:v",
            "mpeg4",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let source = FfmpegSource::open(mkv.to_str().expect("UTF-8"), unpaced()).expect("opens");
    // Odd chroma sizes are not possible in I420: the size rounds down to even.
    assert_eq!((source.info().width, source.info().height), (322, 242));
    assert_eq!(source.count(), 25);

    let yuv444 = clip(
        "yuv444.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv444p",
        ],
    );
    let frames: Vec<_> = FfmpegSource::open(yuv444.to_str().expect("UTF-8"), unpaced())
        .expect("opens")
        .collect::<Result<_, _>>()
        .expect("decodes");
    assert_eq!(frames.len(), 10);
    assert!(frames
        .iter()
        .all(|f| f.format() == PixelFormat::I420 && f.width() == 160));
}

#[test]
fn a_looping_file_never_ends_and_time_keeps_going_forward() {
    let path = h264_mp4();
    let mut options = unpaced();
    options.looping = true;
    let frames: Vec<_> = FfmpegSource::open(path.to_str().expect("UTF-8"), options)
        .expect("opens")
        .take(150)
        .collect::<Result<_, _>>()
        .expect("decodes");
    assert_eq!(frames.len(), 150);
    for pair in frames.windows(2) {
        assert_eq!(pair[1].counter(), pair[0].counter() + 1);
        assert!(pair[1].time().instant >= pair[0].time().instant);
    }
}

#[test]
fn missing_inputs_say_what_is_missing() {
    let err = FfmpegSource::open("/no/such/clip.mp4", unpaced())
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/clip.mp4"), "{err}");
    let text = clip("audio.wav", &["-f", "lavfi", "-i", "sine=duration=0.2"]);
    let err = FfmpegSource::open(text.to_str().expect("UTF-8"), unpaced())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no video stream"), "{err}");
}

/// `ffmpeg -re -i clip -c copy -f mpegts -listen 1 http://…`: a live HTTP stream on loopback.
struct LiveServer(Child);

impl LiveServer {
    fn start(clip: &Path, port: u16) -> LiveServer {
        let child = ffmpeg()
            .args(["-re", "-stream_loop", "-1", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "mpegts", "-listen", "1"])
            .arg(format!("http://127.0.0.1:{port}/live.ts"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg starts");
        // It listens within a moment; the source's reconnect covers the race anyway.
        std::thread::sleep(Duration::from_millis(500));
        LiveServer(child)
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_network_stream_that_drops_comes_back_by_itself() {
    let path = h264_mp4();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("http://127.0.0.1:{port}/live.ts");
    let server = LiveServer::start(&path, port);
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    let mut source = FfmpegSource::open(&url, options).expect("the live stream opens");
    for _ in 0..10 {
        source.next().expect("frames keep coming").expect("a frame");
    }
    drop(server);
    // The source notices the drop and says so, rather than hanging or ending.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_error = false;
    while !saw_error && Instant::now() < deadline {
        saw_error = matches!(source.next(), Some(Err(_)));
    }
    assert!(saw_error, "the drop was never reported");
    let _server = LiveServer::start(&path, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut frames = 0;
    while frames < 10 && Instant::now() < deadline {
        if let Some(Ok(_)) = source.next() {
            frames += 1;
        }
    }
    assert_eq!(frames, 10, "the stream did not come back");
}
