//! A clip served as a live stream: `ffmpeg -re -stream_loop -1 -i CLIP -c copy -f mpegts
//! -listen 1 http://127.0.0.1:PORT/live.ts`, in real time and looping, to one client at a
//! time.

use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::clips::ffmpeg;
use crate::process::ChildGuard;

/// FFmpeg serving a clip as live HTTP MPEG-TS on loopback; stopped on drop (which is how the
/// tests make a network stream drop).
#[derive(Debug)]
pub struct LiveStream {
    _ffmpeg: ChildGuard,
    port: u16,
}

impl LiveStream {
    /// Serves `clip` (copied, not encoded again) at `http://127.0.0.1:PORT/live.ts`, once
    /// FFmpeg listens (within 10 s).
    ///
    /// # Panics
    ///
    /// If FFmpeg cannot be started.
    pub fn start(clip: &Path, port: u16) -> LiveStream {
        let child = ffmpeg()
            .args(["-re", "-stream_loop", "-1", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "mpegts", "-listen", "1"])
            .arg(format!("http://127.0.0.1:{port}/live.ts"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg starts");
        // Probing the port would take the one client `-listen 1` serves: watch the kernel's
        // table of sockets instead (bounded: 10 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(port) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        LiveStream {
            _ffmpeg: ChildGuard::new(child),
            port,
        }
    }

    /// `http://127.0.0.1:PORT/live.ts`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/live.ts", self.port)
    }
}

/// Whether a TCP socket listens on 127.0.0.1:`port` (from `/proc/net/tcp`), without
/// connecting to it.
pub fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    // Each line: slot, local address, remote address, state (0A is LISTEN), ...
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_shows_in_the_table() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let port = listener.local_addr().expect("its address").port();
        assert!(listening(port));
        // A connected socket's port is in the table too, but not listening. (Checking the
        // listener's port after closing it raced with other tests binding free ports.)
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
        let client_port = client.local_addr().expect("its address").port();
        assert!(!listening(client_port));
    }
}
