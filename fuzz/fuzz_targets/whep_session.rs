//! WHEP's session routes (`PATCH`, `DELETE`, `OPTIONS`, … on `/whep/ID`) with a live session
//! among them: the input is lines of `METHOD PATH-SUFFIX` and an optional body after a blank
//! line; `{id}` in a suffix stands for the live session's id.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rtcgear_server::fuzzing::Harness;

static HARNESS: OnceLock<Harness> = OnceLock::new();
const OFFER: &str = include_str!("../../tests/data/chromium-offer.sdp");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (script, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let harness = HARNESS.get_or_init(Harness::new);
    let created = harness.request(
        "POST",
        "/whep",
        &[("Content-Type", "application/sdp")],
        OFFER.as_bytes(),
    );
    assert_eq!(created.status, 201);
    let location = created.header("Location").expect("a Location").to_string();
    let id = location.rsplit('/').next().unwrap_or("").to_string();
    for line in script.lines().take(8) {
        let (method, suffix) = line.split_once(' ').unwrap_or((line, ""));
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        let path = format!("/whep/{}", suffix.replace("{id}", &id));
        let response = harness.request(
            method,
            &path,
            &[
                ("Content-Type", "application/trickle-ice-sdpfrag"),
                ("If-Match", "*"),
            ],
            body.as_bytes(),
        );
        assert!(
            (200..500).contains(&response.status) || response.status == 503,
            "{method} {path}: {}",
            response.status
        );
    }
    // Whatever happened, the session can be ended (or is already gone).
    let ended = harness.request("DELETE", &location, &[], b"");
    assert!(matches!(ended.status, 200 | 404), "{}", ended.status);
});
