//! `pi-test` for one target: the libraries' tests under qemu, then the smoke test.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::build::{binary, cross_env, Features};
use super::command::run_bounded;
use super::{secs, smoke, Target, Tests};

/// The library crates whose tests `pi-test` runs under qemu.
///
/// Left out: `rtcgear` (the CLI's tests start the target binary as a child process, which the
/// kernel cannot run without binfmt_misc; the smoke test runs it under qemu instead),
/// `rtcgear-tests` (its end-to-end tests expect the in-process server to stream 640x480 at
/// 30 fps in real time, which the emulated encoder cannot do on two cores; the smoke test
/// covers the emulated server with Chromium at a size emulation can keep up with) and
/// `rtcgear-bench` (a load bench, not a test of the target).
const TESTED_CRATES: [&str; 5] = [
    "rtcgear-capture",
    "rtcgear-encode",
    "rtcgear-rtc",
    "rtcgear-stabilize",
    "rtcgear-server",
];

/// How long the tests of one target may take under qemu, compiling included, before they count
/// as hung (a first run took 28 minutes for aarch64 on two cores shared with other builds).
const UNIT_TEST_LIMIT: Duration = Duration::from_secs(75 * 60);

pub(super) fn test_target(
    root: &Path,
    target: &Target,
    features: &Features,
    tests: Tests,
) -> Result<(), String> {
    if !Path::new(target.loader).exists() {
        return Err(format!(
            "{} is missing, so qemu cannot start {} binaries: install libc6:{} \
             (`cargo xtask pi-test` installs it with the target's libraries)",
            target.loader, target.triple, target.deb_arch
        ));
    }
    if tests == Tests::All {
        unit_tests(root, target, features)?;
    }
    smoke::run(root, target, &binary(root, target), features.rpicam)
}

/// The libraries' tests, built for the target in release mode (sharing the build's
/// dependencies) and run under qemu.
fn unit_tests(root: &Path, target: &Target, features: &Features) -> Result<(), String> {
    let mut args = vec![
        "test",
        "--release",
        "--locked",
        "--target",
        target.triple,
        "--target-dir",
        "target/pi",
    ];
    for krate in TESTED_CRATES {
        args.extend(["-p", krate]);
    }
    // The capture sources the Pi build has are tested too (the V4L2 VM test is ignored: it
    // is for the native build, and would boot a VM per target).
    let capture: Vec<String> = features
        .capture
        .iter()
        .map(|f| format!("rtcgear-capture/{f}"))
        .collect();
    let capture = capture.join(",");
    if !capture.is_empty() {
        args.extend(["--features", &capture]);
    }
    let title = format!("tests of the libraries for {} under qemu", target.triple);
    eprintln!("\n==> {title}: cargo {}", args.join(" "));
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(&args)
        .envs(cross_env(target))
        .current_dir(root);
    run_bounded(&mut command, UNIT_TEST_LIMIT, &title)?;
    eprintln!("<== {title}: {:.0} s", secs(started));
    Ok(())
}
