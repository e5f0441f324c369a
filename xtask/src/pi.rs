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

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::step;

mod smoke;

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

/// The target's -dev packages rtcgear links against (libx264 and FFmpeg's libraries).
const TARGET_LIBRARIES: [&str; 5] = [
    "libx264-dev",
    "libavcodec-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswscale-dev",
];

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
enum Tests {
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

/// Checks the Rust targets and the Debian packages the targets need, and installs what is
/// missing (apt-get as root or through sudo).
fn prepare(targets: &[&Target], for_tests: bool) -> Result<(), String> {
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

/// The features to build `rtcgear` with for a Pi, and the source the sample configuration
/// names: the Raspberry Pi camera when rtcgear has its `rpicam` feature.
struct Features {
    /// Passed to cargo as `--features`, empty when the CLI turns everything on by itself.
    cargo: Vec<String>,
    /// The capture features the CLI turns on, which the libraries' tests are run with.
    capture: Vec<String>,
    rpicam: bool,
}

/// Reads the CLI's manifest: which capture features it turns on, and whether it has an
/// `rpicam` feature of its own (then it is passed) or turns the camera on for capture.
fn rpicam_features(root: &Path) -> Result<Features, String> {
    let manifest = root.join("cli/Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let features = parse_cli_features(&text);
    if features.rpicam {
        eprintln!("the Raspberry Pi camera (rpicam) is built in");
    } else {
        eprintln!(
            "note: this tree's rtcgear has no rpicam feature yet: building with the CLI's \
             default features (USB cameras, files, network streams); the sample configuration \
             serves /dev/video0"
        );
    }
    Ok(features)
}

fn parse_cli_features(manifest: &str) -> Features {
    let mut table = "";
    let mut own_rpicam = false;
    let mut capture = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
            continue;
        }
        let key = line.split('=').next().map(str::trim).unwrap_or("");
        if table == "[features]" && key == "rpicam" {
            own_rpicam = true;
        } else if table == "[dependencies]" && key == "rtcgear-capture" {
            // rtcgear-capture = { workspace = true, features = ["ffmpeg", "v4l2"] }
            if let Some(list) = line
                .split_once("features")
                .and_then(|(_, rest)| rest.split_once('['))
                .and_then(|(_, rest)| rest.split_once(']'))
            {
                capture = list
                    .0
                    .split(',')
                    .map(|f| f.trim().trim_matches('"').to_string())
                    .filter(|f| !f.is_empty())
                    .collect();
            }
        }
    }
    Features {
        cargo: if own_rpicam {
            vec!["--features".into(), "rpicam".into()]
        } else {
            Vec::new()
        },
        rpicam: own_rpicam || capture.iter().any(|f| f == "rpicam"),
        capture,
    }
}

/// `rtcgear`'s version, from cargo.
fn package_version(root: &Path) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let pkgid = Command::new(&cargo)
        .args(["pkgid", "--quiet", "-p", "rtcgear"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    let text = String::from_utf8_lossy(&pkgid.stdout);
    // `path+file:///…/cli#rtcgear@0.1.0`, or `…/cli#0.1.0` from older cargo.
    text.trim()
        .rsplit(['@', '#'])
        .next()
        .filter(|v| pkgid.status.success() && v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| format!("cargo pkgid -p rtcgear gave no version: {text:?}"))
}

/// The environment that points cargo, cc, pkg-config and bindgen at the target.
fn cross_env(target: &Target) -> Vec<(String, String)> {
    let upper = target.triple.to_uppercase().replace('-', "_");
    let lower = target.triple.replace('-', "_");
    let gnu = target.gnu;
    let mut env = vec![
        (format!("CARGO_TARGET_{upper}_LINKER"), format!("{gnu}-gcc")),
        // No `-L`: with the multiarch libc installed the target's loader is where the binary
        // looks for it, and mixing the cross libc's loader with the multiarch libc hangs
        // every pthread_create.
        (
            format!("CARGO_TARGET_{upper}_RUNNER"),
            target.qemu.to_string(),
        ),
        (format!("CC_{lower}"), format!("{gnu}-gcc")),
        (format!("AR_{lower}"), format!("{gnu}-ar")),
        ("PKG_CONFIG_ALLOW_CROSS".into(), "1".into()),
        // LIBDIR, not PATH: only the target's .pc files, never the host's.
        (
            format!("PKG_CONFIG_LIBDIR_{lower}"),
            format!("/usr/lib/{gnu}/pkgconfig:/usr/share/pkgconfig"),
        ),
    ];
    if target.triple.starts_with("armv7") {
        // ffmpeg-sys-next 9.0.1's Vulkan stub header asserts the 64-bit size of
        // VkPhysicalDeviceFeatures2 (240 bytes), which fails on 32-bit targets (228). rtcgear
        // uses no Vulkan; without the assertion clang lays the struct out for the target.
        env.push((
            format!("BINDGEN_EXTRA_CLANG_ARGS_{lower}"),
            "-D_Static_assert(condition,message)=".into(),
        ));
    }
    env
}

fn build(root: &Path, target: &Target, features: &Features) -> Result<(), String> {
    let mut args = vec![
        "build",
        "--release",
        "--locked",
        "-p",
        "rtcgear",
        "--target",
        target.triple,
        "--target-dir",
        "target/pi",
    ];
    args.extend(features.cargo.iter().map(String::as_str));
    let env = cross_env(target);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    step(root, &format!("rtcgear for {}", target.triple), &args, &env)
}

/// The built binary.
fn binary(root: &Path, target: &Target) -> PathBuf {
    root.join("target/pi")
        .join(target.triple)
        .join("release/rtcgear")
}

/// Stages the package's files and makes the `.deb` and the tarball; returns their paths.
fn package(
    root: &Path,
    target: &Target,
    version: &str,
    features: &Features,
) -> Result<Vec<PathBuf>, String> {
    eprintln!("\n==> packaging rtcgear {version} for {}", target.triple);
    let started = Instant::now();
    let work = root.join("target/pi").join(target.triple).join("package");
    let dist = root.join("target/pi/dist");
    remove_dir(&work)?;
    create_dir(&dist)?;
    let packaging = root.join("packaging");
    let read = |name: &str| {
        let path = packaging.join(name);
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let source = if features.rpicam { "pi:0" } else { "0" };
    let config = read("rtcgear.default")?.replace("@SOURCE@", source);
    let unit = read("rtcgear.service")?;

    // The .deb's tree, in the layout dpkg-shlibdeps expects (debian/PACKAGE/…).
    let tree = work.join("debian/rtcgear");
    let installed_binary = tree.join("usr/bin/rtcgear");
    create_dir(installed_binary.parent().expect("a file path has a parent"))?;
    // The line tables stay out of the package (they are most of the binary's 100 MB); the
    // symbols stay in, so a backtrace still names functions.
    run(
        Command::new(format!("{}-strip", target.gnu))
            .arg("--strip-debug")
            .arg("-o")
            .arg(&installed_binary)
            .arg(binary(root, target)),
        "strip",
    )?;
    write(
        &tree.join("lib/systemd/system/rtcgear.service"),
        &unit.replace("@BINDIR@", "/usr/bin"),
    )?;
    write(&tree.join("etc/default/rtcgear"), &config)?;
    write(
        &tree.join("usr/share/doc/rtcgear/copyright"),
        "rtcgear: https://github.com/rtcgear/rtcgear\n\
         License: MIT OR Apache-2.0 (at your option).\n",
    )?;

    // The libraries the binary needs, as Debian package names and versions.
    write(
        &work.join("debian/control"),
        &format!(
            "Source: rtcgear\n\nPackage: rtcgear\nArchitecture: {}\n",
            target.deb_arch
        ),
    )?;
    let shlibdeps = Command::new("dpkg-shlibdeps")
        .args(["-O", "--warnings=0"])
        .arg(Path::new("debian/rtcgear/usr/bin/rtcgear"))
        .current_dir(&work)
        .output()
        .map_err(|e| format!("cannot run dpkg-shlibdeps (Debian's dpkg-dev): {e}"))?;
    let depends = String::from_utf8_lossy(&shlibdeps.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_string)
        .filter(|_| shlibdeps.status.success())
        .ok_or_else(|| {
            format!(
                "dpkg-shlibdeps could not tell the libraries rtcgear needs: {}",
                String::from_utf8_lossy(&shlibdeps.stderr).trim()
            )
        })?;

    let debian = tree.join("DEBIAN");
    create_dir(&debian)?;
    let installed_kib = dir_size(&tree)?.div_ceil(1024);
    let mut control = format!(
        "Package: rtcgear\n\
         Version: {version}\n\
         Architecture: {}\n\
         Maintainer: rtcgear developers <https://github.com/rtcgear/rtcgear/issues>\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n",
        target.deb_arch
    );
    if features.rpicam {
        control.push_str("Recommends: rpicam-apps-lite | rpicam-apps\n");
    }
    control.push_str(
        "Section: video\n\
         Priority: optional\n\
         Homepage: https://github.com/rtcgear/rtcgear\n\
         Description: stream live video to web browsers over WebRTC\n \
         rtcgear serves a camera (the Raspberry Pi camera, a USB camera), a video file or a\n \
         network stream to any number of browsers with tens of milliseconds of latency,\n \
         encoded once to H.264. The rtcgear service (not enabled on install) reads its\n \
         options from /etc/default/rtcgear.\n",
    );
    write(&debian.join("control"), &control)?;
    write(&debian.join("conffiles"), "/etc/default/rtcgear\n")?;
    for script in ["postinst", "prerm", "postrm"] {
        let path = debian.join(script);
        write(&path, &read(&format!("deb/{script}"))?)?;
        set_mode(&path, 0o755)?;
    }
    let deb = dist.join(format!("rtcgear_{version}_{}.deb", target.deb_arch));
    run(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zxz"])
            .arg(&tree)
            .arg(&deb),
        "dpkg-deb --build",
    )?;

    // The tarball: the same binary, the unit pointing at /usr/local/bin, the sample
    // configuration and how to install them.
    let name = format!("rtcgear-{version}-{}", target.triple);
    let folder = work.join(&name);
    create_dir(&folder)?;
    fs::copy(&installed_binary, folder.join("rtcgear"))
        .map_err(|e| format!("cannot copy the binary: {e}"))?;
    set_mode(&folder.join("rtcgear"), 0o755)?;
    write(
        &folder.join("rtcgear.service"),
        &unit.replace("@BINDIR@", "/usr/local/bin"),
    )?;
    write(&folder.join("rtcgear.default"), &config)?;
    write(
        &folder.join("INSTALL.txt"),
        &install_text(&name, &deb, &depends, features.rpicam),
    )?;
    let tarball = dist.join(format!("{name}.tar.gz"));
    run(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "-czf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&work)
            .arg(&name),
        "tar",
    )?;
    eprintln!(
        "<== packaged in {:.0} s: {}, {}",
        secs(started),
        deb.display(),
        tarball.display()
    );
    Ok(vec![deb, tarball])
}

/// The tarball's INSTALL.txt: the commands, with the library packages from `depends`.
fn install_text(name: &str, deb: &Path, depends: &str, rpicam: bool) -> String {
    // "libavcodec59 (>= 7:5.0), libc6 (>= 2.35)" → "libavcodec59 libc6"
    let packages: Vec<&str> = depends
        .split(',')
        .filter_map(|d| d.split_whitespace().next())
        .collect();
    let (camera, source) = if rpicam {
        (
            " rpicam-apps-lite",
            "pi:0 (the Raspberry Pi camera), 0 (a USB camera)",
        )
    } else {
        ("", "0 (a USB camera)")
    };
    let deb = deb.file_name().unwrap_or_default().to_string_lossy();
    format!(
        "{name}: rtcgear for Raspberry Pi OS (Debian 12 \"bookworm\") and its relatives.\n\
         On Raspberry Pi OS, the .deb of the same version installs all of this with one command:\n\
         \x20 sudo apt install ./{deb}\n\
         \n\
         By hand, from this folder:\n\
         \x20 sudo apt install {}{camera}\n\
         \x20 sudo install -m 755 rtcgear /usr/local/bin/rtcgear\n\
         \x20 sudo install -m 644 rtcgear.default /etc/default/rtcgear\n\
         \x20 sudo install -m 644 rtcgear.service /etc/systemd/system/rtcgear.service\n\
         \x20 sudo systemctl daemon-reload\n\
         \x20 sudo systemctl enable --now rtcgear\n\
         \n\
         Then open http://THE-PI:8000/ in a browser. The camera, size, frame rate and port are\n\
         in /etc/default/rtcgear (restart the service after changing them); its log:\n\
         \x20 journalctl -u rtcgear -f\n\
         Or run it by hand: ./rtcgear serve --source SOURCE, with {source} or test\n\
         (the test pattern) as the source; ./rtcgear serve --help lists the options.\n",
        packages.join(" ")
    )
}

fn test_target(
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

/// Runs a command to its end; an error names `what` and the exit status.
fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    check(status, what)
}

/// Runs a command in a process group of its own and stops the whole group (the command and
/// everything it started) if it runs longer than `limit`.
fn run_bounded(command: &mut Command, limit: Duration, what: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("cannot wait for {what}: {e}"))?
        {
            return check(status, what);
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            thread::sleep(Duration::from_secs(5));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            return Err(format!(
                "{what} did not finish within {limit:?} and was stopped"
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn check(status: ExitStatus, what: &str) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
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

/// A command's stdout, or an error naming it.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

fn create_dir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn remove_dir(path: &Path) -> Result<(), String> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    set_mode(path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

/// The bytes of every file under `dir`.
fn dir_size(dir: &Path) -> Result<u64, String> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let meta = entry
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_manifest_says_which_features_a_pi_build_has() {
        let features = parse_cli_features(
            "[dependencies]\nrtcgear-capture = { workspace = true, features = [\"ffmpeg\", \"v4l2\"] }\n",
        );
        assert_eq!(features.capture, ["ffmpeg", "v4l2"]);
        assert!(!features.rpicam && features.cargo.is_empty());

        let features = parse_cli_features(
            "[dependencies]\nrtcgear-capture = { workspace = true, features = [\"v4l2\", \"rpicam\"] }\n",
        );
        assert!(features.rpicam && features.cargo.is_empty());

        let features = parse_cli_features(
            "[features]\nrpicam = [\"rtcgear-capture/rpicam\"]\n[dependencies]\nrtcgear-capture.workspace = true\n",
        );
        assert!(features.rpicam && features.capture.is_empty());
        assert_eq!(features.cargo, ["--features", "rpicam"]);
    }

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
