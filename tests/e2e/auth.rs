//! Who may watch: the access token, basic auth, signed links and their cookie, and HTTPS.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Server, ServerConfig, ShutdownHandle, StreamConfig};
use rtcgear_test_support::http::{self, Reply};
use rtcgear_test_support::programs::require;
use rtcgear_test_support::tempdir::TempDir;
use rtcgear_test_support::webdriver::Browser;
use rtcgear_tests::TestServer;

use crate::heavy;

const OFFER: &str = include_str!("../data/chromium-offer.sdp");
const SECRET: &str = "correct horse battery staple";
/// `Basic base64("anyone:correct horse battery staple")`.
const BASIC: &str = "Basic YW55b25lOmNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGU=";

/// A server with access control on, and a signed link token from it.
struct Guarded {
    addr: SocketAddr,
    token: Option<String>,
    scheme: &'static str,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl Guarded {
    fn start(configure: impl FnOnce(&mut ServerConfig)) -> Guarded {
        let mut config = ServerConfig::default();
        config.bind = Ipv4Addr::LOCALHOST.into();
        config.http_port = 0;
        config.udp_port = Some(0);
        config.access_token = Some(SECRET.into());
        configure(&mut config);
        let pattern = TestPattern::new(320, 240, FrameRate::from_int(15).expect("15 > 0"))
            .expect("a valid size");
        let server = Server::builder()
            .config(config)
            .stream(StreamConfig::new("", pattern))
            .build()
            .expect("the server starts");
        let scheme = if server.urls()[0].starts_with("https://") {
            "https"
        } else {
            "http"
        };
        Guarded {
            addr: server.http_addr(),
            token: server.link_token(),
            scheme,
            stop: server.shutdown_handle(),
            thread: Some(std::thread::spawn(move || {
                server.run().expect("the server runs")
            })),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    fn token(&self) -> &str {
        self.token.as_deref().expect("access control is on")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .1
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn whep(server: &Guarded, headers: &[(&str, &str)]) -> Reply {
    http::request(
        &server.url("/whep"),
        "POST",
        Some(("application/sdp", OFFER.as_bytes())),
        headers,
    )
}

fn get(server: &Guarded, path: &str, headers: &[(&str, &str)]) -> Reply {
    http::request(&server.url(path), "GET", None, headers)
}

#[test]
fn without_a_token_everything_is_open_and_sets_no_cookie() {
    let server = TestServer::start(&[("", 320, 240, 15)], |_| {});
    let page = http::request(&server.url("/"), "GET", None, &[]);
    assert_eq!(page.0, 200);
    assert!(!page.1.iter().any(|(n, _)| n == "set-cookie"));
    let reply = http::request(
        &server.url("/whep"),
        "POST",
        Some(("application/sdp", OFFER.as_bytes())),
        &[],
    );
    assert_eq!(reply.0, 201, "{:?}", reply.2);
}

#[test]
fn whep_needs_the_bearer_token() {
    let server = Guarded::start(|_| {});
    let none = whep(&server, &[]);
    assert_eq!(none.0, 401);
    assert_eq!(
        header(&none, "www-authenticate"),
        Some("Bearer realm=\"rtcgear\"")
    );
    let wrong = whep(&server, &[("authorization", "Bearer not the secret")]);
    assert_eq!(wrong.0, 401);
    // Basic auth is for the page; WHEP clients use the bearer token, as the spec has it.
    assert_eq!(whep(&server, &[("authorization", BASIC)]).0, 401);
    let bearer = format!("Bearer {SECRET}");
    let right = whep(&server, &[("authorization", &bearer)]);
    assert_eq!(right.0, 201, "{:?}", right.2);
    let location = header(&right, "location")
        .expect("a session URL")
        .to_string();

    // Ending the session needs the token too.
    assert_eq!(
        http::request(&server.url(&location), "DELETE", None, &[]).0,
        401
    );
    let ended = http::request(
        &server.url(&location),
        "DELETE",
        None,
        &[("authorization", &bearer)],
    );
    assert_eq!(ended.0, 200);
    // A CORS preflight carries no credentials and changes nothing, so it passes.
    assert_eq!(
        http::request(&server.url("/whep"), "OPTIONS", None, &[]).0,
        204
    );
}

#[test]
fn the_page_takes_basic_auth_or_a_signed_link_and_then_its_cookie() {
    let server = Guarded::start(|_| {});
    for path in ["/", "/api/streams", "/static/player.js", "/nothing-here"] {
        let reply = get(&server, path, &[]);
        assert_eq!(reply.0, 401, "{path}");
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some("Basic realm=\"rtcgear\", charset=\"UTF-8\""),
            "{path}"
        );
    }
    // `/offer` is behind the same check as the page.
    let offer = http::request(
        &server.url("/offer"),
        "POST",
        Some(("application/json", b"{}")),
        &[],
    );
    assert_eq!(offer.0, 401);

    for path in ["/", "/api/streams", "/static/player.js"] {
        let reply = get(&server, path, &[("authorization", BASIC)]);
        assert_eq!(reply.0, 200, "{path} with basic auth");
        let wrong = get(
            &server,
            path,
            &[("authorization", "Basic YW55b25lOm5vcGU=")],
        );
        assert_eq!(wrong.0, 401, "{path} with the wrong password");
    }

    // The signed link: 200 and a cookie carrying the same token.
    let token = server.token().to_string();
    let page = get(&server, &format!("/?token={token}"), &[]);
    assert_eq!(page.0, 200);
    let cookie = header(&page, "set-cookie").expect("a cookie with the link");
    assert!(
        cookie.starts_with(&format!("rtcgear_token={token}; Path=/; Max-Age=")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .expect("a Max-Age");
    assert!((24 * 3600 - 60..=24 * 3600).contains(&max_age), "{max_age}");
    // A follow-up with the cookie alone passes everywhere, WHEP included.
    let jar = format!("rtcgear_token={token}");
    for path in ["/", "/api/streams", "/static/player.js"] {
        assert_eq!(get(&server, path, &[("cookie", &jar)]).0, 200, "{path}");
    }
    assert_eq!(whep(&server, &[("cookie", &jar)]).0, 201);
    let streams = get(&server, "/api/streams", &[("cookie", &jar)]);
    assert_eq!(streams.2["streams"][0]["width"], 320);

    // Tampered links and cookies fail: another expiry, a changed signature, no signature.
    let (expiry, signature) = token.split_once('.').expect("EXPIRY.SIGNATURE");
    let later = expiry.parse::<u64>().expect("digits") + 3600;
    let mut flipped = signature.to_string().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    for bad in [
        format!("{later}.{signature}"),
        format!("{expiry}.{flipped}"),
        expiry.to_string(),
        String::new(),
    ] {
        assert_eq!(get(&server, &format!("/?token={bad}"), &[]).0, 401, "{bad}");
        let jar = format!("rtcgear_token={bad}");
        assert_eq!(get(&server, "/api/streams", &[("cookie", &jar)]).0, 401);
        assert_eq!(whep(&server, &[("cookie", &jar)]).0, 401);
    }
}

#[test]
fn an_expired_link_is_refused() {
    // A zero lifetime: the link expires the second it is made.
    let server = Guarded::start(|config| config.link_ttl = Duration::ZERO);
    let token = server.token().to_string();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&server, &format!("/?token={token}"), &[]).0, 401);
    let jar = format!("rtcgear_token={token}");
    assert_eq!(get(&server, "/api/streams", &[("cookie", &jar)]).0, 401);
    assert_eq!(
        get(&server, "/api/streams", &[("authorization", BASIC)]).0,
        200
    );
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with the `openssl` CLI.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let openssl = require("openssl", "openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made no certificate");
    (cert, key)
}

/// `curl` trusting `ca`: the status and the headers, lower case.
fn curl(ca: &Path, url: &str, args: &[&str]) -> (u16, String) {
    let curl = require("curl", "curl");
    let output = Command::new(curl)
        .args(["-sS", "--max-time", "10", "-D", "-", "-o", "/dev/null"])
        .arg("--cacert")
        .arg(ca)
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let head = String::from_utf8_lossy(&output.stdout).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

#[test]
fn https_serves_the_page_and_whep_with_the_token() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed(dir.path());
    let server = Guarded::start(|config| {
        config.tls_cert = Some(cert.clone());
        config.tls_key = Some(key.clone());
    });
    assert_eq!(server.scheme, "https");
    let token = server.token().to_string();
    let (status, head) = curl(&cert, &server.url("/"), &[]);
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic realm=\"rtcgear\""));
    let (status, head) = curl(&cert, &server.url(&format!("/?token={token}")), &[]);
    assert_eq!(status, 200);
    // Over HTTPS the cookie is `Secure`.
    assert!(head.contains("set-cookie: rtcgear_token=") && head.contains("; secure"));
    let (status, _) = curl(
        &cert,
        &server.url("/api/streams"),
        &["-u", &format!("me:{SECRET}")],
    );
    assert_eq!(status, 200);
    let offer = dir.path().join("offer.sdp");
    std::fs::write(&offer, OFFER).expect("the offer is written");
    let data = format!("@{}", offer.display());
    let post = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/sdp",
        "--data-binary",
        &data,
    ];
    assert_eq!(curl(&cert, &server.url("/whep"), &post).0, 401);
    let bearer = format!("Authorization: Bearer {SECRET}");
    let mut with_bearer = post.to_vec();
    with_bearer.extend(["-H", &bearer]);
    assert_eq!(curl(&cert, &server.url("/whep"), &with_bearer).0, 201);

    // A missing half of the pair, or a file that is not a key, is a clear error, not a panic.
    let mut config = ServerConfig::default();
    config.bind = Ipv4Addr::LOCALHOST.into();
    config.http_port = 0;
    config.udp_port = Some(0);
    config.tls_cert = Some(cert.clone());
    let pattern =
        || TestPattern::new(64, 64, FrameRate::from_int(5).expect("5 > 0")).expect("size");
    let err = Server::builder()
        .config(config.clone())
        .stream(StreamConfig::new("", pattern()))
        .build()
        .err()
        .expect("a certificate without a key is refused");
    assert!(err.to_string().contains("both"), "{err}");
    config.tls_key = Some(cert.clone());
    let err = Server::builder()
        .config(config)
        .stream(StreamConfig::new("", pattern()))
        .build()
        .err()
        .expect("a certificate as the key is refused");
    assert!(err.to_string().contains("key"), "{err}");
}

#[test]
fn chromium_plays_the_stream_from_a_signed_link() {
    let _turn = heavy();
    let server = Guarded::start(|_| {});
    let browser = Browser::start();
    // Without the link the page is refused.
    browser.goto(&server.url("/"));
    let refused = browser.eval("return document.body.innerText");
    assert!(
        refused.as_str().is_some_and(|t| !t.contains("Live stream")),
        "{refused}"
    );
    browser.goto(&server.url(&format!("/?token={}", server.token())));
    browser.wait_for(
        "the video to play from the signed link",
        Duration::from_secs(20),
        "return !!window.rtcgear && window.rtcgear.state === 'connected' \
         && window.rtcgear.stats.framesDecoded > 0",
    );
    let frames = |b: &Browser| b.frames_decoded();
    let before = frames(&browser);
    std::thread::sleep(Duration::from_secs(2));
    let after = frames(&browser);
    assert!(
        after >= before + 10,
        "only {} frames in 2 s",
        after - before
    );
    // The page's own fetch of /api/streams went through on the cookie, and the token left
    // the address bar.
    browser.wait_for(
        "the viewer count from /api/streams",
        Duration::from_secs(5),
        "return document.getElementById('stat-viewers').textContent === '1'",
    );
    let address = browser.eval("return window.location.href");
    assert!(
        address.as_str().is_some_and(|a| !a.contains("token=")),
        "{address}"
    );
    // The cookie is HttpOnly: scripts cannot read it.
    assert_eq!(browser.eval("return document.cookie"), "");
}
