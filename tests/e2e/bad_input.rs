//! The bad-input battery: every malformed or unwelcome request gets a clear 4xx (or 503 when
//! full), and the server carries on serving everyone else.

use rtcgear_test_support::http::{self, Reply};
use rtcgear_tests::TestServer;

const OFFER: &str = include_str!("../data/chromium-offer.sdp");
const VP8_ONLY: &str = include_str!("../data/chromium-offer-vp8-only.sdp");

/// An offer with AV1 alone: neither H.264 nor VP8.
fn av1_only() -> String {
    VP8_ONLY.replace("VP8/90000", "AV1/90000")
}

fn post(server: &TestServer, path: &str, content_type: &str, body: &[u8]) -> Reply {
    http::request(&server.url(path), "POST", Some((content_type, body)), &[])
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

/// Checks a reply's status and that its body says `why`.
fn check(reply: Reply, status: u16, why: &str) -> Reply {
    assert_eq!(
        reply.0,
        status,
        "expected {status} ({why}), got {}: {}",
        reply.0,
        text(&reply)
    );
    assert!(
        text(&reply).to_lowercase().contains(&why.to_lowercase()),
        "the {status} should say {why:?}: {}",
        text(&reply)
    );
    reply
}

#[test]
fn whep_rejects_what_it_cannot_use() {
    let server = TestServer::start(&[("", 320, 240, 15)], |_| {});
    check(
        post(&server, "/whep", "text/plain", OFFER.as_bytes()),
        415,
        "application/sdp",
    );
    check(
        post(&server, "/whep", "application/sdp", b"garbage"),
        400,
        "malformed SDP",
    );
    check(post(&server, "/whep", "application/sdp", b""), 400, "empty");
    check(
        post(&server, "/whep", "application/sdp", &[0xff, 0xfe, 0x00]),
        400,
        "UTF-8",
    );
    // A browser without H.264 gets VP8; one with neither gets a reason.
    let vp8 = check(
        post(&server, "/whep", "application/sdp", VP8_ONLY.as_bytes()),
        201,
        "VP8/90000",
    );
    let location = header(&vp8, "location").expect("a Location").to_string();
    check(
        http::request(&server.url(&location), "DELETE", None, &[]),
        200,
        "ended",
    );
    check(
        post(&server, "/whep", "application/sdp", av1_only().as_bytes()),
        400,
        "neither usable H.264",
    );
    let answer = OFFER.replace("a=setup:actpass", "a=setup:active");
    check(
        post(&server, "/whep", "application/sdp", answer.as_bytes()),
        400,
        "not an offer",
    );
    check(
        http::request(&server.url("/whep"), "GET", None, &[]),
        405,
        "POST",
    );
    check(
        http::request(&server.url("/whep/12345"), "DELETE", None, &[]),
        404,
        "no WHEP session",
    );
    check(
        http::request(&server.url("/whep/abc"), "DELETE", None, &[]),
        404,
        "no WHEP session",
    );
    check(
        http::request(
            &server.url("/whep/1"),
            "PATCH",
            Some(("application/trickle-ice-sdpfrag", b"a=x")),
            &[],
        ),
        405,
        "DELETE",
    );
    // Nothing above left a viewer behind, and a good offer still works.
    assert_eq!(server.streams()["streams"][0]["viewers"], 0);
    let ok = check(
        post(&server, "/whep", "application/sdp", OFFER.as_bytes()),
        201,
        "v=0",
    );
    let location = header(&ok, "location").expect("a Location").to_string();
    assert_eq!(header(&ok, "content-type"), Some("application/sdp"));
    check(
        http::request(&server.url(&location), "DELETE", None, &[]),
        200,
        "ended",
    );
    // DELETE is idempotent: the session is gone either way.
    check(
        http::request(&server.url(&location), "DELETE", None, &[]),
        200,
        "already ended",
    );
}

#[test]
fn offer_rejects_bad_json_and_wrong_types() {
    let server = TestServer::start(&[("", 320, 240, 15)], |_| {});
    check(
        post(&server, "/offer", "text/plain", b"{}"),
        415,
        "application/json",
    );
    check(
        post(&server, "/offer", "application/json", b"{not json"),
        400,
        "not valid JSON",
    );
    check(
        post(&server, "/offer", "application/json", b"[1, 2]"),
        400,
        "\"sdp\" and \"type\"",
    );
    check(
        post(
            &server,
            "/offer",
            "application/json",
            b"{\"sdp\": 5, \"type\": \"offer\"}",
        ),
        400,
        "\"sdp\" and \"type\"",
    );
    let answer = serde_json::json!({ "sdp": OFFER, "type": "answer" }).to_string();
    check(
        post(&server, "/offer", "application/json", answer.as_bytes()),
        400,
        "must be \"offer\"",
    );
    let av1 = serde_json::json!({ "sdp": av1_only(), "type": "offer" }).to_string();
    check(
        post(&server, "/offer", "application/json", av1.as_bytes()),
        400,
        "nor VP8",
    );
    let good = serde_json::json!({ "sdp": OFFER, "type": "offer" }).to_string();
    let reply = check(
        post(&server, "/offer", "application/json", good.as_bytes()),
        200,
        "answer",
    );
    assert_eq!(reply.2["type"], "answer");
    assert!(reply.2["sdp"].as_str().unwrap_or("").contains("H264/90000"));
    // vidgear's reset: a broadcast does not let one viewer reset the others.
    check(
        post(&server, "/close_connection", "application/json", b"{oops"),
        400,
        "JSON",
    );
    check(
        post(&server, "/close_connection", "application/json", b"1"),
        200,
        "DISABLED",
    );
}

#[test]
fn limits_and_unknown_paths() {
    let server = TestServer::start(&[("", 320, 240, 15)], |config| {
        config.max_viewers = Some(1);
        config.max_body_bytes = 16 * 1024;
        config.cors_origins = vec!["https://player.example".into()];
    });
    let big = vec![b'a'; 64 * 1024];
    check(
        post(&server, "/whep", "application/sdp", &big),
        413,
        "larger than",
    );
    check(
        post(&server, "/offer", "application/json", &big),
        413,
        "larger than",
    );

    check(
        post(&server, "/whep", "application/sdp", OFFER.as_bytes()),
        201,
        "v=0",
    );
    let full = check(
        post(&server, "/whep", "application/sdp", OFFER.as_bytes()),
        503,
        "maximum of 1 viewers",
    );
    assert!(
        header(&full, "retry-after").is_some(),
        "503 without Retry-After"
    );

    let preflight = check(
        http::request(
            &server.url("/whep"),
            "OPTIONS",
            None,
            &[("Origin", "https://player.example")],
        ),
        204,
        "",
    );
    assert_eq!(header(&preflight, "accept-post"), Some("application/sdp"));
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some("https://player.example")
    );
    let stranger = http::request(
        &server.url("/whep"),
        "OPTIONS",
        None,
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(header(&stranger, "access-control-allow-origin"), None);

    check(
        http::request(&server.url("/static/../Cargo.toml"), "GET", None, &[]),
        404,
        "",
    );
    check(
        http::request(&server.url("/static/%2e%2e/Cargo.toml"), "GET", None, &[]),
        404,
        "",
    );
    let page = check(
        http::request(
            &server.url("/no/such/page"),
            "GET",
            None,
            &[("Accept", "text/html")],
        ),
        404,
        "404 Not Found",
    );
    assert!(
        text(&page).contains("<html"),
        "browsers get an HTML 404 page"
    );
    check(
        http::request(&server.url("/api/streams"), "DELETE", None, &[]),
        405,
        "GET",
    );
    check(
        http::request(&server.url("/"), "POST", Some(("text/plain", b"x")), &[]),
        405,
        "GET",
    );
    // Still serving.
    assert_eq!(server.streams()["streams"][0]["viewers"], 1);
}
