//! CI's smoke run of the viewer bench: three viewers for three seconds at 320x240 against the
//! debug `rtcgear` binary. It checks that the bench runs and reports sane figures, never timings.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

/// The debug `rtcgear` binary beside the bench's; built first if it is missing (under
/// `cargo test --workspace` it is already there, built for the cli's own tests).
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
fn three_viewers_play() {
    let server = server_binary();
    let json =
        std::env::temp_dir().join(format!("rtcgear-bench-smoke-{}.json", std::process::id()));
    let plot = json.with_extension("svg");
    let child = Command::new(BENCH)
        .args([
            "viewers",
            "--viewers",
            "3",
            "--size",
            "320x240",
            "--seconds",
            "3",
        ])
        .args(["--sample", "2", "--threads", "1"])
        .arg("--server-bin")
        .arg(&server)
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&plot)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bench");
    let mut bench = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(50);
    let status = loop {
        if let Some(status) = bench.0.try_wait().expect("wait for the bench") {
            break status;
        }
        assert!(Instant::now() < deadline, "the smoke run took over 50 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the bench failed: {status}");

    let text = std::fs::read_to_string(&json).expect("the bench wrote its JSON");
    let svg = std::fs::read_to_string(&plot).expect("the bench wrote its plot");
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&plot);
    let report: serde_json::Value = serde_json::from_str(&text).expect("the JSON parses");
    assert!(
        report["machine"]["cpus"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );
    let runs = report["runs"].as_array().expect("a list of runs");
    assert_eq!(runs.len(), 1, "{text}");
    let run = &runs[0];
    assert_eq!(run["run"], 1, "{text}");
    assert_eq!(run["refused"], 0, "{text}");
    assert_eq!(run["failed"], 0, "{text}");
    let points = report["points"].as_array().expect("a list of points");
    assert_eq!(points.len(), 1, "{text}");
    assert_eq!(points[0]["clean"], 1, "{text}");
    assert_eq!(run["viewers"], 3, "{text}");
    assert_eq!(run["playing"], 3, "every viewer received frames: {text}");
    assert!(run["fps_median"].as_f64().unwrap_or(0.0) > 0.0, "{text}");
    assert!(run["sample_pictures"].as_u64().unwrap_or(0) > 0, "{text}");
    assert!(run["latency_p50_ms"].as_f64().is_some(), "{text}");
    assert!(
        run["server_rss_mib"].as_f64().unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(svg.starts_with("<svg"), "{svg}");
}
