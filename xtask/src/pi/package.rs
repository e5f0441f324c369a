//! Packaging one target's build: a `.deb` staged for `dpkg-deb` (its library dependencies
//! from `dpkg-shlibdeps`) and a tarball of the same files with an `INSTALL.txt`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::build::{binary, Features};
use super::command::run;
use super::{secs, Target};

/// `rtcgear`'s version, from cargo.
pub(super) fn package_version(root: &Path) -> Result<String, String> {
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

/// Stages the package's files and makes the `.deb` and the tarball; returns their paths.
pub(super) fn package(
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
