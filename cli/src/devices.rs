//! `rtcgear devices`: the V4L2 cameras with their formats, sizes and frame rates.

use std::io::Write;

use rtcgear_capture::v4l2::{V4l2Format, V4l2Source};

/// Prints every V4L2 camera with its formats, sizes and frame rates.
pub fn run() -> anyhow::Result<()> {
    let cameras = V4l2Source::list();
    let mut out = std::io::stdout().lock();
    if cameras.is_empty() {
        writeln!(
            out,
            "no V4L2 cameras found (no /dev/video* node that captures video)"
        )?;
        return Ok(());
    }
    for camera in cameras {
        writeln!(
            out,
            "{}  {} (driver {}, {})",
            camera.path.display(),
            camera.name,
            camera.driver,
            camera.bus
        )?;
        for format in &camera.formats {
            let note = match format.format {
                None => "  (rtcgear cannot read this one yet)",
                Some(V4l2Format::H264) => "  (passed through with --format h264)",
                Some(_) => "",
            };
            writeln!(out, "  {} {}{note}", format.fourcc, format.description)?;
            for size in &format.sizes {
                let rates: Vec<String> = size.rates.iter().map(|r| r.to_string()).collect();
                writeln!(
                    out,
                    "    {}x{}  {} fps",
                    size.width,
                    size.height,
                    rates.join(", ")
                )?;
            }
            if format.stepwise {
                writeln!(out, "    (any size between these two, in steps)")?;
            }
        }
    }
    Ok(())
}
