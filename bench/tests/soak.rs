//! CI's one-minute soak: viewers join and leave the debug `rtcgear` binary for a minute, then
//! all leave. The bench fails unless the server's descriptors and threads come back to their
//! baseline and its RSS after warm-up grows less than the noise margin; this test checks that
//! it ran and says so. The 30-minute run is `rtcgear-bench soak` (RELIABILITY.md).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_rtcgear-bench");

/// The bench process, killed (with its server, which dies with it) if the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The debug `rtcgear` binary beside the bench's, built first if it is missing.
fn server_binary() -> PathBuf {
    let bin = PathBuf::from(BENCH).with_file_name("rtcgear");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "rtcgear"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p rtcgear");
        assert!(status.success(), "cargo build -p rtcgear failed");
    }
    bin
}

#[test]
fn a_minute_of_viewers_coming_and_going_leaves_the_server_flat() {
    let server = server_binary();
    let json = std::env::temp_dir().join(format!("rtcgear-bench-soak-{}.json", std::process::id()));
    let child = Command::new(BENCH)
        .args([
            "soak",
            "--minutes",
            "1",
            "--viewers",
            "4",
            "--churn-seconds",
            "1.5",
        ])
        .args([
            "--warm-up-seconds",
            "20",
            "--rss-margin-mib",
            "24",
            "--slack",
            "4",
        ])
        .arg("--server-bin")
        .arg(&server)
        .arg("--json")
        .arg(&json)
        .spawn()
        .expect("start the bench");
    let mut bench = KillOnDrop(child);
    // One minute of load, up to 40 s for the server to time out silent viewers, and margin.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = bench.0.try_wait().expect("wait for the bench") {
            break status;
        }
        assert!(Instant::now() < deadline, "the soak took over 180 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = std::fs::remove_file(&json);
    assert!(status.success(), "the soak failed ({status}): {text}");
    let report: serde_json::Value = serde_json::from_str(&text).expect("the JSON parses");
    assert_eq!(report["flat"], true, "{text}");
    let joins = report["joins"].as_u64().unwrap_or(0);
    assert!(joins >= 20, "only {joins} joins in a minute: {text}");
    assert!(
        report["leaves_with_delete"].as_u64().unwrap_or(0) > 0
            && report["leaves_silent"].as_u64().unwrap_or(0) > 0,
        "both ways of leaving were exercised: {text}"
    );
    assert_eq!(report["after_leaving"]["viewers"], 0, "{text}");
}
