#!/usr/bin/env bash
# Builds rtcgear (release) with its system packages installed first, and serves the built-in
# test pattern: open the URL it prints. Arguments go to `rtcgear serve` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
cargo build --release --locked -p rtcgear
exec target/release/rtcgear serve "$@"
