//! An outside WebRTC client, not written here (aiortc, from PyPI), plays through WHEP and
//! through vidgear's JSON `/offer`.

use std::path::PathBuf;
use std::process::Command;

use rtcgear_tests::TestServer;
use serde_json::Value;

use crate::heavy;

/// The Python that has aiortc: `RTCGEAR_PYTHON`, else the test command's venv.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("RTCGEAR_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: the README's test command (`./scripts/test.sh`) makes it with aiortc \
         from tests/clients/requirements.txt",
        venv.display()
    );
    venv
}

fn watch(url: &str, mode: &str) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/aiortc_client.py");
    let output = Command::new(python())
        .arg(script)
        .args(["--url", url, "--mode", mode, "--seconds", "3"])
        .output()
        .expect("the aiortc client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "the aiortc client printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn assert_played(result: &Value) {
    assert!(result.get("error").is_none(), "{result}");
    let frames = result["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 30, "only {frames} frames in 3 s: {result}");
    assert_eq!(result["width"], 640, "{result}");
    assert_eq!(result["height"], 480, "{result}");
    // The stamp survives encoding, packetisation and aiortc's decoder, frame after frame.
    assert!(
        result["stamps"].as_u64().unwrap_or(0) >= frames * 9 / 10,
        "{result}"
    );
}

#[test]
fn aiortc_plays_through_whep_and_ends_its_session_with_delete() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30)], |_| {});
    let result = watch(&server.url("/whep"), "whep");
    assert_played(&result);
    assert_eq!(result["status"], 201);
    // The session's URL: the viewer's number and a tag only this server makes.
    let location = result["location"].as_str().unwrap_or_default();
    assert!(location.starts_with("/whep/1-"), "{result}");
    assert_eq!(result["delete_status"], 200, "{result}");
}

#[test]
fn aiortc_plays_through_vidgears_json_offer() {
    let _turn = heavy();
    let server = TestServer::start(&[("", 640, 480, 30), ("cam2", 640, 480, 30)], |_| {});
    let result = watch(&server.url("/cam2/offer"), "offer");
    assert_played(&result);
    assert_eq!(result["status"], 200);
}
