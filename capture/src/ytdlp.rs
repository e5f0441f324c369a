//! vidgear's `stream_mode`: a video site's page URL resolved to its media stream by `yt-dlp`.
//!
//! [`open`](crate::open) resolves the pages of the [`STREAMING_SITES`] always, and any URL
//! with [`OpenOptions::stream_mode`](crate::OpenOptions::stream_mode); it runs
//! [`resolve_with_ytdlp`] at start, and again at every reopen, since the media URLs expire.
//! This is the policy of `rtcgear serve --source`, public for programs that want the same.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::CaptureError;

/// The environment variable that names the `yt-dlp` program, overriding the search of `PATH`.
pub const YT_DLP_ENV: &str = "RTCGEAR_YT_DLP";

/// Hosts whose page URLs are resolved through `yt-dlp` without being asked: they never serve
/// a media stream at a page URL.
pub const STREAMING_SITES: [&str; 6] = [
    "youtube.com",
    "youtu.be",
    "twitch.tv",
    "vimeo.com",
    "dailymotion.com",
    "m.youtube.com",
];

/// Whether `url` is a page of one of the [`STREAMING_SITES`].
///
/// ```
/// use rtcgear_capture::ytdlp::is_streaming_site;
///
/// assert!(is_streaming_site("https://www.youtube.com/watch?v=dQw4w9WgXcQ"));
/// assert!(is_streaming_site("https://youtu.be/dQw4w9WgXcQ"));
/// assert!(!is_streaming_site("https://cdn.example.com/live/stream.m3u8"));
/// assert!(!is_streaming_site("rtsp://youtube.com.example/x"));
/// ```
pub fn is_streaming_site(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    STREAMING_SITES
        .iter()
        .any(|site| host == *site || host.ends_with(&format!(".{site}")))
}

/// The `yt-dlp` format selection for pictures at most `max_height` tall: the video-only stream
/// (audio is not served), H.264 first since it may pass through without decoding, then any
/// codec, then a combined stream, then the best there is.
pub fn format_selector(max_height: Option<u32>) -> String {
    match max_height {
        Some(h) => format!("bv*[height<={h}][vcodec^=avc1]/bv*[height<={h}]/b[height<={h}]/bv*/b"),
        None => "bv*[vcodec^=avc1]/bv*/b".into(),
    }
}

/// Resolves a video site's page `url` to the URL of its media stream (an HLS playlist or a
/// file on the site's CDN) with an installed `yt-dlp`, picking pictures at most `max_height`
/// tall. Takes at most `limit`; `yt-dlp`'s own message comes back when it fails.
///
/// `yt-dlp` comes from PyPI (`pipx install yt-dlp`, or `pip install yt-dlp`); the
/// [`YT_DLP_ENV`] environment variable names another program.
pub fn resolve_with_ytdlp(
    url: &str,
    max_height: Option<u32>,
    limit: Duration,
) -> Result<String, CaptureError> {
    let program = find_ytdlp().ok_or_else(|| CaptureError::Device {
        path: url.to_string(),
        reason: "resolving a video site's page needs yt-dlp, which is not installed: \
                 `pipx install yt-dlp` (or `pip install yt-dlp`), or name it in RTCGEAR_YT_DLP"
            .into(),
    })?;
    let io = |what: &str, source: std::io::Error| CaptureError::Io {
        context: format!("{what} {}", program.display()),
        source,
    };
    let mut child = Command::new(&program)
        .args(["--no-warnings", "--no-playlist", "--get-url", "--format"])
        .arg(format_selector(max_height))
        .arg("--")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("running", e))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CaptureError::InvalidArgument(
            "yt-dlp's pipes are missing".into(),
        ));
    };
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    // Bounded by `limit`: polled every 20 ms, killed when it overstays.
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| io("waiting for", e))? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CaptureError::Device {
                path: url.to_string(),
                reason: format!("yt-dlp did not answer within {} s", limit.as_secs()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let said = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no message")
            .trim()
            .to_string();
        return Err(CaptureError::Device {
            path: url.to_string(),
            reason: format!("yt-dlp could not resolve it ({status}): {said}"),
        });
    }
    stdout
        .lines()
        .map(str::trim)
        .find(|line| line.contains("://"))
        .map(str::to_string)
        .ok_or_else(|| CaptureError::Device {
            path: url.to_string(),
            reason: "yt-dlp printed no stream URL".into(),
        })
}

fn find_ytdlp() -> Option<PathBuf> {
    if let Some(program) = std::env::var_os(YT_DLP_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("yt-dlp"))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_prefer_h264_video_within_the_height() {
        assert_eq!(
            format_selector(Some(720)),
            "bv*[height<=720][vcodec^=avc1]/bv*[height<=720]/b[height<=720]/bv*/b"
        );
        assert_eq!(format_selector(None), "bv*[vcodec^=avc1]/bv*/b");
    }

    #[test]
    fn streaming_sites_by_host() {
        assert!(is_streaming_site("https://www.twitch.tv/somebody"));
        assert!(is_streaming_site("http://user@vimeo.com:443/123"));
        assert!(!is_streaming_site("https://notyoutube.com/watch"));
        assert!(!is_streaming_site("https://example.com/?u=youtube.com"));
    }
}
