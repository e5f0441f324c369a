#!/usr/bin/env bash
# Builds the v4l2loopback kernel module for the kernel of the vivid VM
# (scripts/v4l2-vm.sh), so the V4L2 test can feed H.264 into a real V4L2 device there:
# vivid has no H.264 format, v4l2loopback takes any.
#   scripts/v4l2loopback.sh WORKDIR     prints the path of the built v4l2loopback.ko
# WORKDIR is the VM's work folder (V4L2VM_WORK): its cache names the VM's kernel package. The
# kernel headers and Debian's v4l2loopback-dkms source are downloaded with `apt-get download`
# and unpacked under WORKDIR/loopback, never installed; gcc-12 and make build the module
# (about 10 s), and later runs reuse it.
set -euo pipefail
work=${1:?usage: scripts/v4l2loopback.sh WORKDIR}
say() { printf '[v4l2loopback] %s\n' "$*" >&2; }

if [ -s "$work/cache/kernel-pkg" ]; then
  kpkg=$(cat "$work/cache/kernel-pkg")
else
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$kpkg" ] || { say "cannot tell the VM's kernel"; exit 1; }
kver=${kpkg#linux-image-}
dir=$work/loopback/$kver
ko=$dir/build/v4l2loopback.ko
if [ -s "$ko" ]; then echo "$ko"; exit 0; fi

for tool in gcc-12 make; do
  command -v "$tool" >/dev/null || { say "$tool is missing (apt-get install gcc-12 make)"; exit 1; }
done
rm -rf "$dir"
mkdir -p "$dir/debs" "$dir/root"
kbuild=$(apt-cache depends "linux-headers-$kver" | awk '/Depends: linux-kbuild-/{print $2; exit}')
say "downloading the headers of $kver and v4l2loopback-dkms"
(cd "$dir/debs" && apt-get download -q "linux-headers-$kver" \
  "linux-headers-${kver%-amd64}-common" "$kbuild" v4l2loopback-dkms >/dev/null 2>"$dir/download.err") \
  || { say "apt-get download failed: $(cat "$dir/download.err")"; exit 1; }
for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
headers=$dir/root/usr/src/linux-headers-$kver
# The headers' Makefile includes the common part by its installed path: point it at ours.
sed -i "s|include /usr/src/|include $dir/root/usr/src/|" "$headers/Makefile"
cp -r "$dir"/root/usr/src/v4l2loopback-* "$dir/build"
say "building v4l2loopback.ko for $kver"
make -C "$headers" M="$dir/build" modules >"$dir/build.log" 2>&1 \
  || { say "the build failed: $(tail -5 "$dir/build.log")"; exit 1; }
echo "$ko"
