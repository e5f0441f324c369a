//! Helpers shared by the integration tests and the benchmark: capture's test pattern and the
//! FFmpeg command-line tools as an independent decoder.

#![allow(dead_code)] // Each user takes the helpers it needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rtcgear_capture::{AccessUnit, Frame, TestPattern};
use rtcgear_test_support::tempdir::TempDir;

/// `count` frames of capture's test pattern (ramps, a sliding square and the timestamp stamp),
/// made as fast as possible, each with its capture time.
pub fn pattern(width: u32, height: u32, count: u64) -> Vec<Frame> {
    let pattern = TestPattern::builder()
        .size(width, height)
        .paced(false)
        .frames(count)
        .build()
        // The test and bench sizes are even and wide enough for the stamp.
        .expect("a valid test pattern size");
    pattern
        .collect::<Result<_, _>>()
        .expect("the test pattern draws every frame")
}

/// Runs one of FFmpeg's tools and returns its output; panics with a clear message when the tool
/// is missing or fails, because a test that needs a decoder must not pass without one.
pub fn run(tool: &str, args: &[&str]) -> Output {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!(
            "cannot run `{tool}` ({err}): these tests decode with the FFmpeg command-line tools; \
             install them (apt-get install ffmpeg) or run the repository's test script"
        )
        });
    assert!(
        output.status.success(),
        "`{tool} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes the access units one after another, an Annex B elementary stream, to the file
/// `name` in `dir`, and returns its path.
pub fn write_stream(packets: &[AccessUnit], dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    let bytes: Vec<u8> = packets
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    std::fs::write(&path, bytes).expect("the temp folder is writable");
    path
}

/// `(key_frame, pict_type)` of every frame FFmpeg decodes from an H.264 stream.
pub fn probe_frames(path: &Path) -> Vec<(bool, String)> {
    let path = path.to_str().expect("temp paths are UTF-8");
    let output = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "h264",
            "-show_frames",
            "-show_entries",
            "frame=key_frame,pict_type",
            "-of",
            "csv=p=0",
            path,
        ],
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            // Side data (x264's SEI on the first frame) may follow as further fields.
            let mut fields = line.split(',');
            let key = fields.next().unwrap_or_default().trim() == "1";
            let kind = fields.next().unwrap_or_default().trim().to_owned();
            (key, kind)
        })
        .collect()
}

/// A field of the stream as ffprobe reports it: `profile`, `level`, `width`, ...
pub fn probe_stream(path: &Path, field: &str) -> String {
    let path = path.to_str().expect("temp paths are UTF-8");
    let entries = format!("stream={field}");
    let output = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "h264",
            "-show_entries",
            &entries,
            "-of",
            "default=nw=1:nk=1",
            path,
        ],
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Decodes an H.264 stream with FFmpeg to packed I420 frames.
pub fn decode(path: &Path, width: u32, height: u32) -> Vec<Vec<u8>> {
    let path = path.to_str().expect("temp paths are UTF-8");
    let output = run(
        "ffmpeg",
        &[
            "-v", "error", "-f", "h264", "-i", path, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-",
        ],
    );
    let frame_len = (width * height * 3 / 2) as usize;
    assert_eq!(
        output.stdout.len() % frame_len,
        0,
        "FFmpeg's output is not a whole number of {width}x{height} frames"
    );
    output
        .stdout
        .chunks_exact(frame_len)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The PSNR in dB of a picture against the original, over all samples.
pub fn psnr(original: &[u8], decoded: &[u8]) -> f64 {
    assert_eq!(original.len(), decoded.len());
    let squared: u64 = original
        .iter()
        .zip(decoded)
        .map(|(&a, &b)| {
            let d = i64::from(a) - i64::from(b);
            (d * d) as u64
        })
        .sum();
    if squared == 0 {
        return f64::INFINITY;
    }
    let mse = squared as f64 / original.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Writes VP8 frames into an IVF file (the plain container libvpx's tools and FFmpeg read:
/// a 32-byte header, then each frame behind its length and pts) named `name` in `dir`.
pub fn write_ivf(
    packets: &[AccessUnit],
    width: u32,
    height: u32,
    dir: &TempDir,
    name: &str,
) -> PathBuf {
    let path = dir.path().join(name);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"DKIF");
    bytes.extend_from_slice(&0u16.to_le_bytes()); // version
    bytes.extend_from_slice(&32u16.to_le_bytes()); // header length
    bytes.extend_from_slice(b"VP80");
    bytes.extend_from_slice(&(width as u16).to_le_bytes());
    bytes.extend_from_slice(&(height as u16).to_le_bytes());
    bytes.extend_from_slice(&30u32.to_le_bytes()); // time base denominator (rate)
    bytes.extend_from_slice(&1u32.to_le_bytes()); // time base numerator (scale)
    bytes.extend_from_slice(&(packets.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes()); // unused
    for (pts, packet) in packets.iter().enumerate() {
        bytes.extend_from_slice(&(packet.data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(pts as u64).to_le_bytes());
        bytes.extend_from_slice(&packet.data);
    }
    std::fs::write(&path, bytes).expect("the temp folder is writable");
    path
}

/// Decodes an IVF file of VP8 with FFmpeg to packed I420 frames of `width`x`height`: FFmpeg
/// writes the size the bitstream's key frames carry, so a wrong size shows as a wrong length.
pub fn decode_ivf(path: &Path, width: u32, height: u32) -> Vec<Vec<u8>> {
    let path = path.to_str().expect("temp paths are UTF-8");
    let output = run(
        "ffmpeg",
        &[
            "-v", "error", "-c:v", "vp8", "-f", "ivf", "-i", path, "-f", "rawvideo", "-pix_fmt",
            "yuv420p", "-",
        ],
    );
    let frame_len = packed_i420_len(width, height);
    assert_eq!(
        output.stdout.len() % frame_len,
        0,
        "FFmpeg's output is not a whole number of {width}x{height} frames"
    );
    output
        .stdout
        .chunks_exact(frame_len)
        .map(<[u8]>::to_vec)
        .collect()
}

/// `(key_frame, width, height)` of every frame FFmpeg decodes from an IVF file of VP8.
pub fn probe_ivf_frames(path: &Path) -> Vec<(bool, u32, u32)> {
    let path = path.to_str().expect("temp paths are UTF-8");
    let output = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "ivf",
            "-show_frames",
            "-show_entries",
            "frame=key_frame,width,height",
            "-of",
            "csv=p=0",
            path,
        ],
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let number = |index: usize| -> u32 {
                fields
                    .get(index)
                    .and_then(|field| field.parse().ok())
                    .unwrap_or_else(|| panic!("ffprobe's line {line:?} lacks field {index}"))
            };
            (number(0) == 1, number(1), number(2))
        })
        .collect()
}

/// The length of a packed I420 picture.
pub fn packed_i420_len(width: u32, height: u32) -> usize {
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    (width * height + 2 * chroma_width * chroma_height) as usize
}
