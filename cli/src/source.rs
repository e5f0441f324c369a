//! Opening the source a `--source` or `--stream` value names: `rtcgear_capture::open` with
//! the serve flags as its options, the stabilizer on top when asked for.

use std::time::Duration;

use anyhow::{bail, Context};
use rtcgear_capture::{OpenOptions, Opened, OpenedSource, PiCodec, Source, SourceSpec};
use rtcgear_stabilize::Stabilized;

use crate::args::{gray, ServeArgs};

/// Why H.264 is not passed through, when the flags ask for something only decoding and
/// encoding again can do (--bitrate is the library's to weigh: a Pi's hardware encoder takes
/// it).
fn transcode_reason(args: &ServeArgs) -> Option<&'static str> {
    if args.transcode {
        Some("--transcode asks for it")
    } else if gray(args) {
        Some("--format gray needs the pictures")
    } else if args.stabilize {
        Some("--stabilize needs the pictures")
    } else {
        None
    }
}

/// Builds the source a `--source` or `--stream` value names (through
/// `rtcgear_capture::open`, with the stabilizer on top when asked for), and says whether it
/// is live (a network stream or camera, to keep reading even when nobody watches).
pub fn open_source(flag: &str, spec: &str, args: &ServeArgs) -> anyhow::Result<Opened> {
    let parsed: SourceSpec = spec
        .parse()
        .map_err(|e| anyhow::anyhow!("{flag} {spec:?}: {e}"))?;
    let camera_format = args.format.clone().filter(|_| !gray(args));
    if let Some(format) = camera_format.as_deref() {
        if !matches!(parsed, SourceSpec::Camera(_)) {
            bail!(
                "--format {format}: a capture format applies to V4L2 cameras only; other \
                 sources take --format gray"
            );
        }
    }
    if camera_format.as_deref() == Some("h264") {
        // Said here, where the flags have names: the library would say the same without them.
        let reason =
            transcode_reason(args).or(args.bitrate.map(|_| "--bitrate sets the encoder's rate"));
        if let Some(reason) = reason {
            bail!(
                "--format h264 passes the camera's H.264 through, but {reason}: pick a raw \
                 camera format (--format yuyv, nv12, yu12 or mjpeg) to have it encoded here"
            );
        }
    }
    let mut options = OpenOptions::default();
    options.size = args.size;
    options.fps = args.fps;
    options.camera_format = camera_format;
    options.gray = gray(args);
    options.decode_reason = transcode_reason(args).map(str::to_string);
    options.bitrate_kbps = args.bitrate;
    options.looping = args.looping;
    options.start_delay = Duration::from_secs_f64(args.start_delay);
    options.stream_mode = args.stream_mode;
    options.pi_codec = match args.pi_codec.as_str() {
        "h264" => PiCodec::H264,
        "yuv420" => PiCodec::Yuv420,
        _ => PiCodec::Auto,
    };
    let mut opened = rtcgear_capture::open(&parsed, &options).with_context(|| {
        if args.stream_mode {
            format!("{flag} {spec:?} (--stream-mode)")
        } else {
            format!("{flag} {spec:?}")
        }
    })?;
    opened.source = match opened.source {
        OpenedSource::Frames(frames) => OpenedSource::Frames(stabilized(frames, args)?),
        encoded => encoded,
    };
    Ok(opened)
}

/// Wraps the source in the stabilizer when --stabilize asks for it.
fn stabilized(source: Box<dyn Source>, args: &ServeArgs) -> anyhow::Result<Box<dyn Source>> {
    if !args.stabilize {
        return Ok(source);
    }
    let config = args.stabilizer.config();
    let stabilized = Stabilized::new(source, config).context("--stabilize")?;
    Ok(Box::new(stabilized))
}
