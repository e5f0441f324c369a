//! FFmpeg sources against real media: clips made at test time by the FFmpeg CLI, and a network
//! stream that FFmpeg serves on loopback, dropped and brought back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtcgear_capture::ffmpeg::{
    FfmpegH264Source, FfmpegOpened, FfmpegOptions, FfmpegSource, H264Decoder,
};
use rtcgear_capture::{
    h264, open, CaptureError, EncodedSource, OpenOptions, Opened, OpenedSource, PixelFormat,
    Source, SourceSpec,
};
use rtcgear_test_support::clips::Clip;
use rtcgear_test_support::live::LiveStream;
use rtcgear_test_support::ports::free_tcp_port;
use rtcgear_test_support::rtsp::RtspServer;

fn h264_mp4() -> PathBuf {
    Clip::testsrc2(320, 240, 30, 2).h264().cached("clip.mp4")
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
    let mkv = Clip::testsrc2(322, 242, 25, 1)
        .args(&["-c:v", "mpeg4", "-pix_fmt", "yuv420p"])
        .cached("mpeg4.mkv");
    let source = FfmpegSource::open(mkv.to_str().expect("UTF-8"), unpaced()).expect("opens");
    // Odd chroma sizes are not possible in I420: the size rounds down to even.
    assert_eq!((source.info().width, source.info().height), (322, 242));
    assert_eq!(source.count(), 25);

    let yuv444 = Clip::testsrc2(160, 120, 10, 1)
        .args(&["-c:v", "libx264", "-pix_fmt", "yuv444p"])
        .cached("yuv444.mkv");
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
    let text = Clip::new(&["-f", "lavfi", "-i", "sine=duration=0.2"]).cached("audio.wav");
    let err = FfmpegSource::open(text.to_str().expect("UTF-8"), unpaced())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no video stream"), "{err}");
}

#[test]
fn a_network_stream_that_drops_comes_back_by_itself() {
    let path = h264_mp4();
    let port = free_tcp_port();
    let url = format!("http://127.0.0.1:{port}/live.ts");
    let server = LiveStream::start(&path, port);
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
    let _server = LiveStream::start(&path, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut frames = 0;
    while frames < 10 && Instant::now() < deadline {
        if let Some(Ok(_)) = source.next() {
            frames += 1;
        }
    }
    assert_eq!(frames, 10, "the stream did not come back");
}

/// H.264 that browsers play as it is: no B-frames (x264's baseline profile), a keyframe every
/// 15 frames. MP4 stores it length-prefixed, with SPS and PPS in the header only.
fn passthrough_mp4() -> PathBuf {
    Clip::testsrc2(320, 240, 30, 2)
        .h264()
        .args(&["-profile:v", "baseline", "-g", "15"])
        .cached("baseline.mp4")
}

/// Decodes an Annex B stream with the FFmpeg CLI, failing on any error; the picture count.
fn decode_annexb(stream: &[u8]) -> usize {
    use std::io::Write;
    let mut child = Command::new("ffmpeg")
        .args([
            "-v", "error", "-f", "h264", "-i", "-", "-f", "framemd5", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ffmpeg");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream)
        .expect("feed ffmpeg");
    let output = child.wait_with_output().expect("ffmpeg ends");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && errors.trim().is_empty(),
        "ffmpeg: {errors}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .count()
}

#[test]
fn h264_without_b_frames_passes_through_as_annexb_access_units() {
    let path = passthrough_mp4();
    let source = FfmpegH264Source::open(path.to_str().expect("UTF-8"), FfmpegOptions::default())
        .expect("baseline H.264 passes through");
    let info = source.info();
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!(info.fps.as_f64(), 30.0);
    let profile = info.profile.expect("the profile, from the MP4's avcC");
    assert!(profile.is_constrained_baseline(), "{profile}");
    let started = Instant::now();
    let units: Vec<_> = source.collect::<Result<_, _>>().expect("every packet");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "paced at 1x, not {:?}",
        started.elapsed()
    );
    assert_eq!(units.len(), 60);
    let keyframes: Vec<u64> = units
        .iter()
        .filter(|u| u.keyframe)
        .map(|u| u.counter)
        .collect();
    assert_eq!(keyframes, vec![0, 15, 30, 45]);
    for unit in units.iter().filter(|u| u.keyframe) {
        assert!(
            h264::has_sps(&unit.data),
            "SPS and PPS in front of every IDR"
        );
    }
    let stream: Vec<u8> = units.iter().flat_map(|u| u.data.iter().copied()).collect();
    assert_eq!(decode_annexb(&stream), 60, "the Annex B stream decodes");
}

/// Passed-through H.264 decodes back into pictures, each with its unit's counter and capture
/// time; a decoder that starts mid-GOP waits for the next keyframe.
#[test]
fn passed_through_units_decode_back_to_their_pictures() {
    let path = passthrough_mp4();
    let units: Vec<_> = FfmpegH264Source::open(path.to_str().expect("UTF-8"), unpaced())
        .expect("baseline H.264 passes through")
        .collect::<Result<_, _>>()
        .expect("every packet");
    let mut decoder = H264Decoder::new().expect("FFmpeg's H.264 decoder");
    let mut pictures = Vec::new();
    for unit in &units {
        if let Some(frame) = decoder.decode(unit).expect("H.264 is decoded") {
            assert_eq!((frame.width(), frame.height()), (320, 240));
            assert_eq!(frame.format(), PixelFormat::I420);
            assert_eq!(frame.time(), unit.time, "picture {}", frame.counter());
            pictures.push(frame.counter());
        }
    }
    let counters: Vec<u64> = units.iter().map(|u| u.counter).collect();
    assert_eq!(pictures, counters, "one picture a unit, in order, at once");

    // From the middle of the first GOP: nothing until the keyframe at 15, then every one.
    let mut late = H264Decoder::new().expect("FFmpeg's H.264 decoder");
    let decoded: Vec<u64> = units[5..]
        .iter()
        .filter_map(|u| late.decode(u).expect("no error"))
        .map(|f| f.counter())
        .collect();
    assert_eq!(decoded.first(), Some(&15));
    assert_eq!(decoded.len(), units.len() - 15);
}

#[test]
fn a_looping_passthrough_starts_again_on_its_first_keyframe() {
    let path = passthrough_mp4();
    let mut options = unpaced();
    options.looping = true;
    let units: Vec<_> = FfmpegH264Source::open(path.to_str().expect("UTF-8"), options)
        .expect("opens")
        .take(150)
        .collect::<Result<_, _>>()
        .expect("packets");
    assert_eq!(units.len(), 150);
    assert!(units[60].keyframe && units[120].keyframe);
    assert!(units.windows(2).all(|w| w[1].counter == w[0].counter + 1));
    let stream: Vec<u8> = units.iter().flat_map(|u| u.data.iter().copied()).collect();
    assert_eq!(decode_annexb(&stream), 150);
}

#[test]
fn what_browsers_cannot_take_as_it_is_is_refused_with_the_reason() {
    let refused = |path: &Path| -> String {
        match FfmpegH264Source::open(path.to_str().expect("UTF-8"), unpaced()) {
            Err(CaptureError::NotPassthrough(why)) => why,
            other => panic!("{}: expected a refusal, got {other:?}", path.display()),
        }
    };
    // x264's defaults: High profile with B-frames.
    let why = refused(&h264_mp4());
    assert!(why.contains("B-frames"), "{why}");
    let mpeg4 = Clip::testsrc2(160, 120, 10, 1)
        .args(&["-c:v", "mpeg4"])
        .cached("mpeg4-refused.mkv");
    let why = refused(&mpeg4);
    assert!(why.contains("not H.264"), "{why}");
    let yuv444 = Clip::testsrc2(160, 120, 10, 1)
        .args(&["-c:v", "libx264", "-bf", "0", "-pix_fmt", "yuv444p"])
        .cached("yuv444-refused.mkv");
    let why = refused(&yuv444);
    assert!(why.contains("4:2:0") || why.contains("profile"), "{why}");
}

/// `ffmpeg -listen 1` serves one client and then ends: a source that opened it twice (once to
/// see whether it can pass it through, once to decode) would find nobody the second time.
#[test]
fn a_stream_that_cannot_be_passed_through_is_decoded_from_the_same_connection() {
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(5);
    let frames = |source: FfmpegSource| {
        let frames: Vec<_> = source
            .take(10)
            .collect::<Result<_, _>>()
            .expect("frames from the one connection");
        assert_eq!(frames.len(), 10);
    };

    // B-frames: refused by the check, decoded.
    let port = free_tcp_port();
    let _server = LiveStream::start(&h264_mp4(), port);
    let url = format!("http://127.0.0.1:{port}/live.ts");
    match FfmpegH264Source::open_or_decode(&url, options.clone(), |_| Ok(())) {
        Ok(FfmpegOpened::Decoded(source, why)) => {
            assert!(why.contains("B-frames"), "{why}");
            frames(source);
        }
        other => panic!("expected the stream decoded, got {other:?}"),
    }

    // Browsers could take it, but the caller refuses (a different size asked for, say).
    let port = free_tcp_port();
    let _server = LiveStream::start(&passthrough_mp4(), port);
    let url = format!("http://127.0.0.1:{port}/live.ts");
    let opened = FfmpegH264Source::open_or_decode(&url, options.clone(), |info| {
        assert_eq!((info.width, info.height), (320, 240));
        Err("--size 160x120 differs".into())
    });
    match opened {
        Ok(FfmpegOpened::Decoded(source, why)) => {
            assert_eq!(why, "--size 160x120 differs");
            frames(source);
        }
        other => panic!("expected the stream decoded, got {other:?}"),
    }

    // Accepted: passed through.
    let port = free_tcp_port();
    let _server = LiveStream::start(&passthrough_mp4(), port);
    let url = format!("http://127.0.0.1:{port}/live.ts");
    match FfmpegH264Source::open_or_decode(&url, options, |_| Ok(())) {
        Ok(FfmpegOpened::Passthrough(source)) => {
            let units: Vec<_> = source
                .take(10)
                .collect::<Result<_, _>>()
                .expect("pictures from the one connection");
            assert!(units[0].keyframe, "passthrough starts on a keyframe");
        }
        other => panic!("expected the stream passed through, got {other:?}"),
    }
}

/// The library's `--source`: one call from a source string to the right source.
#[test]
fn a_source_string_opens_passed_through_or_decoded_as_the_options_ask() {
    let baseline = passthrough_mp4();
    let spec: SourceSpec = baseline.to_str().expect("UTF-8").parse().expect("a file");
    let mut options = OpenOptions::default();
    options.looping = true;
    match open(&spec, &options).expect("the clip opens") {
        Opened {
            source: OpenedSource::Encoded(source),
            live: false,
            ..
        } => {
            assert_eq!((source.info().width, source.info().height), (320, 240));
        }
        other => panic!("expected passthrough of a file (not live), got {other:?}"),
    }
    // Another size, grey pictures, a reason of the caller's or a bitrate: decoded, and made so.
    for change in [
        |o: &mut OpenOptions| o.size = Some((160, 120)),
        |o: &mut OpenOptions| o.gray = true,
        |o: &mut OpenOptions| o.decode_reason = Some("a stabilizer needs the pictures".into()),
        |o: &mut OpenOptions| o.bitrate_kbps = Some(500),
    ] {
        let mut options = options.clone();
        change(&mut options);
        let opened = open(&spec, &options).expect("the clip opens").source;
        let OpenedSource::Frames(source) = opened else {
            panic!("expected decoding with {options:?}, got {opened:?}");
        };
        let info = source.info();
        let want = options.size.unwrap_or((320, 240));
        assert_eq!((info.width, info.height), want, "{options:?}");
        assert_eq!(info.format, PixelFormat::I420, "{options:?}");
        let frame = source.take(1).next().expect("a frame").expect("no error");
        assert_eq!((frame.width(), frame.height()), want);
        // Grey is I420 with neutral chroma; testsrc2's colours are anything but.
        let chroma = frame.plane(1);
        let neutral = (0..chroma.rows()).all(|y| chroma.row(y).iter().all(|&c| c == 128));
        assert_eq!(neutral, options.gray, "{options:?}");
    }
    // What cannot be: a capture format for a file, a file that is not there.
    let mut with_format = options.clone();
    with_format.camera_format = Some("mjpeg".into());
    let err = open(&spec, &with_format).expect_err("a capture format is for cameras");
    assert!(err.to_string().contains("V4L2 cameras only"), "{err}");
    let missing: SourceSpec = "/no/such/clip.mp4".parse().expect("a file");
    let err = open(&missing, &options).expect_err("no file");
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn a_passed_through_network_stream_starts_on_a_keyframe_and_comes_back() {
    let path = passthrough_mp4();
    let port = free_tcp_port();
    let url = format!("http://127.0.0.1:{port}/live.ts");
    let server = LiveStream::start(&path, port);
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    let mut source = FfmpegH264Source::open(&url, options).expect("MPEG-TS H.264 passes through");
    assert!(
        source.info().profile.is_some(),
        "the profile from the stream"
    );
    let first = source.next().expect("a picture").expect("no error");
    assert!(
        first.keyframe,
        "a stream joined mid-GOP starts on its next keyframe"
    );
    for _ in 0..10 {
        source
            .next()
            .expect("pictures keep coming")
            .expect("a picture");
    }
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_error = false;
    while !saw_error && Instant::now() < deadline {
        saw_error = matches!(source.next(), Some(Err(_)));
    }
    assert!(saw_error, "the drop was never reported");
    let _server = LiveStream::start(&path, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut units = Vec::new();
    while units.len() < 10 && Instant::now() < deadline {
        if let Some(Ok(unit)) = source.next() {
            units.push(unit);
        }
    }
    assert_eq!(units.len(), 10, "the stream did not come back");
    assert!(
        units[0].keyframe,
        "after reconnecting, again from a keyframe"
    );
}

/// Pulls from `source` until it reports an error (the drop), within 20 s.
fn until_error<T>(source: &mut impl Iterator<Item = Result<T, CaptureError>>) -> CaptureError {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(Err(err)) = source.next() {
            return err;
        }
    }
    panic!("the drop was never reported");
}

/// Pulls `n` items from `source` within 30 s, skipping the errors of a reconnecting source.
fn next_ok<T>(source: &mut impl Iterator<Item = Result<T, CaptureError>>, n: usize) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut items = Vec::new();
    while items.len() < n && Instant::now() < deadline {
        match source.next() {
            Some(Ok(item)) => items.push(item),
            Some(Err(_)) => {}
            None => panic!("the source ended"),
        }
    }
    assert_eq!(items.len(), n, "the stream did not come back");
    items
}

#[test]
fn an_rtsp_stream_is_decoded_and_comes_back_after_the_server_drops() {
    let port = free_tcp_port();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let server = RtspServer::start(port, (320, 240), 30, 15);
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    let mut source = FfmpegSource::open(&url, options).expect("the RTSP stream opens");
    let info = source.info();
    assert_eq!(
        (info.width, info.height, info.format),
        (320, 240, PixelFormat::I420)
    );
    assert_eq!(info.fps.as_f64(), 30.0);
    let frames = next_ok(&mut source, 10);
    assert!(frames
        .windows(2)
        .all(|w| w[1].counter() == w[0].counter() + 1));

    drop(server);
    let err = until_error(&mut source).to_string();
    assert!(err.contains(&url), "the error names the stream: {err}");
    let _server = RtspServer::start(port, (320, 240), 30, 15);
    let frames = next_ok(&mut source, 10);
    assert!(frames.iter().all(|f| f.width() == 320 && f.height() == 240));
}

#[test]
fn an_rtsp_stream_passes_through_and_comes_back_after_the_server_drops() {
    let port = free_tcp_port();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let server = RtspServer::start(port, (320, 240), 30, 15);
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    let mut source = FfmpegH264Source::open(&url, options).expect("RTSP H.264 passes through");
    let info = source.info();
    assert_eq!((info.width, info.height), (320, 240));
    let profile = info
        .profile
        .expect("the profile, from the SDP's parameter sets");
    assert!(profile.is_constrained_baseline(), "{profile}");
    let before = next_ok(&mut source, 20);
    assert!(before[0].keyframe, "it starts on a keyframe");
    assert!(h264::has_sps(&before[0].data), "with SPS and PPS in front");
    assert!(before.windows(2).all(|w| w[1].counter == w[0].counter + 1));

    drop(server);
    let err = until_error(&mut source).to_string();
    assert!(err.contains(&url), "the error names the stream: {err}");
    let _server = RtspServer::start(port, (320, 240), 30, 15);
    let after = next_ok(&mut source, 20);
    assert!(
        after[0].keyframe,
        "after reconnecting, again from a keyframe"
    );
    // Both halves, back to back, are one stream a decoder takes without an error.
    let stream: Vec<u8> = before
        .iter()
        .chain(&after)
        .flat_map(|u| u.data.iter().copied())
        .collect();
    assert_eq!(decode_annexb(&stream), 40);
}

#[test]
fn b_slices_are_found_in_x264_streams_that_have_them_and_only_there() {
    let stream = |name: &str, x264: &[&str]| {
        Clip::testsrc2(160, 120, 30, 1)
            .h264()
            .args(x264)
            .cached(name)
    };
    // Ours, picture by picture, against FFmpeg's own count of B pictures.
    let b_pictures = |path: &Path| -> (usize, usize) {
        let data = std::fs::read(path).expect("the stream is readable");
        let mut splitter = h264::AccessUnitSplitter::new();
        splitter.push(&data);
        let mut units = Vec::new();
        while let Some(unit) = splitter.next_unit() {
            units.push(unit);
        }
        units.extend(splitter.finish());
        let ours = units.iter().filter(|u| h264::has_b_slices(u)).count();
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "frame=pict_type", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(probe.status.success());
        let theirs = String::from_utf8_lossy(&probe.stdout)
            .lines()
            .filter(|line| line.trim() == "B")
            .count();
        (ours, theirs)
    };
    let with_b = stream("b-frames.h264", &["-x264-params", "bframes=2:b-adapt=0"]);
    let (ours, theirs) = b_pictures(&with_b);
    assert!(theirs > 10, "x264 made {theirs} B pictures");
    assert_eq!(ours, theirs);
    for x264 in [&["-profile:v", "baseline"][..], &["-bf", "0"]] {
        let without_b = stream(&format!("no-b{}.h264", x264[1]), x264);
        assert_eq!(b_pictures(&without_b), (0, 0), "{x264:?}");
    }
}

#[test]
fn a_resolved_stream_is_resolved_again_when_it_reopens() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use rtcgear_capture::ffmpeg::UrlResolver;

    let path = h264_mp4();
    let (first_port, second_port) = (free_tcp_port(), free_tcp_port());
    let live = |port: u16| format!("http://127.0.0.1:{port}/live.ts");
    // As yt-dlp does for a video site's page: a media URL that stops working after a while,
    // and a fresh one when asked again.
    let answer = Arc::new(Mutex::new(live(first_port)));
    let asked = Arc::new(AtomicUsize::new(0));
    let mut options = FfmpegOptions::default();
    options.read_timeout = Duration::from_secs(2);
    options.resolver = Some(UrlResolver::new({
        let (answer, asked) = (answer.clone(), asked.clone());
        move |page| {
            asked.fetch_add(1, Ordering::SeqCst);
            if page != "https://video.example/watch/1" {
                return Err(CaptureError::InvalidArgument(format!("asked for {page}")));
            }
            Ok(answer.lock().expect("not poisoned").clone())
        }
    }));
    let first = LiveStream::start(&path, first_port);
    let mut source =
        FfmpegSource::open("https://video.example/watch/1", options).expect("opens as resolved");
    next_ok(&mut source, 10);
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    *answer.lock().expect("not poisoned") = live(second_port);
    drop(first);
    let err = until_error(&mut source).to_string();
    assert!(
        err.contains("https://video.example/watch/1"),
        "errors name the page, not the media URL: {err}"
    );
    let _second = LiveStream::start(&path, second_port);
    next_ok(&mut source, 10);
    assert!(asked.load(Ordering::SeqCst) >= 2);
}
