//! TURN with time-limited credentials over HTTP: every page and every WHEP answer carries
//! fresh TURN REST credentials (`EXPIRY:rtcgear`, base64(HMAC-SHA1(secret, user name))) for a
//! TURN server given without any, offered over UDP and TCP; the secret itself never leaves.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{IceServer, Server, ServerConfig, ServerError, ShutdownHandle, StreamConfig};
use rtcgear_test_support::http;
use rtcgear_test_support::process::ChildGuard;
use rtcgear_test_support::tempdir::TempDir;

const OFFER: &str = include_str!("../../tests/data/chromium-offer.sdp");
const SECRET: &str = "north-wind";
const TTL: Duration = Duration::from_secs(2 * 3600);

/// `(status, Link headers, body)` of one request.
fn call(url: &str, method: &str, content_type: &str, body: &[u8]) -> (u16, Vec<String>, String) {
    let (status, headers, body) = http::request(url, method, Some((content_type, body)), &[]);
    let links = headers
        .into_iter()
        .filter(|(name, _)| name == "link")
        .map(|(_, value)| value)
        .collect();
    let body = match body {
        serde_json::Value::String(text) => text,
        json => json.to_string(),
    };
    (status, links, body)
}

/// A server on loopback with the test pattern, these ICE servers and the secret; its base URL
/// and what stops it.
fn serve(ice_servers: Vec<IceServer>) -> (String, Running) {
    let mut config = ServerConfig::default();
    config.bind = Ipv4Addr::LOCALHOST.into();
    config.http_port = 0;
    config.udp_port = Some(0);
    config.ice_servers = ice_servers;
    config.turn_secret = Some(SECRET.into());
    config.turn_ttl = TTL;
    let pattern =
        TestPattern::new(64, 64, FrameRate::from_int(5).expect("5 > 0")).expect("a valid size");
    let server = Server::builder()
        .config(config)
        .stream(StreamConfig::new("", pattern))
        .build()
        .expect("the server starts");
    let base = format!("http://{}", server.http_addr());
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    (base, Running { stop, thread })
}

/// A running server, stopped and checked to stop cleanly by [`Running::stop`].
struct Running {
    stop: ShutdownHandle,
    thread: std::thread::JoinHandle<Result<(), ServerError>>,
}

impl Running {
    fn stop(self) {
        self.stop.shutdown();
        self.thread
            .join()
            .expect("the server thread ends")
            .expect("the server stops cleanly");
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Checks a TURN REST user name and password made within the last minute: the expiry is
/// `TTL` ahead, and the password is the HMAC of the user name under the secret.
fn check_credentials(username: &str, password: &str) {
    let (expiry, name) = username
        .split_once(':')
        .unwrap_or_else(|| panic!("{username:?} is not EXPIRY:NAME"));
    assert_eq!(name, "rtcgear");
    let expiry: u64 = expiry.parse().expect("the expiry is a number");
    let now = unix_now();
    let ttl = TTL.as_secs();
    assert!(
        expiry > now && expiry + 60 >= now + ttl && expiry <= now + ttl,
        "expiry {expiry}, now {now}"
    );
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac::sign(&key, username.as_bytes()).as_ref());
    assert_eq!(password, expected, "the password of {username:?}");
}

/// The page's `data-ice-servers`, HTML-unescaped and parsed.
fn page_ice_servers(html: &str) -> serde_json::Value {
    let start = html
        .find("data-ice-servers=\"")
        .expect("the page has data-ice-servers")
        + "data-ice-servers=\"".len();
    let end = start + html[start..].find('"').expect("the attribute ends");
    let text = html[start..end]
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn pages_and_whep_answers_get_fresh_turn_credentials() {
    let (base, running) = serve(vec![
        "turn:127.0.0.1:3478".parse().expect("a TURN URL"),
        "turn:1733230000:alice:pw%40@127.0.0.1:3479?transport=tcp"
            .parse()
            .expect("a TURN URL with credentials"),
    ]);

    for _ in 0..2 {
        let (status, _, html) = call(&format!("{base}/"), "GET", "text/plain", b"");
        assert_eq!(status, 200, "{html}");
        assert!(!html.contains(SECRET));
        let servers = page_ice_servers(&html);
        let servers = servers.as_array().expect("a list of ICE servers");
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert_eq!(
            servers[0]["urls"],
            serde_json::json!([
                "turn:127.0.0.1:3478?transport=udp",
                "turn:127.0.0.1:3478?transport=tcp"
            ])
        );
        check_credentials(
            servers[0]["username"].as_str().expect("a user name"),
            servers[0]["credential"].as_str().expect("a password"),
        );
        assert_eq!(
            servers[1],
            serde_json::json!({
                "urls": ["turn:127.0.0.1:3479?transport=tcp"],
                "username": "1733230000:alice",
                "credential": "pw@",
            })
        );
    }

    for _ in 0..2 {
        let (status, links, answer) = call(
            &format!("{base}/whep"),
            "POST",
            "application/sdp",
            OFFER.as_bytes(),
        );
        assert_eq!(status, 201, "{answer}");
        assert_eq!(links.len(), 3, "{links:?}");
        let mut fresh = Vec::new();
        for (link, transport) in links[..2].iter().zip(["udp", "tcp"]) {
            let url = format!("<turn:127.0.0.1:3478?transport={transport}>; rel=\"ice-server\"; ");
            let rest = link
                .strip_prefix(&url)
                .unwrap_or_else(|| panic!("{link} does not start with {url}"));
            let fields: Vec<&str> = rest.split("; ").collect();
            let [username, credential, kind] = fields[..] else {
                panic!("{link}");
            };
            let username = username
                .strip_prefix("username=\"")
                .and_then(|v| v.strip_suffix('"'))
                .expect("a quoted user name");
            let credential = credential
                .strip_prefix("credential=\"")
                .and_then(|v| v.strip_suffix('"'))
                .expect("a quoted password");
            assert_eq!(kind, "credential-type=\"password\"");
            check_credentials(username, credential);
            fresh.push(username.to_string());
        }
        assert_eq!(fresh[0], fresh[1], "one set of credentials per answer");
        assert_eq!(
            links[2],
            "<turn:127.0.0.1:3479?transport=tcp>; rel=\"ice-server\"; \
             username=\"1733230000:alice\"; credential=\"pw@\"; credential-type=\"password\""
        );
        assert!(!links.iter().any(|link| link.contains(SECRET)));
    }

    running.stop();
}

#[test]
fn a_turn_server_without_credentials_or_secret_is_refused() {
    let mut config = ServerConfig::default();
    config.bind = Ipv4Addr::LOCALHOST.into();
    config.http_port = 0;
    config.udp_port = Some(0);
    config.ice_servers = vec!["turn:127.0.0.1:3478".parse().expect("a TURN URL")];
    let pattern =
        TestPattern::new(64, 64, FrameRate::from_int(5).expect("5 > 0")).expect("a valid size");
    let err = Server::builder()
        .config(config)
        .stream(StreamConfig::new("", pattern))
        .build()
        .err()
        .expect("no credentials, no secret: no server")
        .to_string();
    assert!(
        err.contains("turn:127.0.0.1:3478 has no credentials"),
        "{err}"
    );
}

/// A port free on loopback for both UDP and TCP, as far as one can tell.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a TCP port");
        let port = tcp.local_addr().expect("its address").port();
        if std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// `program` started quietly, killed when the guard drops, so a failing assertion leaves no
/// process behind.
fn spawn(program: &str, args: &[String]) -> ChildGuard {
    ChildGuard::new(
        std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} (Debian's coturn): {e}")),
    )
}

/// Whether coturn's `turnutils_uclient` allocates a relay on the TURN server at `port` with
/// these credentials (over TCP with `tcp`) and sends a message through it to the peer at
/// `peer_port`: its exit code, within 30 s.
fn allocates(port: u16, peer_port: u16, username: &str, password: &str, tcp: bool) -> bool {
    let mut args: Vec<String> = [
        "-p",
        &port.to_string(),
        "-u",
        username,
        "-w",
        password,
        "-n",
        "1",
        "-m",
        "1",
        "-l",
        "100",
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if tcp {
        args.push("-t".into());
    }
    args.push("127.0.0.1".into());
    let mut client = spawn("turnutils_uclient", &args);
    client
        .wait_for(Duration::from_secs(30))
        .expect("turnutils_uclient ends within 30 s")
        .success()
}

/// coturn with `use-auth-secret` takes the credentials of the page, over UDP and TCP, and
/// refuses a wrong password. Needs Debian's coturn (`turnserver`, `turnutils_uclient`,
/// `turnutils_peer`); `scripts/test.sh` runs it where they are installed.
#[test]
#[ignore = "needs coturn"]
fn coturn_accepts_the_credentials() {
    let dir = TempDir::new("coturn");
    let dir = dir.path();
    let (turn_port, peer_port) = (free_port(), free_port());
    let _turn = spawn(
        "turnserver",
        &[
            "-n".to_string(),
            "--listening-ip=127.0.0.1".into(),
            format!("--listening-port={turn_port}"),
            "--relay-ip=127.0.0.1".into(),
            "--use-auth-secret".into(),
            format!("--static-auth-secret={SECRET}"),
            "--realm=rtcgear.test".into(),
            "--allow-loopback-peers".into(),
            "--no-tls".into(),
            "--no-dtls".into(),
            "--no-cli".into(),
            format!("--pidfile={}", dir.join("turnserver.pid").display()),
            format!("--userdb={}", dir.join("turndb").display()),
            "--log-file=stdout".into(),
        ],
    );
    let _peer = spawn(
        "turnutils_peer",
        &[
            "-p".to_string(),
            peer_port.to_string(),
            "-L".into(),
            "127.0.0.1".into(),
        ],
    );
    // coturn listens on TCP and UDP at once; wait for TCP.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, turn_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "turnserver did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (base, running) = serve(vec![format!("turn:127.0.0.1:{turn_port}")
        .parse()
        .expect("a TURN URL")]);
    let (status, _, html) = call(&format!("{base}/"), "GET", "text/plain", b"");
    assert_eq!(status, 200, "{html}");
    let servers = page_ice_servers(&html);
    let username = servers[0]["username"].as_str().expect("a user name");
    let password = servers[0]["credential"].as_str().expect("a password");

    assert!(
        allocates(turn_port, peer_port, username, password, false),
        "over UDP"
    );
    assert!(
        allocates(turn_port, peer_port, username, password, true),
        "over TCP"
    );
    let wrong = format!("x{password}");
    assert!(
        !allocates(turn_port, peer_port, username, &wrong, false),
        "a wrong password"
    );

    running.stop();
}
