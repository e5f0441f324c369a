#!/usr/bin/env bash
# Every check and test of rtcgear, with its system packages installed first:
# cargo fmt --check, clippy (-D warnings), the docs (-D warnings) and all tests, the end-to-end
# ones in headless Chromium and against aiortc included; then the V4L2 camera source against a
# real kernel device (the vivid driver in a small VM, scripts/v4l2-vm.sh, with
# v4l2loopback built for it by scripts/v4l2loopback.sh to pass a camera's H.264 through), and
# `rtcgear serve` of that camera in a VM with a network (scripts/vivid-serve.sh) played by
# Chromium; then the Raspberry Pi build: rtcgear cross-built for aarch64 and packaged, and the
# emulated server (qemu) streaming to Chromium (RTCGEAR_PI=0 turns it off). The Pi builds' unit tests under
# qemu take longer than CI's time allows: `cargo xtask pi --test` runs everything for both Pis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cargo xtask ci "$@"

# The TURN credentials against Debian's coturn are #[ignore]d in a plain `cargo test`.
if command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null; then
  echo "==> the TURN credentials against coturn"
  cargo test --locked -p rtcgear-server --test turn -- --ignored
else
  echo "NOT RUN: the TURN credentials against coturn (turnserver or turnutils_uclient missing; scripts/deps.sh test installs coturn)"
fi

# rtcgear served across network namespaces (same LAN, cone and symmetric NAT, TURN over UDP
# and TCP, ICE-TCP, a port forward), played by Chromium in the viewer's namespace: root only.
if [ "$(id -u)" = 0 ]; then
  echo "==> rtcgear across real networks: network namespaces, NAT, coturn and Chromium"
  cargo test --locked -p rtcgear --test netns -- --ignored --test-threads=1 --nocapture
else
  echo "NOT RUN: rtcgear across network namespaces (cli/tests/netns.rs needs root)"
fi

# The VM tests are #[ignore]d in a plain `cargo test`; here they run on purpose, with --ignored.
if [ "$(id -u)" = 0 ] && [ "${RTCGEAR_V4L2_VM:-1}" = 1 ]; then
  echo "==> the V4L2 source against the vivid camera in a VM"
  cargo build --locked -p rtcgear-capture --features v4l2 --example v4l2_check
  # vivid has no H.264: v4l2loopback, built for the VM's kernel, stands in for a UVC camera's.
  skip=()
  if ! loopback_ko=$(scripts/v4l2loopback.sh "$PWD/target/v4l2-vm"); then
    echo "NOT RUN: H.264 from a V4L2 device (v4l2loopback could not be built, see above)"
    loopback_ko=
    skip=(--skip a_camera_with_its_own_h264_is_passed_through_to_chromium)
  fi
  V4L2VM_WORK="$PWD/target/v4l2-vm" V4L2VM_QUIET=1 RTCGEAR_V4L2LOOPBACK_KO="$loopback_ko" \
    cargo test --locked -p rtcgear-capture --features v4l2 --test v4l2_vm -- --ignored --nocapture
  echo "==> the vivid camera served from a VM (scripts/vivid-serve.sh), played by Chromium here"
  V4L2VM_WORK="$PWD/target/v4l2-vm" RTCGEAR_V4L2LOOPBACK_KO="$loopback_ko" \
    cargo test --locked -p rtcgear --test v4l2_vm -- --ignored --nocapture "${skip[@]}"
else
  echo "NOT RUN: the V4L2 VM tests (they need root; RTCGEAR_V4L2_VM=0 turns them off)"
fi

if [ "${RTCGEAR_PI:-1}" = 1 ]; then
  echo "==> the Raspberry Pi build: aarch64 cross-built and packaged, streamed from qemu to Chromium"
  cargo xtask pi --target aarch64
  cargo xtask pi-test --target aarch64 --smoke-only
else
  echo "skipping the Raspberry Pi build (RTCGEAR_PI=0)"
fi
