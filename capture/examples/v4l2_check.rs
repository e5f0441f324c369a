//! Checks `V4l2Source` against a real V4L2 device: the one in `V4L2_DEVICE` (default
//! `/dev/video0`), normally the kernel's `vivid` virtual camera inside the VM of
//! `../shared/tools/v4l2-vm.sh` (see `tests/v4l2_vm.rs`).
//!
//! It lists the device, captures 30 frames in YUYV and 30 in NV12 and YU12 (when offered),
//! checks sizes, counters and that the picture moves, checks that a size the camera lacks gets
//! the nearest one, and that a missing device gives a clear error. Exits 1 on any failure.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rtcgear_capture::{
    CaptureError, Frame, PixelFormat, Source, V4l2Format, V4l2Options, V4l2Source,
};

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
    if (info.width, info.height) != size || info.format != format.pixel_format() {
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
