//! Real H.264 from `rtcgear-encode`, through the broadcast, decoded by ffmpeg.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rtcgear_capture::{h264, CaptureTime, FrameRate, TestPattern};
use rtcgear_encode::{Encoder, EncoderConfig};
use rtcgear_test_support::tempdir::TempDir;

use crate::sim::{config, FrameSource, Sim, FPS};

/// The test pattern through libx264, with keyframes only when asked for.
struct EncodedFrames {
    pattern: TestPattern,
    encoder: Encoder,
    counter: u64,
    start: Instant,
}

impl EncodedFrames {
    fn new() -> Self {
        let fps = FrameRate::from_int(FPS).expect("30 is above zero");
        let mut config = EncoderConfig::new(160, 120, fps);
        // No periodic keyframes: a late viewer can only start on one it asked for.
        config.keyframe_interval = 100_000;
        EncodedFrames {
            pattern: TestPattern::new(160, 120, fps).expect("a test pattern"),
            encoder: Encoder::new(config).expect("an encoder"),
            counter: 0,
            start: Instant::now(),
        }
    }
}

impl FrameSource for EncodedFrames {
    fn next(&mut self, keyframe: bool) -> (bool, Vec<u8>) {
        if keyframe {
            self.encoder.request_keyframe();
        }
        let time = CaptureTime {
            wall_us: 1_700_000_000_000_000 + self.counter * 33_333,
            instant: self.start + Duration::from_micros(self.counter * 33_333),
        };
        let frame = self.pattern.draw(self.counter, time).expect("a frame");
        self.counter += 1;
        self.encoder.send_frame(&frame).expect("encoded");
        // zerolatency: one frame in, one access unit out.
        let packet = self
            .encoder
            .receive_packet()
            .expect("an access unit per frame");
        (packet.keyframe, packet.data.to_vec())
    }
}

/// Two viewers, the second joining late: what each receives decodes without a single error,
/// every access unit a picture.
#[test]
fn received_video_decodes() {
    require_ffmpeg();
    let mut sim = Sim::new(config());
    let early = sim.add_client();
    sim.connect_all();
    let mut frames = EncodedFrames::new();
    sim.stream(&mut frames, Duration::from_secs(1), None);
    let late = sim.add_client();
    sim.stream(&mut frames, Duration::from_secs(2), None);

    let idrs = sim.sent.iter().filter(|(_, keyframe, _)| *keyframe).count();
    assert_eq!(idrs, 2, "one IDR per viewer, none periodic");
    for index in [early, late] {
        let received = &sim.clients[index].frames;
        assert!(
            received.len() >= 55,
            "client {index}: {} frames",
            received.len()
        );
        assert!(
            h264::is_keyframe(&received[0].1.data),
            "client {index} starts on an IDR"
        );
        let decoded = decode_received(received, &format!("client{index}"));
        assert_eq!(
            decoded,
            received.len(),
            "client {index}: every access unit decodes"
        );
    }
}

/// A source whose keyframes cannot be asked for (H.264 passed through): with the GOP cache, a
/// viewer joining mid-GOP gets the last keyframe and what followed at once, in one burst, and
/// what it receives decodes.
#[test]
fn gop_cache_starts_a_late_viewer_at_once() {
    require_ffmpeg();
    let mut sim = Sim::new(config().with_gop_cache(true));
    sim.ignore_keyframe_requests = true;
    let gop = Some(60);
    let early = sim.add_client();
    sim.connect_all();
    let mut frames = EncodedFrames::new();
    sim.stream(&mut frames, Duration::from_millis(1500), gop);
    let late = sim.add_client();
    sim.connect_all();
    let connected = sim.clients[late].connected_at.expect("connected");
    sim.stream(&mut frames, Duration::from_millis(1500), gop);

    let idrs = sim.sent.iter().filter(|(_, keyframe, _)| *keyframe).count();
    assert_eq!(
        idrs, 2,
        "only the source's own keyframes, at frames 0 and 60"
    );
    let received = &sim.clients[late].frames;
    let (first_at, first) = &received[0];
    assert!(
        h264::is_keyframe(&first.data),
        "the late viewer starts on the cached IDR"
    );
    assert!(
        *first_at - connected < Duration::from_millis(100),
        "the late viewer's picture starts {:?} after connecting, not at the next keyframe",
        *first_at - connected
    );
    // It joined at frame 45 of a 60-frame GOP: it got the cached GOP from frame 0 on, so
    // every frame sent.
    assert!(
        received.len() + 2 >= sim.sent.len(),
        "{} frames received of {} sent",
        received.len(),
        sim.sent.len()
    );
    // Timestamps only go forward, the burst's squeezed just before the live ones.
    let times: Vec<_> = received.iter().map(|(_, d)| d.time.numer()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    for index in [early, late] {
        let received = &sim.clients[index].frames;
        let decoded = decode_received(received, &format!("gop-client{index}"));
        assert_eq!(
            decoded,
            received.len(),
            "client {index}: every picture decodes"
        );
    }
}

fn require_ffmpeg() {
    for tool in ["ffmpeg", "ffprobe"] {
        let found = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "this test decodes with the {tool} CLI; install ffmpeg"
        );
    }
}

/// Writes what a client received to a file named after `name`, decodes it with ffmpeg and
/// returns the number of pictures.
fn decode_received(received: &[(Instant, str0m::media::MediaData)], name: &str) -> usize {
    let dir = TempDir::new("rtc");
    let path = dir.path().join(format!("{name}.h264"));
    let stream: Vec<u8> = received
        .iter()
        .flat_map(|(_, d)| d.data.iter().copied())
        .collect();
    std::fs::write(&path, stream).expect("write the stream");
    decode(&path)
}

/// Decodes `path` with ffmpeg, failing on any error, and returns the number of pictures.
fn decode(path: &Path) -> usize {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && errors.trim().is_empty(),
        "ffmpeg: {errors}"
    );

    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "h264",
            "-count_frames",
            "-select_streams",
            "v:0",
        ])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe said {text:?}"))
}
