//! `cargo xtask pi` and `cargo xtask pi-test`: rtcgear for the Raspberry Pi, cross-built on a
//! Debian 12 x86-64 machine, packaged, and tested under qemu.
//!
//! - `pi` checks what the cross build needs and installs what is missing (the Rust targets
//!   through rustup; the cross gcc, the target's libc and the target's libx264 and FFmpeg
//!   through Debian's multiarch and apt-get), builds `rtcgear` in release mode for each target,
//!   and packages it twice: a `.deb` that installs the binary, the systemd unit and the sample
//!   configuration, and a tarball of the same files for other distributions.
//! - `pi-test` runs the unit and integration tests of the libraries for each target under
//!   `qemu-user`, then a smoke test: the emulated `rtcgear serve` streams the test pattern over
//!   loopback to the native headless Chromium, which must decode it.
//!
//! Every target's artefacts go to `target/pi/<triple>/` (the host's build scripts to
//! `target/pi/release/`), apart from the native build in `target/`, so a cross build never
//! waits for the native build's lock and a second run only rebuilds what changed. The packages
//! go to `target/pi/dist/`.
//!
//! The `.deb` is made with `dpkg-deb` from a staged tree rather than with `cargo-deb`: Debian
//! has every tool it needs (`dpkg-shlibdeps` computes the library dependencies from the target
//! binary through the multiarch packages), so there is no extra tool to compile on a fresh
//! machine, and the tarball is packed from the same staged files.
//!
//! One stage a file: `prepare` (what the cross build needs, installed), `build` (the features
//! and the cross environment, the release build), `package` (the `.deb` and the tarball),
//! `test` (the libraries' tests under qemu) and `smoke` (the emulated server streaming to
//! Chromium); `command` runs the programs they call.

use std::fs;
use std::path::Path;
use std::time::Instant;

mod build;
mod command;
mod package;
mod prepare;
mod smoke;
mod test;

use build::{build, rpicam_features};
use package::{package, package_version};
use prepare::prepare;
use test::test_target;

/// A Raspberry Pi target: the Rust triple and the names Debian gives the same thing.
pub struct Target {
    /// What `--target` accepts.
    pub name: &'static str,
    /// The Rust target triple.
    pub triple: &'static str,
    /// The GNU triple: the cross tools' prefix and the multiarch folder.
    gnu: &'static str,
    /// Debian's architecture name.
    deb_arch: &'static str,
    /// The qemu-user program that runs the target's binaries.
    qemu: &'static str,
    /// The target's dynamic loader; the multiarch libc puts it there and qemu finds it there.
    loader: &'static str,
}

/// 64-bit Raspberry Pi OS (Pi 3, 4, 5, Zero 2) and 32-bit Raspberry Pi OS on ARMv7 CPUs
/// (Pi 2, 3, 4, Zero 2).
pub const TARGETS: [Target; 2] = [
    Target {
        name: "aarch64",
        triple: "aarch64-unknown-linux-gnu",
        gnu: "aarch64-linux-gnu",
        deb_arch: "arm64",
        qemu: "qemu-aarch64",
        loader: "/lib/ld-linux-aarch64.so.1",
    },
    Target {
        name: "armv7",
        triple: "armv7-unknown-linux-gnueabihf",
        gnu: "arm-linux-gnueabihf",
        deb_arch: "armhf",
        qemu: "qemu-arm",
        loader: "/lib/ld-linux-armhf.so.3",
    },
];

/// `cargo xtask pi [--target NAME]... [--test]`.
pub fn pi(root: &Path, args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--test"])?;
    let test = options.flags.iter().any(|f| f == "--test");
    let started = Instant::now();
    prepare(&options.targets, test)?;
    let features = rpicam_features(root)?;
    let version = package_version(root)?;
    let mut made = Vec::new();
    for target in &options.targets {
        build(root, target, &features)?;
        made.extend(package(root, target, &version, &features)?);
    }
    eprintln!("\npi: built and packaged in {:.0} s:", secs(started));
    for path in &made {
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        eprintln!("  {} ({:.1} MB)", path.display(), size as f64 / 1e6);
    }
    if test {
        for target in &options.targets {
            test_target(root, target, &features, Tests::All)?;
        }
        eprintln!("\npi: packaged and tested in {:.0} s", secs(started));
    }
    Ok(())
}

/// `cargo xtask pi-test [--target NAME]... [--smoke-only]`.
pub fn pi_test(root: &Path, args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--smoke-only"])?;
    let tests = if options.flags.iter().any(|f| f == "--smoke-only") {
        Tests::Smoke
    } else {
        Tests::All
    };
    let started = Instant::now();
    prepare(&options.targets, true)?;
    let features = rpicam_features(root)?;
    for target in &options.targets {
        build(root, target, &features)?;
        test_target(root, target, &features, tests)?;
    }
    eprintln!("\npi-test: every test passed in {:.0} s", secs(started));
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Tests {
    All,
    Smoke,
}

struct Options {
    targets: Vec<&'static Target>,
    flags: Vec<String>,
}

impl Options {
    fn parse(args: &[String], known_flags: &[&str]) -> Result<Options, String> {
        let mut targets: Vec<&'static Target> = Vec::new();
        let mut flags = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let name = match arg.strip_prefix("--target=") {
                Some(name) => name.to_string(),
                None if arg == "--target" => args
                    .next()
                    .ok_or("--target needs a value: aarch64, armv7 or all")?
                    .clone(),
                None if known_flags.contains(&arg.as_str()) => {
                    flags.push(arg.clone());
                    continue;
                }
                None => {
                    return Err(format!(
                        "unknown argument {arg:?}; `cargo xtask help` lists the options"
                    ))
                }
            };
            for name in name.split(',') {
                let chosen: Vec<&'static Target> = match name {
                    "all" => TARGETS.iter().collect(),
                    name => vec![TARGETS
                        .iter()
                        .find(|t| t.name == name || t.triple == name)
                        .ok_or_else(|| {
                            format!("unknown target {name:?}: aarch64, armv7 or all")
                        })?],
                };
                for target in chosen {
                    if !targets.iter().any(|t| t.triple == target.triple) {
                        targets.push(target);
                    }
                }
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().collect();
        }
        Ok(Options { targets, flags })
    }
}

pub(super) fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_chosen_by_name_or_triple_once_each() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let options = Options::parse(&args(&[]), &[]).expect("no arguments");
        assert_eq!(options.targets.len(), 2);
        let options = Options::parse(
            &args(&[
                "--target",
                "armv7",
                "--target=aarch64-unknown-linux-gnu,armv7",
            ]),
            &[],
        )
        .expect("valid targets");
        let names: Vec<&str> = options.targets.iter().map(|t| t.name).collect();
        assert_eq!(names, ["armv7", "aarch64"]);
        assert!(Options::parse(&args(&["--target", "x86"]), &[]).is_err());
        assert!(Options::parse(&args(&["--test"]), &[]).is_err());
        assert!(Options::parse(&args(&["--test"]), &["--test"]).is_ok());
    }
}
