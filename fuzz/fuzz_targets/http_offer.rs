//! Offers as the HTTP handlers see them: the first byte picks the route (WHEP or vidgear's
//! `/offer`, the default stream or `yard`), the rest is the body. A session that is created is
//! ended again through `DELETE`, as a player would.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rtcgear_server::fuzzing::Harness;

static HARNESS: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let harness = HARNESS.get_or_init(Harness::new);
    let base = if route & 4 == 0 { "" } else { "/yard" };
    let response = match route & 3 {
        0 | 1 => {
            let content_type = if route & 1 == 0 {
                "application/sdp"
            } else {
                "application/SDP; charset=utf-8"
            };
            harness.request(
                "POST",
                &format!("{base}/whep"),
                &[("Content-Type", content_type)],
                body,
            )
        }
        2 => harness.request(
            "POST",
            &format!("{base}/offer"),
            &[("Content-Type", "application/json")],
            body,
        ),
        _ => {
            // The body as the "sdp" string of well-formed JSON, so that mutations reach the SDP
            // parser through vidgear's route too.
            let json = serde_json_string(body);
            harness.request(
                "POST",
                &format!("{base}/offer"),
                &[("Content-Type", "application/json")],
                json.as_bytes(),
            )
        }
    };
    assert!(
        matches!(response.status, 200 | 201 | 400 | 413 | 415 | 503),
        "unexpected status {}",
        response.status
    );
    assert!(!response.body.is_empty(), "a response without a reason");
    if let Some(location) = response.header("Location") {
        let location = location.to_string();
        let deleted = harness.request("DELETE", &location, &[], b"");
        assert_eq!(deleted.status, 200, "{location}");
    }
});

fn serde_json_string(body: &[u8]) -> String {
    let sdp = String::from_utf8_lossy(body);
    let mut out = String::from("{\"type\": \"offer\", \"sdp\": \"");
    for c in sdp.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    out
}
