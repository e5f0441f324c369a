#!/usr/bin/env bash
# vivid-serve.sh -- `rtcgear serve` of a real kernel V4L2 camera (the `vivid` test driver), in a
# throw-away VM, reachable from this machine's browser on loopback.
#
# scripts/v4l2-vm.sh gives a VM with vivid but no network. This boots the same kernel
# (from that tool's cache; the tool is run once to fill it if it is empty) with a virtio NIC on
# qemu's user network and two ports forwarded from this machine's loopback: HTTP and the WebRTC
# media port. The guest has no default route: it reaches 10.0.2.2 (this machine's loopback, where
# the browser's datagrams come from) and nothing else.
# Inside, this machine's root directory is mounted read-only over 9p and `rtcgear` runs chrooted
# into it, with the VM's own /dev, /proc and /sys (and a scratch /dev/shm as TMPDIR), so the
# host's binary and its libraries run as they are. The media port is the same number on both sides and the server announces 127.0.0.1
# as its address, so a browser here connects as it would to a local server.
#
# Usage:  scripts/vivid-serve.sh [RTCGEAR_SERVE_ARGS...]
#   e.g.  scripts/vivid-serve.sh --size 640x480 --fps 15     then open http://127.0.0.1:8080/
# The arguments go after `rtcgear serve --source SOURCE --bind 0.0.0.0 --port HTTP_PORT
# --udp-port UDP_PORT --public-ip 127.0.0.1`. The guest's console (and the server's log) goes to
# standard output. The VM stops when this script is killed or when V4L2VM_TIMEOUT runs out.
#
# Environment (all optional):
#   RTCGEAR         the rtcgear binary          (default target/debug/rtcgear, else target/release)
#   HTTP_PORT       loopback port of the page   (default 8080)
#   UDP_PORT        loopback media port         (default 50000)
#   SOURCE          the server's --source       (default /dev/video0, vivid)
#   V4L2LOOPBACK_KO a v4l2loopback.ko built for the VM's kernel (scripts/v4l2loopback.sh): loaded
#                   as /dev/video9, a device that delivers whatever is written into it
#   FEED            a shell command run (in the background, as this machine's root) before the
#                   server starts; with V4L2LOOPBACK_KO the server waits until the FEED has given
#                   /dev/video9 a format (LOOPBACK_WAIT seconds at most, default 30). A camera
#                   that delivers H.264, for instance:
#                     FEED='ffmpeg -re -stream_loop -1 -i /path/clip.h264 -c copy -f v4l2 /dev/video9'
#                     SOURCE=/dev/video9 scripts/vivid-serve.sh --format h264
#   V4L2VM_WORK     the VM tool's work folder   (default target/v4l2-vm)
#   V4L2VM_VIVID    vivid module parameters     (default "n_devs=1 node_types=0x1")
#   V4L2VM_TIMEOUT  wall-clock limit, seconds   (default 600)
#   V4L2VM_MEM      guest RAM in MiB            (default 1024)
#   RUST_LOG        passed to the server        (default info)
# Needs root (the VM tool installs qemu and reads the kernel's modules). Software emulation (TCG)
# is slow: keep the size and frame rate small (320x180 at 10 fps plays smoothly).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD

log() { printf '[vivid-serve] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (qemu and the VM tool need it)"
TOOL=$ROOT_DIR/scripts/v4l2-vm.sh
WORK=${V4L2VM_WORK:-$ROOT_DIR/target/v4l2-vm}
WORK=$(mkdir -p "$WORK" && cd "$WORK" && pwd)
HTTP_PORT=${HTTP_PORT:-8080}
UDP_PORT=${UDP_PORT:-50000}
VIVID_PARAMS=${V4L2VM_VIVID-n_devs=1 node_types=0x1}
VM_TIMEOUT=${V4L2VM_TIMEOUT:-600}
MEM=${V4L2VM_MEM:-1024}
if [ -z "${RTCGEAR:-}" ]; then
  for candidate in target/debug/rtcgear target/release/rtcgear; do
    [ -x "$candidate" ] && { RTCGEAR=$ROOT_DIR/$candidate; break; }
  done
fi
[ -n "${RTCGEAR:-}" ] || die "no rtcgear binary: build it (cargo build -p rtcgear) or set RTCGEAR"
[ -x "$RTCGEAR" ] || die "RTCGEAR=$RTCGEAR is not an executable"
RTCGEAR=$(readlink -f "$RTCGEAR")
SOURCE=${SOURCE:-/dev/video0}
LOOPBACK_KO=${V4L2LOOPBACK_KO:-}
for path in "$RTCGEAR" "$LOOPBACK_KO"; do
  case "$path" in /proc/*|/sys/*|/dev/*)
    die "$path: the VM sees this machine's files except those in /proc, /sys and /dev" ;;
  esac
done
if [ -n "$LOOPBACK_KO" ]; then
  [ -f "$LOOPBACK_KO" ] || die "V4L2LOOPBACK_KO=$LOOPBACK_KO is missing"
  LOOPBACK_KO=$(readlink -f "$LOOPBACK_KO")
fi

# ------------------------------------------------------- 1. the kernel and busybox, cached
CACHE=$WORK/cache
KROOT=$CACHE/kernel
BB=$CACHE/userland/bin/busybox
if [ ! -s "$CACHE/kernel-pkg" ] || [ ! -x "$BB" ]; then
  [ -f "$TOOL" ] || die "$TOOL is missing: it provides the VM's kernel"
  log "filling the VM tool's cache in $WORK (a first run of $TOOL)"
  V4L2VM_WORK=$WORK V4L2VM_QUIET=1 V4L2VM_FRAMES=2 bash "$TOOL" >&2 \
    || die "$TOOL failed: see $WORK/run/console.log"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
KPKG=$(cat "$CACHE/kernel-pkg")
KVER=${KPKG#linux-image-}
KERNEL=$KROOT/vmlinux                      # the tool's uncompressed kernel boots faster
[ -s "$KERNEL" ] || KERNEL=$KROOT/boot/vmlinuz-$KVER
[ -f "$KERNEL" ] && [ -f "$KROOT/lib/modules/$KVER/modules.dep" ] \
  || die "the VM tool's cache in $WORK has no kernel $KVER: remove $CACHE and run again"

# ------------------------------------------------------------------ 2. the initramfs
RUN=$WORK/serve-$HTTP_PORT              # one per port: two VMs at once do not collide
INITRAMFS=$RUN/initramfs
# Earlier runs' folders, from VMs that their time limit has ended by now.
find "$WORK" -maxdepth 1 -name 'serve-*' -mmin +$((VM_TIMEOUT / 60 + 2)) -exec rm -rf {} +
rm -rf "$RUN"; mkdir -p "$INITRAMFS"/{bin,dev,proc,sys,tmp,host,modules}
cp "$BB" "$INITRAMFS/bin/busybox"
: > "$INITRAMFS/modules/order"
declare -A seen=()
for module in vivid virtio_pci virtio_net 9pnet_virtio 9p; do
  while read -r _ ko _; do
    name=$(basename "$ko")
    [ -n "${seen[$name]:-}" ] && continue
    seen[$name]=1
    cp "$ko" "$INITRAMFS/modules/$name"
    echo "$name" >> "$INITRAMFS/modules/order"
  done < <(modprobe -d "$KROOT" -S "$KVER" --show-depends "$module" | grep '^insmod ')
done
# The server's command line, one argument a line (busybox sh has no arrays).
{
  printf '%s\n' "$RTCGEAR" serve --source "$SOURCE" --bind 0.0.0.0 --port "$HTTP_PORT" \
    --udp-port "$UDP_PORT" --public-ip 127.0.0.1
  for arg in "$@"; do printf '%s\n' "$arg"; done
} > "$INITRAMFS/command"
# Settings as files, read whole by the guest: no quoting to get wrong.
mkdir -p "$INITRAMFS/settings"
printf '%s' "${FEED:-}" > "$INITRAMFS/settings/feed"
printf '%s' "$VIVID_PARAMS" > "$INITRAMFS/settings/vivid"
printf '%s' "${RUST_LOG:-info}" > "$INITRAMFS/settings/rust_log"
printf '%s' "$LOOPBACK_KO" > "$INITRAMFS/settings/loopback_ko"
printf '%s' "${LOOPBACK_WAIT:-30}" > "$INITRAMFS/settings/loopback_wait"
cat > "$INITRAMFS/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
setting() { cat "/settings/$1"; }
say() { echo "@@VIVID-SERVE $*"; }
while read -r ko; do
  params=""; [ "$ko" = vivid.ko ] && params="$(setting vivid)"
  insmod "/modules/$ko" $params || say "INSMOD_FAIL $ko"
done < /modules/order
i=0; while [ ! -e /dev/video0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /dev/video0 ] || { say "NO_VIDEO_DEVICE"; poweroff -f; }
# qemu's user network: the guest is 10.0.2.15, this machine's loopback 10.0.2.2; no default
# route, so nothing beyond it can be reached
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 \
  || { say "NO_NETWORK"; ip link; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host \
  || { say "NO_HOST_ROOT"; poweroff -f; }
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys
# a writable scratch folder (mounted before /dev is bound, so the chroot sees it); this
# machine's /tmp stays visible (a checkout may live there)
mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm
mount -o rbind /dev /host/dev
# inside the chroot, as on this machine
CHROOT_ENV="PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/dev/shm TMPDIR=/dev/shm"
loopback_ko=$(setting loopback_ko)
if [ -n "$loopback_ko" ]; then
  insmod "/host$loopback_ko" devices=1 video_nr=9 exclusive_caps=0 card_label=loopback \
    || { say "INSMOD_FAIL $loopback_ko"; poweroff -f; }
fi
if [ -n "$(setting feed)" ]; then
  say "FEED $(setting feed)"
  env $CHROOT_ENV chroot /host /bin/sh -c "$(setting feed)" &
  if [ -n "$loopback_ko" ]; then   # the writer sets the format the camera side then offers
    i=0; limit=$(( $(setting loopback_wait) * 10 ))
    while [ -z "$(cat /sys/class/video4linux/video9/format 2>/dev/null)" ]; do
      [ $i -ge $limit ] && { say "NO_LOOPBACK_FORMAT: FEED wrote nothing into /dev/video9"; poweroff -f; }
      sleep 0.1; i=$((i + 1))
    done
    say "LOOPBACK_FORMAT $(cat /sys/class/video4linux/video9/format)"
  fi
fi
set --; while IFS= read -r arg; do set -- "$@" "$arg"; done < /command
say "SERVING $*"
env $CHROOT_ENV RUST_LOG="$(setting rust_log)" chroot /host "$@"
say "SERVER_EXIT $?"
poweroff -f
EOF
chmod +x "$INITRAMFS/init"
(cd "$INITRAMFS" && find . | "$BB" cpio -o -H newc 2>/dev/null | gzip -1 > "$RUN/initrd.cpio.gz")
rm -rf "$INITRAMFS"

# --------------------------------------------------------------------------- 3. boot
# KVM here is often unusable for a stock kernel (see the VM tool), so this uses TCG unless told.
ACCEL=(-accel tcg -cpu max)
[ "${V4L2VM_ACCEL:-tcg}" = kvm ] && ACCEL=(-accel kvm -cpu host)
log "booting (kernel $KVER); http://127.0.0.1:$HTTP_PORT/ once the server is up"
# Not restrict=on: it drops the guest's UDP answers to forwarded datagrams (ICE never connects).
# qemu dies with `timeout` (which this script becomes), even when that is killed outright.
exec timeout --kill-after=10 "$VM_TIMEOUT" setpriv --pdeathsig KILL qemu-system-x86_64 \
  "${ACCEL[@]}" -smp 2 -m "$MEM" -M pc \
  -nodefaults -display none -no-reboot \
  -kernel "$KERNEL" -initrd "$RUN/initrd.cpio.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
  -serial stdio \
  -netdev "user,id=net0,restrict=off,hostfwd=tcp:127.0.0.1:$HTTP_PORT-:$HTTP_PORT,hostfwd=udp:127.0.0.1:$UDP_PORT-:$UDP_PORT" \
  -device virtio-net-pci,netdev=net0 \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap,id=hostroot \
  < /dev/null
