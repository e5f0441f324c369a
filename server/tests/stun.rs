//! The server asks a configured STUN server for the media port's public address and announces
//! it as a server-reflexive candidate once the answer comes; a STUN server that never answers
//! delays nothing and changes nothing. Everything runs on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rtcgear_server::rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Server, ServerConfig, StreamConfig};

/// The made-up public address the test STUN server claims to see.
const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

/// A STUN server on loopback that answers Binding Requests with XOR-MAPPED-ADDRESS
/// `PUBLIC:<the sender's port>`, or stays silent. Counts the requests it gets.
struct FakeStun {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeStun {
    fn start(answer: bool) -> FakeStun {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binding the STUN socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("setting a timeout");
        let addr = socket.local_addr().expect("the STUN socket's address");
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let request = &buf[..len];
                    if len < 20 || request[0..2] != [0x00, 0x01] {
                        continue;
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                    if answer {
                        // Something unrelated first: the server must skip it.
                        let _ = socket.send_to(b"not stun at all", from);
                        let reply = binding_success(request, from.port());
                        let _ = socket.send_to(&reply, from);
                    }
                }
            })
        };
        FakeStun {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeStun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A Binding Success Response to `request` with XOR-MAPPED-ADDRESS `PUBLIC:port`.
fn binding_success(request: &[u8], port: u16) -> Vec<u8> {
    let cookie = [0x21, 0x12, 0xa4, 0x42];
    let mut reply = vec![0x01, 0x01, 0x00, 12];
    reply.extend_from_slice(&request[4..20]);
    let xport = port ^ 0x2112;
    reply.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
    reply.extend_from_slice(&xport.to_be_bytes());
    for (octet, key) in PUBLIC.octets().iter().zip(cookie) {
        reply.push(octet ^ key);
    }
    reply
}

fn server_with_stun(stun: SocketAddr) -> Server {
    let mut config = ServerConfig::default();
    config.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.http_port = 0;
    config.udp_port = Some(0);
    config.ice_servers = vec![
        // A TURN server first: only STUN servers are asked.
        "turn:u:p@127.0.0.1:9".parse().expect("a TURN URL"),
        format!("stun:{stun}").parse().expect("a STUN URL"),
    ];
    let pattern =
        TestPattern::new(64, 64, FrameRate::from_int(5).expect("5 fps")).expect("a test pattern");
    Server::builder()
        .config(config)
        .stream(StreamConfig::new("", pattern))
        .build()
        .expect("the server starts")
}

const OFFER: &str = include_str!("../../tests/data/chromium-offer.sdp");

/// A running server, stopped on drop.
struct Running {
    http: SocketAddr,
    media_port: u16,
    stop: rtcgear_server::ShutdownHandle,
    thread: Option<thread::JoinHandle<Result<(), rtcgear_server::ServerError>>>,
}

impl Running {
    fn start(server: Server) -> Running {
        let http = server.http_addr();
        let media_port = server.udp_addr().port();
        let stop = server.shutdown_handle();
        let thread = Some(thread::spawn(move || server.run()));
        Running {
            http,
            media_port,
            stop,
            thread,
        }
    }

    /// The candidate lines of a WHEP answer to a browser's offer.
    /// The UDP candidates of an answer (the ICE-TCP ones, which STUN has nothing to do with,
    /// left out).
    fn answer_candidates(&self) -> Vec<String> {
        let (status, _, body) = rtcgear_test_support::http::request(
            &format!("http://{}/whep", self.http),
            "POST",
            Some(("application/sdp", OFFER.as_bytes())),
            &[],
        );
        let body = body.as_str().unwrap_or_default().to_string();
        assert_eq!(status, 201, "{body}");
        body.lines()
            .filter(|line| line.starts_with("a=candidate:") && line.contains(" udp "))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            let result = thread.join().expect("the server thread ends");
            if !thread::panicking() {
                result.expect("the server stops cleanly");
            }
        }
    }
}

#[test]
fn announces_the_mapped_address_as_a_server_reflexive_candidate() {
    let stun = FakeStun::start(true);
    let server = server_with_stun(stun.addr);
    // Start-up does not wait for the answer; what the server reports are its host addresses.
    assert_eq!(server.candidates().len(), 1, "{:?}", server.candidates());
    let running = Running::start(server);
    let port = running.media_port;
    let deadline = Instant::now() + Duration::from_secs(5);
    let candidates = loop {
        let candidates = running.answer_candidates();
        if candidates.iter().any(|c| c.contains("srflx")) {
            break candidates;
        }
        assert!(
            Instant::now() < deadline,
            "no srflx candidate: {candidates:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(candidates.len(), 2, "{candidates:?}");
    assert!(
        candidates[0].contains(&format!(" 127.0.0.1 {port} typ host")),
        "{candidates:?}"
    );
    assert!(
        candidates[1].ends_with(&format!(
            " {PUBLIC} {port} typ srflx raddr 127.0.0.1 rport {port}"
        )),
        "{candidates:?}"
    );
    assert_eq!(stun.requests.load(Ordering::Relaxed), 1);
}

#[test]
fn a_silent_stun_server_delays_nothing() {
    let stun = FakeStun::start(false);
    let started = Instant::now();
    let server = server_with_stun(stun.addr);
    let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server.udp_addr().port());
    assert_eq!(server.candidates(), &[host]);
    let running = Running::start(server);
    // Answers come at once, with the host candidate alone.
    let first = running.answer_candidates();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(700),
        "the first answer took {took:?}"
    );
    assert_eq!(first.len(), 1, "{first:?}");
    // Meanwhile the request went out again, and nothing changes once it is given up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stun.requests.load(Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "the request was not sent again");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(700));
    assert_eq!(stun.requests.load(Ordering::Relaxed), 3);
    assert_eq!(running.answer_candidates().len(), 1);
}

#[test]
fn an_unreachable_stun_server_changes_nothing() {
    // A port where nobody listens (bound then dropped): ICMP may refuse it at once.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port");
    let started = Instant::now();
    let server = server_with_stun(closed);
    let running = Running::start(server);
    let first = running.answer_candidates();
    assert!(started.elapsed() < Duration::from_millis(700));
    assert_eq!(first.len(), 1, "{first:?}");
    thread::sleep(Duration::from_millis(1700));
    assert_eq!(running.answer_candidates().len(), 1);
}
