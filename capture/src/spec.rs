//! The one source string, as vidgear's `source`: `test`, a camera, a file or a URL.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::CaptureError;

/// URL schemes that name a network stream (read through FFmpeg).
pub const NETWORK_SCHEMES: [&str; 10] = [
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "rtp", "tcp",
];

/// What a source string names.
///
/// ```
/// use rtcgear_capture::SourceSpec;
///
/// assert_eq!("test".parse::<SourceSpec>()?, SourceSpec::TestPattern);
/// assert_eq!("0".parse::<SourceSpec>()?, SourceSpec::Camera("/dev/video0".into()));
/// assert_eq!("pi:1".parse::<SourceSpec>()?, SourceSpec::PiCamera(1));
/// assert!(matches!("rtsp://cam.local/live".parse::<SourceSpec>()?, SourceSpec::Url(_)));
/// assert!(matches!("clips/yard.mp4".parse::<SourceSpec>()?, SourceSpec::File(_)));
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceSpec {
    /// The built-in test pattern (`test`).
    TestPattern,
    /// A V4L2 camera: a device path, or a number `N` for `/dev/videoN`.
    Camera(PathBuf),
    /// A Raspberry Pi camera, by number (`pi:0`).
    PiCamera(u32),
    /// A video file.
    File(PathBuf),
    /// A network stream, e.g. `rtsp://…`, `http://…/live.ts`, `srt://…`, `udp://…`.
    Url(String),
}

impl FromStr for SourceSpec {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |why: String| CaptureError::InvalidArgument(why);
        if s.is_empty() {
            return Err(bad(
                "the source is empty; try `test`, a camera number, a file or a URL".into(),
            ));
        }
        if s.contains('\0') {
            return Err(bad("the source contains a NUL byte".into()));
        }
        if matches!(
            s.to_ascii_lowercase().as_str(),
            "test" | "testpattern" | "pattern"
        ) {
            return Ok(SourceSpec::TestPattern);
        }
        if !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(SourceSpec::Camera(PathBuf::from(format!("/dev/video{s}"))));
        }
        if s.starts_with("/dev/video") || s.starts_with("/dev/v4l/") {
            return Ok(SourceSpec::Camera(PathBuf::from(s)));
        }
        if let Some(number) = s.strip_prefix("pi:") {
            return number
                .parse::<u32>()
                .ok()
                .filter(|n| *n < 16)
                .map(SourceSpec::PiCamera)
                .ok_or_else(|| bad(format!("{s:?}: a Pi camera is pi:N with N from 0 to 15")));
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if scheme == "file" {
                return Ok(SourceSpec::File(PathBuf::from(rest)));
            }
            if NETWORK_SCHEMES.contains(&scheme.as_str()) {
                if rest.is_empty() {
                    return Err(bad(format!("{s:?}: the URL has no host")));
                }
                return Ok(SourceSpec::Url(s.to_string()));
            }
            return Err(bad(format!(
                "{s:?}: unknown URL scheme {scheme:?} (rtcgear reads {})",
                NETWORK_SCHEMES.join(", ")
            )));
        }
        Ok(SourceSpec::File(PathBuf::from(s)))
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::TestPattern => f.write_str("test"),
            SourceSpec::Camera(path) | SourceSpec::File(path) => write!(f, "{}", path.display()),
            SourceSpec::PiCamera(n) => write!(f, "pi:{n}"),
            SourceSpec::Url(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<SourceSpec, &str>) {
        match (input.parse::<SourceSpec>(), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input:?}"),
            (Err(err), Err(why)) => assert!(err.to_string().contains(why), "{input:?}: {err}"),
            (got, want) => panic!("{input:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn every_kind_of_source_string() {
        check("test", Ok(SourceSpec::TestPattern));
        check(" Test ", Ok(SourceSpec::TestPattern));
        check("2", Ok(SourceSpec::Camera("/dev/video2".into())));
        check("/dev/video0", Ok(SourceSpec::Camera("/dev/video0".into())));
        check(
            "/dev/v4l/by-id/usb-cam",
            Ok(SourceSpec::Camera("/dev/v4l/by-id/usb-cam".into())),
        );
        check("pi:0", Ok(SourceSpec::PiCamera(0)));
        check("pi:x", Err("pi:N"));
        check("pi:99", Err("pi:N"));
        check(
            "rtsp://cam/live",
            Ok(SourceSpec::Url("rtsp://cam/live".into())),
        );
        check("SRT://h:9000", Ok(SourceSpec::Url("SRT://h:9000".into())));
        check("udp://@:1234", Ok(SourceSpec::Url("udp://@:1234".into())));
        check(
            "file:///tmp/a.mp4",
            Ok(SourceSpec::File("/tmp/a.mp4".into())),
        );
        check("ftp://x/y.mp4", Err("unknown URL scheme"));
        check("rtsp://", Err("no host"));
        check("", Err("empty"));
        check("a\0b", Err("NUL"));
        check("12345", Ok(SourceSpec::File("12345".into())));
        check("clip.mkv", Ok(SourceSpec::File("clip.mkv".into())));
    }

    #[test]
    fn display_round_trips() {
        for s in ["test", "/dev/video1", "pi:3", "rtsp://h/x", "a.mp4"] {
            let spec: SourceSpec = s.parse().unwrap();
            assert_eq!(spec.to_string().parse::<SourceSpec>().unwrap(), spec);
        }
    }
}
