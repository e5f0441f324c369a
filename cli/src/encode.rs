//! `rtcgear encode`: the test pattern encoded to an H.264 (Annex B) file, to check the encoder.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use rtcgear_capture::{AccessUnit, FrameRate, Source, TestPattern};
use rtcgear_encode::{Encoder, EncoderConfig, RateControl};

use crate::args::EncodeArgs;

/// Encodes `--frames` frames of the test pattern into `--output` and says how it went.
pub fn run(args: EncodeArgs) -> anyhow::Result<()> {
    let (width, height) = args.size;
    let fps = FrameRate::from_int(args.fps).context("--fps must be above 0")?;
    let pattern = TestPattern::builder()
        .size(width, height)
        .fps(fps)
        .paced(false)
        .frames(args.frames)
        .build()
        .context("--size: cannot make the test pattern")?;
    let mut config = EncoderConfig::new(width, height, fps);
    if let Some(kbps) = args.bitrate {
        config.rate = RateControl::Bitrate { kbps };
    }
    let mut encoder = Encoder::new(config).context("cannot start the encoder")?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("--output: cannot create {}", args.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut frames, mut bytes) = (0u64, 0u64);
    let info = pattern.info();
    let mut write =
        |packet: AccessUnit, out: &mut std::io::BufWriter<std::fs::File>| -> anyhow::Result<()> {
            out.write_all(&packet.data).context("writing the output")?;
            frames += 1;
            bytes += packet.data.len() as u64;
            Ok(())
        };
    for frame in pattern {
        let frame = frame?;
        encoder.send_frame(&frame)?;
        while let Some(packet) = encoder.receive_packet() {
            write(packet, &mut out)?;
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            eprintln!("encoded {} of {} frames", frame.counter() + 1, args.frames);
            last_report = Instant::now();
        }
    }
    encoder.flush()?;
    while let Some(packet) = encoder.receive_packet() {
        write(packet, &mut out)?;
    }
    out.flush().context("writing the output")?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "wrote {} frames of {}x{} H.264 ({} KiB, {:.0} frames/s) to {}",
        frames,
        info.width,
        info.height,
        bytes / 1024,
        frames as f64 / elapsed.max(1e-6),
        args.output.display()
    );
    println!(
        "play it with: ffplay -f h264 -framerate {} {}",
        args.fps,
        args.output.display()
    );
    Ok(())
}
