//! The cross build of `rtcgear` for one target: the features it is built with (read from
//! the CLI's manifest) and the environment that points cargo and the C tools at the target.

use std::fs;
use std::path::{Path, PathBuf};

use crate::step;

use super::Target;

/// The features to build `rtcgear` with for a Pi, and the source the sample configuration
/// names: the Raspberry Pi camera when rtcgear has its `rpicam` feature.
pub(super) struct Features {
    /// Passed to cargo as `--features`, empty when the CLI turns everything on by itself.
    pub(super) cargo: Vec<String>,
    /// The capture features the CLI turns on, which the libraries' tests are run with.
    pub(super) capture: Vec<String>,
    pub(super) rpicam: bool,
}

/// Reads the CLI's manifest: which capture features it turns on, and whether it has an
/// `rpicam` feature of its own (then it is passed) or turns the camera on for capture.
pub(super) fn rpicam_features(root: &Path) -> Result<Features, String> {
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

/// The environment that points cargo, cc, pkg-config and bindgen at the target.
pub(super) fn cross_env(target: &Target) -> Vec<(String, String)> {
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

pub(super) fn build(root: &Path, target: &Target, features: &Features) -> Result<(), String> {
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
pub(super) fn binary(root: &Path, target: &Target) -> PathBuf {
    root.join("target/pi")
        .join(target.triple)
        .join("release/rtcgear")
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
}
