#!/usr/bin/env bash
# Every check and test of rtcgear, with its system packages installed first:
# cargo fmt --check, clippy (-D warnings), the docs (-D warnings) and all tests, the end-to-end
# ones in headless Chromium and against aiortc included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
exec cargo xtask ci "$@"
