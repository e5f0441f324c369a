#!/usr/bin/env bash
# What serving a 1280x720 30 fps H.264 file costs the server process, passed through against
# decoded and encoded again (--transcode), with the test pattern for reference.
# Usage: bench/scripts/passthrough-cpu.sh [SECONDS]   (needs ffmpeg and a release build:
#        cargo build --release -p rtcgear)
# Each run serves with --always-live (no viewer: the source path's own cost; what each viewer
# adds is the same on both paths, see the viewers bench) and samples user+sys CPU time from
# /proc/PID/stat after 5 s of warm-up.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
bin=${RTCGEAR_BIN:-target/release/rtcgear}
[ -x "$bin" ] || { echo "build it first: cargo build --release -p rtcgear" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
clip=$work/clip.mp4
ffmpeg -hide_banner -loglevel error -nostdin -f lavfi -i testsrc2=size=1280x720:rate=30 -t 30 \
  -c:v libx264 -profile:v baseline -preset veryfast -b:v 2500k -g 60 -pix_fmt yuv420p "$clip"
tick=$(getconf CLK_TCK)
measure() {
  local label=$1; shift
  "$bin" serve --bind 127.0.0.1 --port 0 --udp-port 0 --always-live "$@" >/dev/null 2>"$work/log" &
  local pid=$!
  sleep 5
  read -r -a a < "/proc/$pid/stat"
  local t0=$(( a[13] + a[14] )) start=$(date +%s.%N)
  sleep "$seconds"
  read -r -a b < "/proc/$pid/stat"
  local t1=$(( b[13] + b[14] )) end=$(date +%s.%N)
  local rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local path=$(grep -o 'passed through\|encoded here' "$work/log" | head -1)
  awk -v l="$label" -v t=$((t1 - t0)) -v k="$tick" -v s="$start" -v e="$end" -v r="$rss" -v p="$path" \
    'BEGIN { printf "| %s | %s | %.1f%% | %.0f MiB |\n", l, p, 100 * t / k / (e - s), r / 1024 }'
}
echo "| source | path | server CPU (% of one core) | RSS |"
echo "|---|---|---|---|"
measure "1280x720 H.264 file" --source "$clip" --loop
measure "the same file, --transcode" --source "$clip" --loop --transcode
measure "test pattern 1280x720" --source test --size 1280x720
