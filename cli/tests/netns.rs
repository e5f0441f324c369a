//! `rtcgear serve` played by Chromium across real networks: Linux network namespaces joined
//! by veth pairs and a router with NAT and firewall rules (see `rtcgear_test_support::netns`
//! for the drawing). The server runs in its namespace, Chromium (under ChromeDriver) in the
//! viewer's and loads the page by the server's address as the viewer reaches it; coturn runs
//! on the public segment where a case needs TURN. Each case checks that the picture plays and
//! which candidate pair the page's ICE selected, from `getStats()`, and prints it.
//!
//! They need root: `#[ignore]`d in a plain `cargo test`; `scripts/test.sh` runs them as root,
//! one at a time. A case that cannot make its namespaces says why and passes.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use rtcgear_test_support::netns::{
    Layout, Nat, Netns, Topology, ROUTER_PUBLIC, SERVER_PRIVATE, SERVER_PUBLIC, TURN,
};
use rtcgear_test_support::process::ChildGuard;
use rtcgear_test_support::serial::heavy;
use rtcgear_test_support::tempdir::TempDir;

const HTTP_PORT: u16 = 8000;
const UDP_PORT: u16 = 9000;
const TURN_PORT: u16 = 3478;
const SECRET: &str = "netns-secret";
/// Frames decoded that count as playing (over a second at 30 fps).
const FRAMES: u64 = 40;
/// How long the page may take to connect and decode them.
const PLAY_LIMIT: Duration = Duration::from_secs(30);

/// The network of `layout`, or `None` (said on stderr) where namespaces cannot be made.
fn network(layout: Layout) -> Option<Topology> {
    match Topology::new(layout) {
        Ok(topology) => Some(topology),
        Err(e) => {
            eprintln!("skipped: cannot build the test network ({e})");
            None
        }
    }
}

/// `rtcgear serve` of the 320x240 test pattern in the server's namespace, bound to `bind`,
/// with `extra` flags; waits until the viewer's namespace reaches its HTTP port.
fn serve(net: &Topology, bind: Ipv4Addr, extra: &[&str]) -> Served {
    let dir = TempDir::new("netns-serve");
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let child = net
        .server
        .command(env!("CARGO_BIN_EXE_rtcgear"))
        .args(["serve", "--size", "320x240", "--fps", "30", "--bind"])
        .arg(bind.to_string())
        .args(["--port", &HTTP_PORT.to_string()])
        .args(["--udp-port", &UDP_PORT.to_string()])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("rtcgear serve starts");
    let served = Served {
        _child: ChildGuard::new(child),
        log: log_path,
        _dir: dir,
    };
    let http = SocketAddr::from((net.server_addr(), HTTP_PORT));
    if let Err(e) = net.viewer.wait_for_tcp(http, Duration::from_secs(15)) {
        panic!("{e}");
    }
    served
}

/// A running `rtcgear serve`, stopped on drop; what it logged is printed if the test failed.
struct Served {
    _child: ChildGuard,
    log: std::path::PathBuf,
    _dir: TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("rtcgear serve said:\n{log}");
        }
    }
}

/// coturn on the public segment with `use-auth-secret`, listening on UDP and TCP.
fn coturn(net: &Topology) -> (ChildGuard, TempDir) {
    let dir = TempDir::new("netns-coturn");
    let child = net
        .turn
        .command(rtcgear_test_support::programs::require(
            "turnserver",
            "coturn",
        ))
        .args([
            "-n",
            &format!("--listening-ip={TURN}"),
            &format!("--listening-port={TURN_PORT}"),
            &format!("--relay-ip={TURN}"),
            "--use-auth-secret",
            &format!("--static-auth-secret={SECRET}"),
            "--realm=rtcgear.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            &format!("--pidfile={}", dir.path().join("turnserver.pid").display()),
            &format!("--userdb={}", dir.path().join("turndb").display()),
            "--log-file=stdout",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver starts (Debian's coturn)");
    let guard = ChildGuard::new(child);
    net.turn
        .wait_for_tcp(SocketAddr::from((TURN, TURN_PORT)), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("coturn: {e}"));
    (guard, dir)
}

/// One end of the selected candidate pair, as the page's `getStats()` says.
#[derive(Debug)]
struct Candidate {
    kind: String,
    protocol: String,
    address: String,
    port: u64,
    /// How a relay candidate reaches its TURN server (`udp`, `tcp`), else empty.
    relay_protocol: String,
}

impl Candidate {
    fn from_stats(value: &Value) -> Candidate {
        let text = |key: &str| value[key].as_str().unwrap_or("").to_string();
        Candidate {
            kind: text("type"),
            protocol: text("protocol"),
            // Chromium hides its own host addresses behind mDNS names, in the stats too.
            address: value["address"]
                .as_str()
                .filter(|address| !address.is_empty())
                .unwrap_or("(hidden)")
                .to_string(),
            port: value["port"].as_u64().unwrap_or(0),
            relay_protocol: text("relayProtocol"),
        }
    }
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}:{}",
            self.kind, self.protocol, self.address, self.port
        )?;
        if !self.relay_protocol.is_empty() {
            write!(f, " (to TURN over {})", self.relay_protocol)?;
        }
        Ok(())
    }
}

/// The page's selected candidate pair: the transport's `selectedCandidatePairId`, or the
/// nominated pair that succeeded.
const SELECTED_PAIR: &str = "const done = arguments[arguments.length - 1]; \
    window.rtcgear.pc.getStats().then(stats => { \
      const all = {}; let id = null; \
      stats.forEach(s => { all[s.id] = s; \
        if (s.type === 'transport' && s.selectedCandidatePairId) id = s.selectedCandidatePairId; }); \
      if (!id) stats.forEach(s => { \
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') id = s.id; }); \
      const pair = all[id]; \
      if (!pair) { done(null); return; } \
      const c = x => x ? {type: x.candidateType, protocol: x.protocol, address: x.address || x.ip, \
        port: x.port, relayProtocol: x.relayProtocol} : null; \
      done({local: c(all[pair.localCandidateId]), remote: c(all[pair.remoteCandidateId])}); \
    }).catch(e => done({error: String(e)}));";

/// Loads the page in Chromium in the viewer's namespace, waits for it to play, and returns
/// the selected pair (local, remote), printed; checks that the server counts the viewer as
/// coming over `transport` (`udp`, `tcp` or `relay`) in `/api/streams`.
fn play(net: &Topology, transport: &str) -> (Candidate, Candidate) {
    let started = Instant::now();
    let browser = net
        .viewer
        .browser()
        .unwrap_or_else(|e| panic!("Chromium in the viewer's namespace: {e}"));
    browser.goto(&format!("http://{}:{HTTP_PORT}/", net.server_addr()));
    browser.wait_for(
        "the video to play",
        PLAY_LIMIT,
        &format!(
            "return window.rtcgear.state === 'connected' \
             && window.rtcgear.stats.framesDecoded > {FRAMES}"
        ),
    );
    let pair = browser.eval_async(SELECTED_PAIR);
    assert!(
        pair["local"].is_object() && pair["remote"].is_object(),
        "no selected candidate pair in the page's stats: {pair}"
    );
    let (local, remote) = (
        Candidate::from_stats(&pair["local"]),
        Candidate::from_stats(&pair["remote"]),
    );
    // From the page's new RTCPeerConnection (ICE gathering, TURN included) to its first
    // decoded frame: what BENCHMARKS.md reports for each path.
    let first_frame = browser.eval("return window.rtcgear.stats.firstFrameMs");
    eprintln!(
        "selected pair: local {local} -> remote {remote} ({} frames decoded, {:.1} s; \
         first picture {:.0} ms after the page began connecting)",
        browser.frames_decoded(),
        started.elapsed().as_secs_f64(),
        first_frame.as_f64().unwrap_or(f64::NAN)
    );
    // The server's count is refreshed every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let transports = browser.eval_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/api/streams').then(r => r.json()) \
               .then(j => done(j.streams[0].transports), e => done({error: String(e)}));",
        );
        let counted = ["udp", "tcp", "relay"]
            .iter()
            .all(|t| transports[*t] == u64::from(*t == transport));
        if counted {
            eprintln!("/api/streams counts it: {transports}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/api/streams does not count one {transport} viewer: {transports}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    (local, remote)
}

/// The ports the server's and coturn's hosts see one UDP socket of the viewer behind `nat`
/// send from (each checks that it comes from the router's public address), or `None` where
/// namespaces cannot be made.
fn mapped_ports(nat: Nat) -> Option<(u16, u16)> {
    let net = network(Layout::ViewerBehindNat(nat))?;
    let bind = |ns: &Netns, addr: Ipv4Addr| {
        let socket = ns
            .run(move || UdpSocket::bind((addr, 7000)))
            .expect("a thread in the namespace")
            .expect("a UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        socket
    };
    let (server, turn) = (bind(&net.server, SERVER_PUBLIC), bind(&net.turn, TURN));
    let viewer = bind(&net.viewer, Ipv4Addr::UNSPECIFIED);
    let seen = |socket: &UdpSocket, addr: Ipv4Addr| {
        viewer.send_to(b"where am I", (addr, 7000)).expect("sent");
        let (_, from) = socket
            .recv_from(&mut [0; 64])
            .unwrap_or_else(|e| panic!("nothing reached {addr}: {e}"));
        assert_eq!(from.ip(), ROUTER_PUBLIC, "the NAT's address");
        from.port()
    };
    Some((seen(&server, SERVER_PUBLIC), seen(&turn, TURN)))
}

/// The fixture's NATs are what the cases say: one viewer socket keeps its mapping whoever it
/// sends to through the cone NAT, and gets another port for each peer through the symmetric
/// one.
#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn the_cone_nat_keeps_a_mapping_and_the_symmetric_one_does_not() {
    let Some((server, turn)) = mapped_ports(Nat::Cone) else {
        return;
    };
    eprintln!("cone NAT: the server sees port {server}, coturn's host {turn}");
    assert_eq!(server, turn);
    let Some((server, turn)) = mapped_ports(Nat::Symmetric) else {
        return;
    };
    eprintln!("symmetric NAT: the server sees port {server}, coturn's host {turn}");
    assert_ne!(server, turn);
}

#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_viewer_on_the_servers_lan_plays_over_a_host_pair() {
    let _turn = heavy();
    let Some(net) = network(Layout::SameLan) else {
        return;
    };
    let _serve = serve(&net, SERVER_PUBLIC, &[]);
    let (local, remote) = play(&net, "udp");
    assert_eq!(
        (local.kind.as_str(), local.protocol.as_str()),
        ("host", "udp")
    );
    assert_eq!(
        (remote.kind.as_str(), remote.protocol.as_str()),
        ("host", "udp")
    );
    assert_eq!(remote.address, SERVER_PUBLIC.to_string());
}

/// Behind a NAT the viewer's packets reach the server's host candidate directly; the server
/// (ICE-lite) answers the address they came from.
fn plays_directly_behind(nat: Nat) {
    let _turn = heavy();
    let Some(net) = network(Layout::ViewerBehindNat(nat)) else {
        return;
    };
    let _serve = serve(&net, SERVER_PUBLIC, &[]);
    let (local, remote) = play(&net, "udp");
    assert_ne!(local.kind, "relay");
    assert_eq!(local.protocol, "udp");
    assert_eq!(
        (remote.kind.as_str(), remote.protocol.as_str()),
        ("host", "udp")
    );
    assert_eq!(remote.address, SERVER_PUBLIC.to_string());
}

#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_viewer_behind_a_cone_nat_plays_over_udp_directly() {
    plays_directly_behind(Nat::Cone);
}

#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_viewer_behind_a_symmetric_nat_plays_over_udp_directly() {
    plays_directly_behind(Nat::Symmetric);
}

/// The page is given coturn (`--ice-server turn:TURN:3478 --turn-secret`), offered over UDP
/// and TCP.
fn turn_flags() -> Vec<String> {
    let mut flags: Vec<String> = vec![
        "--ice-server".into(),
        format!("turn:{TURN}:{TURN_PORT}"),
        "--turn-secret".into(),
        SECRET.into(),
    ];
    // The page's HTTP port is open to the viewer, so ICE-TCP on it would be a direct path;
    // these cases are about networks that let only the TURN server through.
    flags.push("--no-tcp".into());
    flags
}

#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_viewer_without_udp_to_the_server_plays_through_turn_over_udp() {
    plays_through_turn(Some(SERVER_PUBLIC), "udp");
}

/// Behind a symmetric NAT with UDP cut to `cut` (every peer when `None`): the page, given
/// coturn through `--turn-secret`, plays through a relay it reaches over `relay_protocol`.
fn plays_through_turn(cut: Option<Ipv4Addr>, relay_protocol: &str) {
    let _turn = heavy();
    let Some(net) = network(Layout::ViewerBehindNat(Nat::Symmetric)) else {
        return;
    };
    net.cut("udp", cut).expect("the UDP path is cut");
    let _coturn = coturn(&net);
    let flags = turn_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _serve = serve(&net, SERVER_PUBLIC, &flags);
    let (local, remote) = play(&net, "relay");
    assert_eq!(local.kind, "relay");
    assert_eq!(local.address, TURN.to_string());
    assert_eq!(local.relay_protocol, relay_protocol);
    assert_eq!(
        (remote.kind.as_str(), remote.protocol.as_str()),
        ("host", "udp")
    );
}

#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_viewer_without_any_udp_plays_through_turn_over_tcp() {
    plays_through_turn(None, "tcp");
}

#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_server_behind_a_port_forward_plays_by_its_public_address() {
    let _turn = heavy();
    let Some(net) = network(Layout::ServerBehindNat {
        tcp: vec![HTTP_PORT],
        udp: vec![UDP_PORT],
    }) else {
        return;
    };
    let public = ROUTER_PUBLIC.to_string();
    let _serve = serve(&net, SERVER_PRIVATE, &["--public-ip", &public]);
    let (local, remote) = play(&net, "udp");
    assert_eq!(local.protocol, "udp");
    assert_ne!(local.kind, "relay");
    assert_eq!(remote.protocol, "udp");
    assert_eq!(
        (remote.address.as_str(), remote.port),
        (public.as_str(), u64::from(UDP_PORT))
    );
}

/// With no UDP at all and no TURN server, the page's ICE reaches the server over TCP: rtcgear's
/// ICE-TCP, on the HTTP port by default.
#[test]
#[ignore = "needs root and network namespaces; scripts/test.sh runs them"]
fn a_viewer_without_any_udp_and_no_turn_plays_over_ice_tcp() {
    let _turn = heavy();
    let Some(net) = network(Layout::ViewerBehindNat(Nat::Symmetric)) else {
        return;
    };
    net.cut("udp", None).expect("every UDP path is cut");
    let _serve = serve(&net, SERVER_PUBLIC, &[]);
    let (local, remote) = play(&net, "tcp");
    assert_eq!(local.protocol, "tcp");
    assert_eq!(
        (remote.kind.as_str(), remote.protocol.as_str()),
        ("host", "tcp")
    );
    assert_eq!(
        (remote.address.as_str(), remote.port),
        (SERVER_PUBLIC.to_string().as_str(), u64::from(HTTP_PORT))
    );
}
