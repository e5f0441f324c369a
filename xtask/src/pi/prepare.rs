//! Checking and installing what the cross build needs: the Rust targets through rustup, the
//! cross compilers and the targets' libraries through Debian's multiarch and apt-get.

use std::fmt::Write as _;
use std::process::Command;

use super::command::{output, run};
use super::Target;

/// The target's -dev packages rtcgear links against (libx264 and FFmpeg's libraries).
const TARGET_LIBRARIES: [&str; 5] = [
    "libx264-dev",
    "libavcodec-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswscale-dev",
];

/// Checks the Rust targets and the Debian packages the targets need, and installs what is
/// missing (apt-get as root or through sudo).
pub(super) fn prepare(targets: &[&Target], for_tests: bool) -> Result<(), String> {
    eprintln!("\n==> checking what the cross build needs");
    let installed = output("rustup", &["target", "list", "--installed"]).map_err(|e| {
        format!(
            "{e}; the cross build needs rustup to add the Raspberry Pi targets (https://rustup.rs)"
        )
    })?;
    let missing: Vec<&str> = targets
        .iter()
        .map(|t| t.triple)
        .filter(|triple| !installed.lines().any(|l| l.trim() == *triple))
        .collect();
    if !missing.is_empty() {
        eprintln!("adding the Rust targets {}", missing.join(" "));
        let mut args = vec!["target", "add"];
        args.extend(&missing);
        run(Command::new("rustup").args(&args), "rustup target add")?;
    }

    let foreign = output("dpkg", &["--print-foreign-architectures"])
        .map_err(|e| format!("{e}; the cross build needs Debian's dpkg and apt-get"))?;
    let new_arches: Vec<&str> = targets
        .iter()
        .map(|t| t.deb_arch)
        .filter(|arch| !foreign.lines().any(|l| l.trim() == *arch))
        .collect();

    let mut packages: Vec<String> = ["pkg-config", "libclang-dev", "dpkg-dev"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    for target in targets {
        packages.push(format!("gcc-{}", target.gnu));
        packages.push(format!("libc6-dev-{}-cross", target.deb_arch));
        for library in TARGET_LIBRARIES {
            packages.push(format!("{library}:{}", target.deb_arch));
        }
    }
    if for_tests {
        // qemu-user runs the target's binaries; ffmpeg/ffprobe are the host tools some tests
        // decode with; Chromium plays the emulated server's stream.
        for package in ["qemu-user", "ffmpeg", "chromium", "chromium-driver"] {
            packages.push(package.to_string());
        }
    }
    let missing: Vec<String> = packages.into_iter().filter(|p| !deb_installed(p)).collect();
    if new_arches.is_empty() && missing.is_empty() {
        eprintln!("<== everything is installed");
        return Ok(());
    }

    let sudo = sudo();
    let fix = {
        let mut fix = String::new();
        for arch in &new_arches {
            let _ = write!(fix, "dpkg --add-architecture {arch} && ");
        }
        let _ = write!(
            fix,
            "apt-get update && apt-get install --no-install-recommends {}",
            missing.join(" ")
        );
        fix
    };
    let Some(sudo) = sudo else {
        return Err(format!(
            "missing: {}; run as root: {fix}",
            if missing.is_empty() {
                format!("the dpkg architectures {}", new_arches.join(" "))
            } else {
                missing.join(" ")
            }
        ));
    };
    for arch in &new_arches {
        eprintln!("adding the dpkg architecture {arch}");
        run(
            Command::new(sudo[0])
                .args(&sudo[1..])
                .args(["dpkg", "--add-architecture", arch]),
            "dpkg --add-architecture",
        )?;
    }
    eprintln!("installing {}", missing.join(" "));
    let apt = |args: &[&str]| {
        let mut command = Command::new(sudo[0]);
        command
            .args(&sudo[1..])
            .arg("env")
            .arg("DEBIAN_FRONTEND=noninteractive")
            .arg("apt-get")
            .args(args);
        command
    };
    run(&mut apt(&["update", "-q"]), "apt-get update")?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    // Multi-Arch: same packages must have the same version on every architecture, so apt may
    // upgrade a few amd64 libraries (Debian's point releases) to match the new arm64 ones.
    run(&mut install, "apt-get install").map_err(|e| {
        format!(
            "{e}: if apt reports a version conflict between the amd64 and the {} packages, \
             run `apt-get update && apt-get upgrade` first so both come from the same release",
            targets
                .iter()
                .map(|t| t.deb_arch)
                .collect::<Vec<_>>()
                .join("/")
        )
    })?;
    eprintln!("<== installed");
    Ok(())
}

/// Whether dpkg says `package` (`name` or `name:arch`) is installed.
fn deb_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// How to run a command as root: nothing to add as root, `sudo -n` with sudo, else `None`.
fn sudo() -> Option<Vec<&'static str>> {
    let uid = output("id", &["-u"]).unwrap_or_default();
    if uid.trim() == "0" {
        // `env` as the "program" keeps the call shape the same with and without sudo.
        Some(vec!["env"])
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        Some(vec!["sudo", "-n"])
    } else {
        None
    }
}
