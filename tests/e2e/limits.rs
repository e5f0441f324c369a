//! HTTP limits: the offer rate per client address, header limits, slow and idle clients. The
//! server listens on `::` (IPv4 too), so that `127.0.0.1` and `::1` are two client addresses.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use rtcgear_server::ServerConfig;
use rtcgear_test_support::http::{self, Reply};
use rtcgear_tests::TestServer;

const OFFER: &str = include_str!("../data/chromium-offer.sdp");

/// A server on `::` (both address families) with the given settings.
fn dual_stack(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start(&[("", 320, 240, 15), ("yard", 320, 240, 15)], |config| {
        config.bind = Ipv6Addr::UNSPECIFIED.into();
        configure(config);
    })
}

fn v4(server: &TestServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.addr.port()))
}

fn v6(server: &TestServer) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, server.addr.port()))
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

fn whep(addr: SocketAddr, path: &str) -> Reply {
    http::request(
        &url(addr, path),
        "POST",
        Some(("application/sdp", OFFER.as_bytes())),
        &[],
    )
}

fn text(reply: &Reply) -> String {
    match &reply.2 {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .1
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Sends raw bytes on a new connection and reads until the server closes it (at most 10 s).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn offers_over_the_rate_get_429_while_another_address_still_gets_in() {
    let server = dual_stack(|config| {
        config.offer_rate = 1;
        config.offer_burst = 2;
    });
    let (first, second) = (v4(&server), v6(&server));
    assert_eq!(whep(first, "/whep").0, 201);
    assert_eq!(whep(first, "/yard/whep").0, 201);
    let refused = whep(first, "/whep");
    assert_eq!(refused.0, 429, "{}", text(&refused));
    assert!(
        text(&refused).contains("too many offers"),
        "the 429 says why: {}",
        text(&refused)
    );
    let retry: u64 = header(&refused, "retry-after")
        .expect("429 with Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    // vidgear's route and the named stream's share the address's budget.
    let json = serde_json::json!({ "sdp": OFFER, "type": "offer" }).to_string();
    let vidgear = http::request(
        &url(first, "/yard/offer"),
        "POST",
        Some(("application/json", json.as_bytes())),
        &[],
    );
    assert_eq!(vidgear.0, 429, "{}", text(&vidgear));
    // Other requests from the same address are not limited.
    assert_eq!(
        http::request(&url(first, "/api/streams"), "GET", None, &[]).0,
        200
    );

    let other = whep(second, "/whep");
    assert_eq!(other.0, 201, "::1 has its own budget: {}", text(&other));
    assert!(text(&other).starts_with("v=0"));
}

#[test]
fn oversized_heads_get_431() {
    let server = TestServer::start(&[("", 320, 240, 15)], |_| {});
    let big = format!(
        "GET /api/streams HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let reply = raw(server.addr, big.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    assert!(
        reply.contains("larger than the 16384 bytes allowed"),
        "{reply}"
    );

    let mut many = String::from("GET /api/streams HTTP/1.1\r\nHost: x\r\n");
    for n in 0..100 {
        many.push_str(&format!("X-{n}: {n}\r\n"));
    }
    many.push_str("\r\n");
    let reply = raw(server.addr, many.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    assert!(reply.contains("64 header fields"), "{reply}");

    let chunked =
        b"POST /whep HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nv=0\r\n\r\n0\r\n\r\n";
    let reply = raw(server.addr, chunked);
    assert!(reply.starts_with("HTTP/1.1 411 "), "{reply}");
    assert!(reply.contains("Content-Length"), "{reply}");

    // A head just under the limits still passes.
    let fine = format!(
        "GET /api/streams HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    let reply = raw(server.addr, fine.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
}

#[test]
fn a_slowloris_swarm_neither_takes_the_workers_nor_starves_others() {
    let server = dual_stack(|config| {
        config.request_timeout = Duration::from_secs(3);
        config.max_connections_per_ip = 64;
    });
    let target = v4(&server);
    // 200 connections from 127.0.0.1: half dribble a head, half a body (a body is what an
    // HTTP worker would wait for), one byte each every 200 ms.
    let mut swarm: Vec<TcpStream> = Vec::new();
    for n in 0..200 {
        let Ok(mut stream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
            continue;
        };
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let start: &[u8] = if n % 2 == 0 {
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
        } else {
            b"POST /whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\nv=0\r\n"
        };
        let _ = stream.write_all(start);
        swarm.push(stream);
    }
    let dribbling = thread::spawn(move || {
        // Each stream dribbles until the server answers or closes it, for 10 s at most.
        let mut done = vec![false; swarm.len()];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) && done.iter().any(|d| !d) {
            for (stream, done) in swarm.iter_mut().zip(done.iter_mut()) {
                if *done {
                    continue;
                }
                let mut peek = [0u8; 1];
                stream.set_nonblocking(true).unwrap();
                match stream.peek(&mut peek) {
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {
                        let _ = stream.write(b"a");
                    }
                    _ => *done = true,
                }
                stream.set_nonblocking(false).unwrap();
            }
            thread::sleep(Duration::from_millis(200));
        }
        swarm
    });

    // Meanwhile a viewer from ::1 gets the page and an answer (each call is bounded by the
    // helper's 20 s limit, well under what the swarm could hold a worker for).
    thread::sleep(Duration::from_millis(500));
    let viewer = v6(&server);
    let page = http::request(&url(viewer, "/"), "GET", None, &[]);
    assert_eq!(page.0, 200);
    assert!(text(&page).contains("<html"));
    let answer = whep(viewer, "/whep");
    assert_eq!(answer.0, 201, "{}", text(&answer));

    // The swarm beyond the per-address cap was turned away with 503; the rest got 408 once
    // the request timeout passed.
    let mut swarm = dribbling.join().expect("the dribbler ends");
    let (mut timed_out, mut turned_away, mut other) = (0, 0, Vec::new());
    for stream in &mut swarm {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        if reply.starts_with("HTTP/1.1 408 ") {
            timed_out += 1;
        } else if reply.starts_with("HTTP/1.1 503 ") {
            turned_away += 1;
        } else {
            other.push(reply.into_owned());
        }
    }
    assert_eq!(timed_out, 64, "the admitted 64 time out; others: {other:?}");
    // A refused client that kept writing may see a reset instead of the 503.
    assert!(
        other.iter().all(String::is_empty),
        "{turned_away} turned away of {}, others: {other:?}",
        swarm.len()
    );
    // Once the swarm hangs up, its address gets in again (the gate lingers up to 2 s after
    // a refusal, so that the client reads it, before the slot is free).
    drop(swarm);
    let started = Instant::now();
    let mut status = 0;
    while started.elapsed() < Duration::from_secs(15) {
        status = http::request(&url(target, "/api/streams"), "GET", None, &[]).0;
        if status == 200 {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(status, 200, "127.0.0.1 is let in again after the swarm");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = TestServer::start(&[("", 320, 240, 15)], |config| {
        config.idle_timeout = Duration::from_secs(1);
    });
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Two requests on the one connection: keep-alive works.
    for _ in 0..2 {
        stream
            .write_all(b"GET /api/streams HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let head = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    }
    // Then silence: the server closes the connection after the idle timeout.
    let silent = Instant::now();
    let mut byte = [0u8; 1];
    let closed = loop {
        match stream.read(&mut byte) {
            Ok(0) => break true,
            Ok(_) => panic!("unexpected bytes on an idle connection"),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    assert!(closed, "the idle connection was not closed within 10 s");
    assert!(
        silent.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout: {:?}",
        silent.elapsed()
    );
}

/// Reads one response with a `Content-Length` body; returns its head and body as text.
fn read_response(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("a response head");
        assert_eq!(n, 1, "the connection closed mid-head");
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("the body");
    head + &String::from_utf8_lossy(&body)
}
