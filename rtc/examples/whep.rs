//! A complete single-threaded driver of a [`Broadcast`]: WHEP signalling, one UDP socket, and a
//! test pattern encoded live, in the spirit of str0m's `examples/http-post.rs`.
//!
//! ```text
//! cargo run -p rtcgear-rtc --example whep -- [--seconds N] [--port P]
//! ```
//!
//! It binds a UDP socket and an HTTP listener on 127.0.0.1, prints the page's URL, and stops
//! after `--seconds` (60 by default). `--port` picks the HTTP port (by default the system
//! picks a free one). Open the URL in Chromium to watch, or post an SDP offer to `/whep`
//! with any WHEP client: the answer comes back as `201 Created`, with the viewer's resource
//! in `Location` for a `DELETE`; an offer the broadcast cannot take gets `400` and the reason.
//!
//! One thread does everything, one thing at a time: accept an HTTP request (plain blocking
//! I/O, one request at a time), take a datagram, let time pass, encode a frame; after each,
//! drain [`Broadcast::poll_output`] and send what it gives. The frames come from rtcgear's
//! `TestPattern` through its x264 `Encoder` (both dev-dependencies of this crate), and only
//! while someone watches. The real driver, with threads, many streams and a hardened HTTP
//! front, is the `rtcgear-server` crate.

use std::error::Error;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rtcgear_capture::{CaptureTime, FrameRate, TestPattern};
use rtcgear_encode::{Encoder, EncoderConfig};
use rtcgear_rtc::{Broadcast, BroadcastConfig, BroadcastEvent, Output, ViewerId};

/// The picture the example sends.
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: u32 = 30;

/// The longest the loop sleeps on the socket, so that HTTP requests are taken promptly.
const HTTP_POLL: Duration = Duration::from_millis(20);

/// How long a client may take to send its request, and the most bytes it may send.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_MAX_REQUEST: usize = 256 * 1024;

/// The player: WHEP in a few lines of JavaScript.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>rtcgear-rtc: the whep example</title>
<video id="video" autoplay muted playsinline controls style="max-width: 100%"></video>
<pre id="status"></pre>
<script>
const pc = new RTCPeerConnection();
pc.addTransceiver("video", { direction: "recvonly" });
pc.ontrack = (event) => {
  document.getElementById("video").srcObject = new MediaStream([event.track]);
};
(async () => {
  await pc.setLocalDescription(await pc.createOffer());
  const response = await fetch("/whep", {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  const text = await response.text();
  if (response.status !== 201) {
    document.getElementById("status").textContent = `${response.status}: ${text}`;
    return;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: text });
})();
</script>
"#;

fn main() -> Result<(), Box<dyn Error>> {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };

    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let local = socket.local_addr()?;
    let http = TcpListener::bind(("127.0.0.1", args.port))?;
    // Polled between datagrams: the one thread must never wait for a client.
    http.set_nonblocking(true)?;
    let url = format!("http://{}/", http.local_addr()?);
    println!("Open {url} in Chromium, or POST an SDP offer to {url}whep");
    println!("Media on udp://{local}; stopping after {} s", args.seconds);

    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut broadcast = Broadcast::new(start, BroadcastConfig::new(vec![local]));
    let mut video = Video::new()?;
    let mut buf = vec![0; 2000];

    loop {
        let deadline = drain(&mut broadcast, &socket, &mut video)?;
        let now = Instant::now();
        if now >= end {
            break;
        }

        // 1. An HTTP request, if one is waiting.
        match http.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve(stream, &mut broadcast) {
                    eprintln!("HTTP: {e}");
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("HTTP: accepting: {e}"),
        }

        // 2. A datagram, or nothing until the next deadline, frame or HTTP poll.
        let frame_due = video.next_due(broadcast.viewer_count() > 0, now);
        let wake = frame_due.map_or(deadline, |due| due.min(deadline)).min(end);
        // A zero read timeout is an error, so wait at least a millisecond.
        let wait = wake
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), HTTP_POLL);
        socket.set_read_timeout(Some(wait))?;
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                broadcast.handle_receive(Instant::now(), source, local, &buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }

        // 3. Time passes: the broadcast's timers, and the next frame when it is due. Checked
        // after a datagram too, so a busy socket cannot hold them up.
        let now = Instant::now();
        if now >= deadline {
            broadcast.handle_timeout(now);
        }
        if frame_due.is_some_and(|due| now >= due) {
            video.encode_into(&mut broadcast, now)?;
        }
    }

    // Tell every browser (DTLS close_notify) before going.
    for id in broadcast.viewer_ids() {
        broadcast.remove_viewer(id);
    }
    drain(&mut broadcast, &socket, &mut video)?;
    println!("{} s are up; stopping", args.seconds);
    Ok(())
}

/// Sends what the broadcast has to send and acts on its events, until it names its next
/// deadline.
fn drain(broadcast: &mut Broadcast, socket: &UdpSocket, video: &mut Video) -> io::Result<Instant> {
    loop {
        match broadcast.poll_output() {
            Output::Transmit {
                destination,
                contents,
                ..
            } => {
                // A datagram that cannot leave is lost, as on any network; WebRTC copes.
                if let Err(e) = socket.send_to(&contents, destination) {
                    eprintln!("sending to {destination}: {e}");
                }
            }
            Output::Event(BroadcastEvent::KeyframeNeeded(_)) => video.encoder.request_keyframe(),
            Output::Event(BroadcastEvent::ViewerConnected(id)) => println!("{id}: connected"),
            Output::Event(BroadcastEvent::ViewerDisconnected(id, reason)) => {
                println!("{id}: gone ({reason})");
            }
            Output::Event(event) => println!("{event:?}"),
            Output::Timeout(deadline) => return Ok(deadline),
        }
    }
}

/// The test pattern and its encoder, one frame at a time on the loop's own schedule.
struct Video {
    pattern: TestPattern,
    encoder: Encoder,
    period: Duration,
    counter: u64,
    /// When the next frame is due; `None` while nobody watches.
    due: Option<Instant>,
}

impl Video {
    fn new() -> Result<Video, Box<dyn Error>> {
        let fps = FrameRate::from_int(FPS).ok_or("the frame rate is zero")?;
        // Unpaced: the loop decides when to draw, and never sleeps anywhere else.
        let pattern = TestPattern::builder()
            .size(WIDTH, HEIGHT)
            .fps(fps)
            .paced(false)
            .build()?;
        let encoder = Encoder::new(EncoderConfig::new(WIDTH, HEIGHT, fps))?;
        Ok(Video {
            pattern,
            encoder,
            period: fps.frame_duration(),
            counter: 0,
            due: None,
        })
    }

    /// When the next frame is due if someone is `watching` (the first one at once), or `None`.
    fn next_due(&mut self, watching: bool, now: Instant) -> Option<Instant> {
        if !watching {
            self.due = None;
        } else if self.due.is_none() {
            self.due = Some(now);
        }
        self.due
    }

    /// Draws, encodes and hands the broadcast one frame.
    fn encode_into(
        &mut self,
        broadcast: &mut Broadcast,
        now: Instant,
    ) -> Result<(), Box<dyn Error>> {
        let frame = self.pattern.draw(self.counter, CaptureTime::now())?;
        self.counter += 1;
        self.encoder.send_frame(&frame)?;
        while let Some(packet) = self.encoder.receive_packet() {
            broadcast.handle_frame(now, &packet);
        }
        // The next frame one period later, or now if this one came late: a slow loop drops
        // frames rather than bursting to catch up.
        let next = self.due.map_or(now, |due| due + self.period);
        self.due = Some(next.max(now));
        Ok(())
    }
}

/// Reads one request from `stream`, answers it and closes the connection.
fn serve(mut stream: TcpStream, broadcast: &mut Broadcast) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let response = match read_request(&mut stream) {
        Ok(request) => answer(&request, broadcast),
        Err(e) => Response::text(400, "Bad Request", &format!("{e}\n")),
    };
    stream.write_all(&response.to_bytes())?;
    stream.flush()
}

fn answer(request: &Request, broadcast: &mut Broadcast) -> Response {
    let now = Instant::now();
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/") => Response::new(200, "OK", "text/html; charset=utf-8", PAGE),
        ("POST", "/whep") => {
            let Ok(offer) = std::str::from_utf8(&request.body) else {
                return Response::text(400, "Bad Request", "the offer is not UTF-8\n");
            };
            match broadcast.handle_offer(now, offer) {
                Ok((id, answer)) => {
                    println!("{id}: offer accepted");
                    let mut response = Response::new(201, "Created", "application/sdp", &answer);
                    response.location = Some(format!("/whep/{}", id.get()));
                    response
                }
                Err(e) => Response::text(400, "Bad Request", &format!("{e}\n")),
            }
        }
        ("DELETE", path) => {
            let id = path.strip_prefix("/whep/").and_then(|n| n.parse().ok());
            match id.map(ViewerId::from_raw) {
                Some(id) if broadcast.remove_viewer(id) => Response::text(200, "OK", ""),
                _ => Response::text(404, "Not Found", "no such viewer\n"),
            }
        }
        (_, "/" | "/whep") => Response::text(405, "Method Not Allowed", "\n"),
        _ => Response::text(404, "Not Found", "\n"),
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads a request head and its `Content-Length` body; anything else is an error.
fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let invalid = |why: &str| io::Error::new(ErrorKind::InvalidData, why.to_string());
    let started = Instant::now();
    let mut data = Vec::new();
    let mut chunk = [0; 4096];
    let mut head_len = None;
    let mut body_len = 0;
    loop {
        if let Some(head) = head_len {
            if data.len() >= head + body_len {
                break;
            }
        }
        if data.len() > HTTP_MAX_REQUEST || started.elapsed() > HTTP_TIMEOUT {
            return Err(invalid("the request is too large or too slow"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(invalid("the request ended early"));
        }
        data.extend_from_slice(&chunk[..n]);
        if head_len.is_none() {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                head_len = Some(end + 4);
                let head = std::str::from_utf8(&data[..end]).map_err(|_| invalid("a bad head"))?;
                body_len = content_length(head).map_err(invalid)?;
                if body_len > HTTP_MAX_REQUEST {
                    return Err(invalid("the body is too large"));
                }
            }
        }
    }
    // The loop ends only once the head has been found.
    let head_len = head_len.expect("a head");
    let head = std::str::from_utf8(&data[..head_len]).map_err(|_| invalid("a bad head"))?;
    let mut request_line = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(path)) = (request_line.next(), request_line.next()) else {
        return Err(invalid("no request line"));
    };
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        body: data[head_len..head_len + body_len].to_vec(),
    })
}

fn content_length(head: &str) -> Result<usize, &'static str> {
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            return value.trim().parse().map_err(|_| "a bad Content-Length");
        }
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked bodies are not supported here");
        }
    }
    Ok(0)
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    location: Option<String>,
    body: String,
}

impl Response {
    fn new(status: u16, reason: &'static str, content_type: &'static str, body: &str) -> Self {
        Response {
            status,
            reason,
            content_type,
            location: None,
            body: body.to_string(),
        }
    }

    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Response::new(status, reason, "text/plain; charset=utf-8", body)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(location) = &self.location {
            head.push_str(&format!("Location: {location}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

/// `--seconds N` and `--port P`.
struct Args {
    seconds: u64,
    port: u16,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let usage = "usage: whep [--seconds N] [--port P]";
        let mut args = Args {
            seconds: 60,
            port: 0,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let value = words.next();
            match (word.as_str(), value) {
                ("--seconds", Some(value)) => {
                    args.seconds = value
                        .parse()
                        .map_err(|_| format!("--seconds {value}? {usage}"))?;
                }
                ("--port", Some(value)) => {
                    args.port = value
                        .parse()
                        .map_err(|_| format!("--port {value}? {usage}"))?;
                }
                _ => return Err(usage.to_string()),
            }
        }
        Ok(args)
    }
}
