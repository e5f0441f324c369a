//! Checks `V4l2Source` against a real V4L2 device: the one in `V4L2_DEVICE` (default
//! `/dev/video0`), normally the kernel's `vivid` virtual camera inside the VM of
//! `scripts/v4l2-vm.sh` (see `tests/v4l2_vm.rs`).
//!
//! It lists the device, captures 30 frames in YUYV and 30 in NV12 and YU12 (when offered),
//! checks sizes, counters and that the picture moves, checks that a size the camera lacks gets
//! the nearest one, that a missing or busy device gives a clear error, and that a camera
//! unplugged mid-stream (vivid's "Disconnect" control) is reported and reopened once it is back.
//! With `--loopback`, it also loads the `v4l2loopback` module that `tests/v4l2_vm.rs` puts in
//! `/out`, feeds it x264's access units and checks that `V4l2H264Source` passes them through.
//! Exits 1 on any failure.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rtcgear_capture::v4l2::{V4l2Format, V4l2H264Source, V4l2Options, V4l2Source};
use rtcgear_capture::{CaptureError, Frame, PixelFormat, Source};

const FRAMES: usize = 30;

fn main() -> ExitCode {
    let device = std::env::var("V4L2_DEVICE").unwrap_or_else(|_| "/dev/video0".into());
    let mut failures = 0;
    let mut check = |name: &str, result: Result<(), String>| match result {
        Ok(()) => println!("ok    {name}"),
        Err(why) => {
            failures += 1;
            println!("FAIL  {name}: {why}");
        }
    };

    check("list", list(&device));
    check(
        "YUYV 640x480",
        capture(&device, V4l2Format::Yuyv, (640, 480)),
    );
    check(
        "NV12 640x480",
        capture(&device, V4l2Format::Nv12, (640, 480)),
    );
    check(
        "YU12 1280x720",
        capture(&device, V4l2Format::Yu12, (1280, 720)),
    );
    check("nearest size", nearest(&device));
    check("missing device", missing());
    check("busy device", busy(&device));
    check("H.264 asked of a camera without it", no_h264(&device));
    check("unplugged mid-stream", unplugged(&device));
    if std::env::args().any(|arg| arg == "--loopback") {
        check("H.264 passed through from v4l2loopback", loopback_h264());
    } else {
        println!("skip  H.264 from v4l2loopback: no --loopback (tests/v4l2_vm.rs says why)");
    }

    if failures == 0 {
        println!("v4l2_check: all passed");
        ExitCode::SUCCESS
    } else {
        println!("v4l2_check: {failures} failed");
        ExitCode::FAILURE
    }
}

fn list(device: &str) -> Result<(), String> {
    let cameras = V4l2Source::list();
    for camera in &cameras {
        println!(
            "      {} {:?} driver {} on {}",
            camera.path.display(),
            camera.name,
            camera.driver,
            camera.bus
        );
        for format in &camera.formats {
            let sizes: Vec<String> = format
                .sizes
                .iter()
                .map(|s| {
                    let rates: Vec<String> = s.rates.iter().map(|r| r.to_string()).collect();
                    format!("{}x{}@{}", s.width, s.height, rates.join("/"))
                })
                .collect();
            println!(
                "        {} ({}): {}",
                format.fourcc,
                format.description,
                sizes.join(" ")
            );
        }
    }
    let camera = cameras
        .iter()
        .find(|c| c.path.to_str() == Some(device))
        .ok_or_else(|| format!("{device} is not listed"))?;
    for wanted in [V4l2Format::Yuyv, V4l2Format::Nv12, V4l2Format::Yu12] {
        let format = camera
            .formats
            .iter()
            .find(|f| f.format == Some(wanted))
            .ok_or_else(|| format!("{wanted} is not listed"))?;
        if format.sizes.is_empty() || format.sizes.iter().all(|s| s.rates.is_empty()) {
            return Err(format!("{wanted} lists no sizes or rates"));
        }
    }
    Ok(())
}

fn capture(device: &str, format: V4l2Format, size: (u32, u32)) -> Result<(), String> {
    let mut options = V4l2Options::default();
    options.format = Some(format);
    options.size = Some(size);
    options.fps = Some(30);
    let source = V4l2Source::open(device, options).map_err(|e| e.to_string())?;
    let info = source.info();
    if (info.width, info.height) != size || Some(info.format) != format.pixel_format() {
        return Err(format!("negotiated {info:?}"));
    }
    println!("      {format}: {info:?}");
    let started = Instant::now();
    let frames: Vec<Frame> = source
        .take(FRAMES)
        .collect::<Result<_, CaptureError>>()
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    println!("      {} frames in {elapsed:.2?}", frames.len());
    if frames.len() != FRAMES {
        return Err(format!("{} frames", frames.len()));
    }
    for (i, frame) in frames.iter().enumerate() {
        if frame.counter() != i as u64 {
            return Err(format!("frame {i} has counter {}", frame.counter()));
        }
        if (frame.width(), frame.height(), frame.format()) != (size.0, size.1, info.format) {
            return Err(format!("frame {i} is {frame:?}"));
        }
    }
    for pair in frames.windows(2) {
        if pair[1].time().instant < pair[0].time().instant {
            return Err("capture times go backwards".into());
        }
    }
    // vivid's picture moves (and shows a running counter): the first and last frames differ.
    let (first, last) = (&frames[0], &frames[FRAMES - 1]);
    if first.to_packed() == last.to_packed() {
        return Err("the first and last frames are identical".into());
    }
    // And every frame converts to I420 for the encoder.
    last.to_format(PixelFormat::I420)
        .map_err(|e| format!("cannot convert to I420: {e}"))?;
    if elapsed > Duration::from_secs(30) {
        return Err(format!("{FRAMES} frames took {elapsed:?}"));
    }
    Ok(())
}

fn nearest(device: &str) -> Result<(), String> {
    // vivid's webcam input offers 320x180, 640x360, 640x480, 1280x720, 1920x1080 (and more):
    // 700x500 is none of them, and 640x480 is the nearest.
    let mut options = V4l2Options::default();
    options.format = Some(V4l2Format::Yuyv);
    options.size = Some((700, 500));
    options.fps = Some(29);
    let mut source = V4l2Source::open(device, options).map_err(|e| e.to_string())?;
    let info = source.info();
    println!("      700x500 at 29 fps gave {info:?}");
    if (info.width, info.height) != (640, 480) {
        return Err(format!("700x500 gave {}x{}", info.width, info.height));
    }
    let frame = source
        .next()
        .ok_or("no frame")?
        .map_err(|e| e.to_string())?;
    if (frame.width(), frame.height()) != (640, 480) {
        return Err(format!("the frame is {}x{}", frame.width(), frame.height()));
    }
    Ok(())
}

fn missing() -> Result<(), String> {
    match V4l2Source::open("/dev/video9", V4l2Options::default()) {
        Ok(_) => Err("/dev/video9 opened".into()),
        Err(err) if err.to_string() == "/dev/video9: no such device" => Ok(()),
        Err(err) => Err(format!("unexpected error: {err}")),
    }
}

fn busy(device: &str) -> Result<(), String> {
    let mut options = V4l2Options::default();
    options.format = Some(V4l2Format::Yuyv);
    options.size = Some((640, 480));
    let mut first = V4l2Source::open(device, options.clone()).map_err(|e| e.to_string())?;
    first.next().ok_or("no frame")?.map_err(|e| e.to_string())?;
    match V4l2Source::open(device, options) {
        Ok(_) => Err("a second open of a streaming camera succeeded".into()),
        Err(err) if err.to_string().contains("in use by another program") => {
            println!("      {err}");
            Ok(())
        }
        Err(err) => Err(format!("unexpected error: {err}")),
    }
}

/// vivid's "Disconnect" button makes the device act unplugged: every call on an open handle
/// fails with ENODEV, and opening it fails the same way, until the last handle to it is
/// closed; then vivid plugs it back in by itself. A second handle held here keeps it unplugged
/// for a while, so the source must keep retrying until it is back.
fn unplugged(device: &str) -> Result<(), String> {
    let mut options = V4l2Options::default();
    options.format = Some(V4l2Format::Yuyv);
    options.size = Some((640, 480));
    options.fps = Some(30);
    options.frame_timeout = Duration::from_secs(1);
    let mut source = V4l2Source::open(device, options).map_err(|e| e.to_string())?;
    for _ in 0..5 {
        source
            .next()
            .ok_or("no frame")?
            .map_err(|e| e.to_string())?;
    }
    let before = source
        .next()
        .ok_or("no frame")?
        .map_err(|e| e.to_string())?
        .counter();

    let plug = v4l::Device::with_path(device).map_err(|e| format!("a second handle: {e}"))?;
    let disconnect = plug
        .query_controls()
        .map_err(|e| format!("listing the controls: {e}"))?
        .into_iter()
        .find(|c| c.name == "Disconnect")
        .ok_or("no Disconnect control (is this vivid, loaded without no_error_inj=1?)")?;
    plug.set_control(v4l::Control {
        id: disconnect.id,
        value: v4l::control::Value::None,
    })
    .map_err(|e| format!("pressing Disconnect: {e}"))?;
    let unplugged_at = Instant::now();

    // Buffers already filled may still come; then the source must say the camera is gone.
    let first = loop {
        match source.next() {
            Some(Ok(_)) if unplugged_at.elapsed() < Duration::from_secs(5) => continue,
            Some(Ok(_)) => return Err("frames kept coming for 5 s after the unplug".into()),
            Some(Err(err)) => break err.to_string(),
            None => return Err("the source ended instead of retrying".into()),
        }
    };
    println!("      unplugged: {first}");
    if !first.starts_with(device) || !first.contains("gone (unplugged?)") {
        return Err(format!("an unclear error: {first}"));
    }
    // While the device is away, every try fails and says so, and none blocks for long.
    let mut retries = Vec::new();
    while unplugged_at.elapsed() < Duration::from_millis(1500) || retries.len() < 2 {
        let asked = Instant::now();
        match source.next() {
            Some(Err(err)) => retries.push(err.to_string()),
            Some(Ok(_)) => return Err("a frame while the device was unplugged".into()),
            None => return Err("the source ended instead of retrying".into()),
        }
        if asked.elapsed() > Duration::from_secs(3) {
            return Err(format!("one try took {:?}", asked.elapsed()));
        }
    }
    println!(
        "      {} retries, the last: {}",
        retries.len(),
        retries[retries.len() - 1]
    );
    if let Some(unclear) = retries.iter().find(|r| !r.contains("retrying")) {
        return Err(format!("an unclear retry error: {unclear}"));
    }

    // The last other handle closes: vivid plugs the device back in.
    drop(plug);
    let replugged_at = Instant::now();
    let mut frames = Vec::new();
    while frames.len() < 10 {
        if replugged_at.elapsed() > Duration::from_secs(15) {
            return Err(format!("{} frames in 15 s after the replug", frames.len()));
        }
        match source.next() {
            Some(Ok(frame)) => frames.push(frame),
            Some(Err(err)) => println!("      meanwhile: {err}"),
            None => return Err("the source ended instead of retrying".into()),
        }
    }
    println!(
        "      back after {:.2?}: frames {}..={}",
        replugged_at.elapsed(),
        frames[0].counter(),
        frames[frames.len() - 1].counter()
    );
    if frames[0].counter() <= before {
        return Err("the frame counter went back".into());
    }
    if frames
        .iter()
        .any(|f| (f.width(), f.height(), f.format()) != (640, 480, PixelFormat::Yuyv))
    {
        return Err("frames of another mode after the replug".into());
    }
    if frames[0].to_packed() == frames[9].to_packed() {
        return Err("the picture does not move after the replug".into());
    }
    Ok(())
}

/// vivid has no H.264: passing it through is refused, naming what the camera offers.
fn no_h264(device: &str) -> Result<(), String> {
    match V4l2H264Source::open(device, V4l2Options::default()) {
        Ok(_) => Err("H.264 opened on a camera that does not offer it".into()),
        Err(err) => {
            let text = err.to_string();
            println!("      {text}");
            if text.contains("does not offer H264") && text.contains("YUYV") {
                Ok(())
            } else {
                Err(format!("unexpected error: {text}"))
            }
        }
    }
}

/// H.264 through a real V4L2 device: `v4l2loopback` (built for this kernel by
/// `scripts/v4l2loopback.sh`, handed in through `/out` with a clip of x264's by
/// `tests/v4l2_vm.rs`), fed one access unit a buffer by a writer thread at 30 fps, as a UVC
/// camera fills them, and read back by `V4l2H264Source`.
fn loopback_h264() -> Result<(), String> {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use rtcgear_capture::h264::{self, AccessUnitSplitter};
    use rtcgear_capture::EncodedSource;

    // The host copies the files in once the VM is up, the marker last.
    let ready = std::path::Path::new("/out/loopback-ready");
    let waited = Instant::now();
    while !ready.exists() {
        if waited.elapsed() > Duration::from_secs(60) {
            return Err("/out/loopback-ready did not appear within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = std::process::Command::new("insmod")
        .args(["/out/v4l2loopback.ko", "devices=1", "video_nr=9"])
        .args(["exclusive_caps=0", "card_label=loopback"])
        .status()
        .map_err(|e| format!("insmod: {e}"))?;
    if !status.success() {
        return Err(format!("insmod v4l2loopback.ko: {status}"));
    }
    let node = "/dev/video9";
    while !std::path::Path::new(node).exists() {
        if waited.elapsed() > Duration::from_secs(70) {
            return Err(format!("{node} did not appear"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let clip = std::fs::read("/out/clip.h264").map_err(|e| format!("/out/clip.h264: {e}"))?;
    let mut splitter = AccessUnitSplitter::new();
    splitter.push(&clip);
    let mut units = Vec::new();
    while let Some(unit) = splitter.next_unit() {
        units.push(unit);
    }
    units.extend(splitter.finish());
    println!("      the clip has {} access units", units.len());

    // The writer: the output side of the loopback, as a camera's encoder would fill buffers.
    let output = v4l::Device::with_path(node).map_err(|e| format!("{node}: {e}"))?;
    let format = v4l::Format::new(320, 240, v4l::FourCC::new(b"H264"));
    v4l::video::Output::set_format(&output, &format)
        .map_err(|e| format!("setting the output format: {e}"))?;
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(node)
        .map_err(|e| format!("{node} for writing: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = std::thread::spawn({
        let (units, stop) = (units.clone(), stop.clone());
        move || -> Result<(), String> {
            let started = Instant::now();
            for (n, unit) in units.iter().cycle().enumerate() {
                if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(30) {
                    return Ok(());
                }
                // One write is one buffer.
                writer
                    .write_all(unit)
                    .map_err(|e| format!("writing picture {n}: {e}"))?;
                let due = started + Duration::from_millis(33) * (n as u32 + 1);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            Ok(())
        }
    });
    // The capture side offers H.264 once the first picture is written.
    std::thread::sleep(Duration::from_millis(200));
    let result = (|| {
        let mut options = V4l2Options::default();
        options.size = Some((320, 240));
        options.fps = Some(30);
        let source = V4l2H264Source::open(node, options).map_err(|e| e.to_string())?;
        let info = source.info();
        println!("      {info:?}");
        if (info.width, info.height) != (320, 240) {
            return Err(format!("negotiated {}x{}", info.width, info.height));
        }
        match info.profile {
            Some(profile) if profile.is_constrained_baseline() => {}
            other => return Err(format!("the profile is {other:?}")),
        }
        let read: Vec<_> = source
            .take(45)
            .collect::<Result<_, CaptureError>>()
            .map_err(|e| e.to_string())?;
        if !read[0].keyframe || !h264::has_sps(&read[0].data) {
            return Err("the first picture is not a keyframe with its SPS".into());
        }
        // Every picture as written, in order, none lost, from a keyframe on.
        let start = units
            .iter()
            .position(|unit| *unit == read[0].data)
            .ok_or("the first picture read is none of those written")?;
        for (i, unit) in read.iter().enumerate() {
            if unit.counter != i as u64 {
                return Err(format!("picture {i} has counter {}", unit.counter));
            }
            let written = &units[(start + i) % units.len()];
            if unit.data != *written || unit.keyframe != h264::is_keyframe(written) {
                return Err(format!("picture {i} differs from the one written"));
            }
        }
        println!(
            "      45 pictures as written, {} keyframes",
            read.iter().filter(|u| u.keyframe).count()
        );
        Ok(())
    })();
    stop.store(true, Ordering::SeqCst);
    let fed = feeder
        .join()
        .unwrap_or_else(|_| Err("the writer panicked".into()));
    result.and(fed)
}
