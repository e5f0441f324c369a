//! A stand-in for Raspberry Pi OS's `rpicam-vid`, for tests on machines without a Pi camera:
//! the script `data/rpicam-vid-standin` of this crate takes the options rtcgear passes and
//! writes what `rpicam-vid` writes (raw YUV 4:2:0 frames, or Annex B H.264 with SPS/PPS
//! before every IDR), in real time, made by the FFmpeg CLI.
//!
//! Its environment: `STANDIN_LOG=FILE` appends `PID ARGS...` to `FILE` at each start;
//! `STANDIN_FRAMES=N` makes it exit with status 1 after `N` frames, as a crashing camera stack
//! would.

use std::path::PathBuf;

/// The stand-in's path, to pass as rtcgear's `rpicam-vid` (`RTCGEAR_RPICAM_VID`, or the
/// source's program option).
pub fn standin() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/rpicam-vid-standin"
    ))
}
