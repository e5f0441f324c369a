//! Runs `examples/v4l2_check.rs` against a real kernel V4L2 device: the `vivid` virtual camera
//! in the throw-away VM of `../shared/tools/v4l2-vm.sh`.
//!
//! Opt-in, because it needs root and qemu and takes about 40 s: set `RTCGEAR_V4L2_VM=1`. It runs
//! the example binary that is already built, so build it first:
//!
//! ```text
//! cargo build -p rtcgear-capture --features v4l2 --example v4l2_check
//! RTCGEAR_V4L2_VM=1 cargo test -p rtcgear-capture --features v4l2 --test v4l2_vm -- --nocapture
//! ```

use std::path::PathBuf;
use std::process::Command;

#[test]
fn vivid_camera_in_a_vm() {
    if std::env::var("RTCGEAR_V4L2_VM").as_deref() != Ok("1") {
        println!("skipping the V4L2 VM test: set RTCGEAR_V4L2_VM=1 (needs root, qemu; about 40 s)");
        return;
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the capture crate sits in the workspace")
        .to_path_buf();
    let script = workspace.join("../shared/tools/v4l2-vm.sh");
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
    // The script bounds the VM itself (V4L2VM_TIMEOUT, 300 s by default, and 120 s for the
    // example inside it).
    let status = Command::new("bash")
        .arg(&script)
        .arg(&example)
        .current_dir(&workspace)
        .env("V4L2VM_QUIET", "0")
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "the V4L2 VM test failed ({status}); see the output above"
    );
}
