//! Video clips made at test time by the FFmpeg CLI (Debian's `ffmpeg`, which the README's
//! test command installs).
//!
//! ```no_run
//! use rtcgear_test_support::clips::Clip;
//! use rtcgear_test_support::tempdir::TempDir;
//!
//! // Two seconds of FFmpeg's test picture, H.264 without B-frames, in a test's own folder:
//! let dir = TempDir::new("clip");
//! let clip = Clip::testsrc2(320, 240, 30, 2)
//!     .h264()
//!     .args(&["-profile:v", "baseline"])
//!     .make(&dir.path().join("clip.mp4"));
//! // Or made once for every test of this process that asks for the same name:
//! let shared = Clip::testsrc2(320, 240, 30, 2).h264().cached("clip.mp4");
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// `ffmpeg -hide_banner -loglevel error -nostdin -y`: the FFmpeg CLI, quiet, never asking,
/// overwriting its output.
pub fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
    command
}

/// A clip to make: FFmpeg's arguments before the output file.
#[derive(Debug, Clone, Default)]
pub struct Clip {
    args: Vec<String>,
}

impl Clip {
    /// A clip of FFmpeg's arguments `args` (inputs and output options).
    pub fn new(args: &[&str]) -> Clip {
        Clip::default().args(args)
    }

    /// `seconds` of FFmpeg's `testsrc2` picture at `width`x`height` and `fps`, with the
    /// output options still to come (the encoder's default is x264's High profile with
    /// B-frames; see [`Clip::h264`]).
    pub fn testsrc2(width: u32, height: u32, fps: u32, seconds: u32) -> Clip {
        Clip::new(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={width}x{height}:rate={fps}"),
            "-t",
            &seconds.to_string(),
        ])
    }

    /// Encoded by x264 in 4:2:0 (`-c:v libx264 -pix_fmt yuv420p`).
    pub fn h264(self) -> Clip {
        self.args(&["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    }

    /// More of FFmpeg's arguments, after the ones so far.
    pub fn args(mut self, args: &[&str]) -> Clip {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Makes the clip at `path` (its extension picks the container) and returns the path.
    ///
    /// # Panics
    ///
    /// If FFmpeg is missing or fails.
    pub fn make(&self, path: &Path) -> PathBuf {
        let status = ffmpeg()
            .args(&self.args)
            .arg(path)
            .status()
            .expect("ffmpeg is installed (the README's test command installs it)");
        assert!(
            status.success(),
            "ffmpeg could not make {}: {status}",
            path.display()
        );
        path.to_path_buf()
    }

    /// The clip named `name` in a folder of this process's clips, made by the first test
    /// that asks for it. Tests run in parallel: each writes its own copy and renames it into
    /// place, so no test ever reads a half-written clip.
    ///
    /// # Panics
    ///
    /// As [`Clip::make`].
    pub fn cached(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rtcgear-clips-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp folder");
        let path = dir.join(name);
        if !path.exists() {
            let partial = dir
                .join(format!("{:?}-{name}", std::thread::current().id()).replace(['(', ')'], ""));
            self.make(&partial);
            std::fs::rename(&partial, &path).expect("the clip is moved into place");
        }
        path
    }
}
