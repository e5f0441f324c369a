//! `rtcgear stabilize IN OUT`: a video file in, a stabilized H.264 file (MP4 or MKV) out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use ffmpeg_next as ff;
use rtcgear_capture::ffmpeg::{FfmpegOptions, FfmpegSource};
use rtcgear_capture::{AccessUnit, Frame, Source};
use rtcgear_encode::{Encoder, EncoderConfig, RateControl};
use rtcgear_stabilize::{Motion, Stabilizer, StabilizerConfig};

/// What the command needs besides the stabilizer's settings.
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
    pub config: StabilizerConfig,
    pub crf: f32,
}

pub fn run(job: Job) -> anyhow::Result<()> {
    let extension = job
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(extension.as_deref(), Some("mp4" | "mkv" | "mov")) {
        bail!(
            "OUT {}: the name must end in .mp4, .mkv or .mov",
            job.output.display()
        );
    }
    if !job.input.is_file() {
        bail!("IN {}: no such file", job.input.display());
    }
    let input = job.input.to_str().context("IN: the path is not UTF-8")?;
    let mut options = FfmpegOptions::default();
    options.paced = false;
    options.reconnect = false;
    let source = FfmpegSource::open(input, options).with_context(|| format!("IN {input}"))?;
    let info = source.info();
    let (width, height) = job.config.output_size(info.width, info.height);
    let mut stabilizer = Stabilizer::new(job.config.clone()).context("the stabilizer settings")?;
    // A second stabilizer only measures the motion left in the output, for the report.
    let mut meter =
        Stabilizer::new(StabilizerConfig::new().smoothing_radius(1)).context("the jitter meter")?;
    let mut encoder_config = EncoderConfig::new(width, height, info.fps);
    encoder_config.rate = RateControl::Crf(job.crf);
    encoder_config.preset = "veryfast".into();
    encoder_config.tune = None;
    let mut encoder = Encoder::new(encoder_config).context("the encoder")?;

    let temp = temp_path(&job.output);
    let mut annexb = std::io::BufWriter::new(
        std::fs::File::create(&temp)
            .with_context(|| format!("OUT: cannot write next to {}", job.output.display()))?,
    );
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut frames_out = 0u64;
    let write = |packet: AccessUnit,
                 annexb: &mut std::io::BufWriter<std::fs::File>|
     -> anyhow::Result<()> {
        annexb
            .write_all(&packet.data)
            .context("writing the video")?;
        Ok(())
    };
    let mut take = |frame: Frame,
                    encoder: &mut Encoder,
                    meter: &mut Stabilizer,
                    after: &mut Vec<Motion>|
     -> anyhow::Result<()> {
        encoder.send_frame(&frame)?;
        meter.send_frame(frame)?;
        after.extend(meter.last_motion());
        while meter.receive_frame().is_some() {}
        frames_out += 1;
        Ok(())
    };
    for frame in source {
        let frame = frame.with_context(|| format!("reading {input}"))?;
        stabilizer.send_frame(frame)?;
        before.extend(stabilizer.last_motion());
        while let Some(frame) = stabilizer.receive_frame() {
            take(frame, &mut encoder, &mut meter, &mut after)?;
        }
        while let Some(packet) = encoder.receive_packet() {
            write(packet, &mut annexb)?;
        }
        if last_report.elapsed().as_secs_f64() >= 0.5 {
            let n = stabilizer.stats().frames;
            eprint!(
                "\rstabilizing: {n} frames ({:.0} frames/s)",
                n as f64 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    stabilizer.flush();
    while let Some(frame) = stabilizer.receive_frame() {
        take(frame, &mut encoder, &mut meter, &mut after)?;
    }
    encoder.flush()?;
    while let Some(packet) = encoder.receive_packet() {
        write(packet, &mut annexb)?;
    }
    annexb.flush().context("writing the video")?;
    drop(annexb);
    let frames = stabilizer.stats().frames;
    eprintln!(
        "\rstabilizing: {frames} frames in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if frames == 0 {
        let _ = std::fs::remove_file(&temp);
        bail!("IN {input}: no frames decoded");
    }
    let muxed = remux(&temp, &job.output, info.fps.num as i32, info.fps.den as i32);
    let _ = std::fs::remove_file(&temp);
    muxed.with_context(|| format!("OUT {}", job.output.display()))?;

    let (jitter_in, jitter_out) = (jitter(&before), jitter(&after));
    println!(
        "wrote {frames_out} frames of {width}x{height} H.264 to {}",
        job.output.display()
    );
    println!(
        "estimated jitter: {jitter_in:.2} px before, {jitter_out:.2} px after ({:.0}% removed; {} of {} motion estimates were unreliable)",
        if jitter_in > 0.0 { 100.0 * (1.0 - jitter_out / jitter_in) } else { 0.0 },
        stabilizer.stats().unreliable,
        frames
    );
    Ok(())
}

fn temp_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.h264", std::process::id()));
    output.with_file_name(name)
}

/// RMS in pixels of the high-frequency part of the motion: each frame's shift minus the mean
/// over the 15 frames around it.
fn jitter(motions: &[Motion]) -> f64 {
    if motions.len() < 3 {
        return 0.0;
    }
    let radius = 7usize;
    let mut sum = 0.0;
    for (i, m) in motions.iter().enumerate() {
        let window = &motions[i.saturating_sub(radius)..(i + radius + 1).min(motions.len())];
        let n = window.len() as f64;
        let (mx, my) = window
            .iter()
            .fold((0.0, 0.0), |(x, y), w| (x + w.dx / n, y + w.dy / n));
        sum += (m.dx - mx).powi(2) + (m.dy - my).powi(2);
    }
    (sum / motions.len() as f64).sqrt()
}

/// Puts the Annex B stream into the container `output`'s extension names.
fn remux(annexb: &Path, output: &Path, fps_num: i32, fps_den: i32) -> anyhow::Result<()> {
    ff::init()?;
    let mut options = ff::Dictionary::new();
    options.set("framerate", &format!("{fps_num}/{fps_den}"));
    let mut input =
        ff::format::input_with_dictionary(&annexb, options).context("reading back the video")?;
    let mut out = ff::format::output(&output).context("creating the file")?;
    let (in_index, parameters) = {
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .context("no video was written")?;
        (stream.index(), stream.parameters())
    };
    {
        let mut stream = out.add_stream(ff::encoder::find(ff::codec::Id::None))?;
        stream.set_parameters(parameters);
        // SAFETY: the stream's parameters are valid; a zero tag lets the muxer pick its own.
        unsafe {
            (*stream.parameters().as_mut_ptr()).codec_tag = 0;
        }
        stream.set_time_base(ff::Rational(fps_den, fps_num));
    }
    out.write_header().context("writing the header")?;
    let out_tb = out
        .stream(0)
        .map(|s| s.time_base())
        .context("the output stream")?;
    let frame_tb = ff::Rational(fps_den, fps_num);
    let mut index = 0i64;
    for (stream, mut packet) in input.packets() {
        if stream.index() != in_index {
            continue;
        }
        // Constrained baseline has no B-frames: presentation order is decoding order.
        packet.set_pts(Some(index));
        packet.set_dts(Some(index));
        packet.set_duration(1);
        packet.rescale_ts(frame_tb, out_tb);
        packet.set_position(-1);
        packet.set_stream(0);
        packet
            .write_interleaved(&mut out)
            .context("writing a frame")?;
        index += 1;
    }
    out.write_trailer().context("finishing the file")?;
    Ok(())
}
