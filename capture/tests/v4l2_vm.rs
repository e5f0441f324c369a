//! Runs `examples/v4l2_check.rs` against a real kernel V4L2 device: the `vivid` virtual camera
//! in the throw-away VM of `scripts/v4l2-vm.sh`.
//!
//! Ignored by a plain `cargo test`, because it needs root and qemu and takes about 40 s. It runs
//! the example binary that is already built, so build it first:
//!
//! ```text
//! cargo build -p rtcgear-capture --features v4l2 --example v4l2_check
//! cargo test -p rtcgear-capture --features v4l2 --test v4l2_vm -- --ignored --nocapture
//! ```
//!
//! vivid has no H.264. With `RTCGEAR_V4L2LOOPBACK_KO` naming a `v4l2loopback.ko` built for the
//! VM's kernel (`scripts/v4l2loopback.sh`, which `scripts/test.sh` runs), the test also makes an
//! x264 clip and hands both to the VM through its shared results folder once it boots; the
//! example then checks H.264 passthrough from that loopback device.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

#[test]
#[ignore = "boots a VM (root, qemu; about 40 s): scripts/test.sh runs it with --ignored"]
fn vivid_camera_in_a_vm() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the capture crate sits in the workspace")
        .to_path_buf();
    let script = workspace.join("scripts/v4l2-vm.sh");
    assert!(script.is_file(), "{} is missing", script.display());
    // Cargo puts test binaries in target/<profile>/deps and examples in target/<profile>/examples.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let example = profile_dir.join("examples/v4l2_check");
    assert!(
        example.is_file(),
        "{} is missing: build it first with \
         `cargo build -p rtcgear-capture --features v4l2 --example v4l2_check`",
        example.display()
    );
    let loopback = std::env::var_os("RTCGEAR_V4L2LOOPBACK_KO")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg(&example)
        .current_dir(&workspace)
        .env("V4L2VM_QUIET", "0");
    let handover = match &loopback {
        Some(ko) => {
            assert!(
                ko.is_file(),
                "RTCGEAR_V4L2LOOPBACK_KO: {} is missing",
                ko.display()
            );
            command.arg("--loopback");
            let work = std::env::var_os("V4L2VM_WORK")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("v4l2-vm"));
            Some(hand_over(ko.clone(), work))
        }
        None => {
            println!(
                "not testing H.264 from v4l2loopback: RTCGEAR_V4L2LOOPBACK_KO is not set or \
                 empty (scripts/test.sh builds the module with scripts/v4l2loopback.sh)"
            );
            None
        }
    };
    // The script bounds the VM itself (V4L2VM_TIMEOUT, 300 s by default, and 120 s for the
    // example inside it).
    let status = command.status().expect("bash runs");
    if let Some(handover) = handover {
        let handed = handover
            .join()
            .expect("the hand-over thread does not panic");
        assert!(handed.is_ok(), "handing v4l2loopback to the VM: {handed:?}");
    }
    assert!(
        status.success(),
        "the V4L2 VM test failed ({status}); see the output above"
    );
}

/// Makes an x264 clip and, once the VM script has rebuilt its run folder (its initramfs is
/// written after the results folder is emptied), copies the module and the clip into the
/// results folder that the VM mounts at `/out`, then a marker the example waits for.
fn hand_over(ko: PathBuf, work: PathBuf) -> std::thread::JoinHandle<Result<(), String>> {
    let started = SystemTime::now();
    std::thread::spawn(move || {
        let clip = work.join("loopback-clip.h264");
        // Baseline (no B-frames), a keyframe every 10 pictures with SPS and PPS before it.
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30",
                "-t",
                "1",
            ])
            .args(["-c:v", "libx264", "-profile:v", "baseline", "-g", "10"])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&clip)
            .status()
            .map_err(|e| format!("ffmpeg: {e}"))?;
        if !status.success() {
            return Err(format!("ffmpeg made no clip: {status}"));
        }
        let run = work.join("run");
        let initrd = run.join("initrd.cpio.gz");
        let fresh = |path: &Path| {
            path.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= started)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        while !fresh(&initrd) {
            if std::time::Instant::now() > deadline {
                return Err(format!("{} was not written", initrd.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = run.join("out");
        let copy = |from: &Path, name: &str| {
            std::fs::copy(from, out.join(name))
                .map(|_| ())
                .map_err(|e| format!("copying {} into {}: {e}", from.display(), out.display()))
        };
        copy(&ko, "v4l2loopback.ko")?;
        copy(&clip, "clip.h264")?;
        std::fs::write(out.join("loopback-ready"), "ready\n").map_err(|e| e.to_string())
    })
}
