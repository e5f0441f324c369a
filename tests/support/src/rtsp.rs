//! GStreamer's RTSP server on loopback: live H.264 at `rtsp://127.0.0.1:PORT/live`, from the
//! script `data/rtsp-server` of this crate (it needs Debian's `python3-gi`,
//! `gir1.2-gst-rtsp-server-1.0` and GStreamer's plugins, which `scripts/deps.sh test`
//! installs).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::process::ChildGuard;

/// The server script: `rtsp-server PORT [WIDTH HEIGHT FPS GOP]`.
pub fn script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/rtsp-server"))
}

/// The RTSP server, serving `videotestsrc` encoded by x264 (constrained baseline, so no
/// B-frames; SPS and PPS before every keyframe). Killed on drop (which is how the tests make
/// the stream drop).
#[derive(Debug)]
pub struct RtspServer {
    _child: ChildGuard,
    port: u16,
}

impl RtspServer {
    /// Serves `width`x`height` at `fps`, a keyframe every `gop` frames, on 127.0.0.1:`port`,
    /// once it says it is ready (within 15 s).
    ///
    /// # Panics
    ///
    /// If the server does not start, with what it said.
    pub fn start(port: u16, (width, height): (u32, u32), fps: u32, gop: u32) -> RtspServer {
        let mut child = Command::new(script())
            .args([u32::from(port), width, height, fps, gop].map(|n| n.to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the RTSP server script starts (scripts/deps.sh test installs what it needs)");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut child = ChildGuard::new(child);
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.starts_with("ready ") => RtspServer {
                _child: child,
                port,
            },
            other => {
                let mut why = String::new();
                if let Some(child) = child.child_mut() {
                    let _ = child.kill();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut why);
                    }
                }
                panic!("the RTSP server did not start ({other:?}): {why}");
            }
        }
    }

    /// `rtsp://127.0.0.1:PORT/live`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/live", self.port)
    }
}
