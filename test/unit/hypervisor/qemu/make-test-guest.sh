#!/bin/bash
# Builds the tiny guest the QEMU VM tests boot: Debian's kernel as an ELF vmlinux (PVH boot, no
# XZ decompression under TCG) and a busybox initramfs whose /init loads the virtio-serial modules,
# writes QEMU-TEST-READY to the port named agent.channel.0 and echoes every line it reads back as
# "ECHO:<line>". It stands in for the agent: the tests check the channel, not the agent.
#
# usage: make-test-guest.sh OUT-DIR     (produces OUT-DIR/vmlinux and OUT-DIR/initrd.img; cached)
set -euo pipefail
out=${1:?usage: make-test-guest.sh OUT-DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Several test binaries (run in parallel by ctest -j) share this cache: one builds, the others wait.
exec 9>"$out/.lock"
flock 9
script_sha=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

kpkg=$(apt-cache depends linux-image-amd64 | awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
[[ -n $kpkg ]] || { echo "make-test-guest: cannot resolve the kernel of linux-image-amd64 (apt-get update?)" >&2; exit 1; }
kver=${kpkg#linux-image-}
key="$kpkg $script_sha"
if [[ -f $out/.key && $(<"$out/.key") == "$key" && -f $out/vmlinux && -f $out/initrd.img ]]; then
  exit 0
fi
command -v busybox >/dev/null && [[ -x /bin/busybox ]] || { echo "make-test-guest: needs busybox-static" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kata-test-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
kroot=$out/kernel-$kver
if [[ ! -f $kroot/.complete ]]; then
  rm -rf "$kroot" && mkdir -p "$kroot"
  (cd "$work" && apt-get download -q "$kpkg" 2>&1 | grep -v 'Download is performed unsandboxed' >&2 || true)
  deb=$(echo "$work"/*.deb)
  [[ -f $deb ]] || { echo "make-test-guest: apt-get download $kpkg failed" >&2; exit 1; }
  dpkg -x "$deb" "$kroot"
  rm -f "$deb"
  depmod -b "$kroot" "$kver"
  touch "$kroot/.complete"
fi
bz=$kroot/boot/vmlinuz-$kver
offset=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "$bz" | cut -d: -f1)
xz -dc --single-stream < <(tail -c +$((offset + 1)) "$bz") > "$work/vmlinux"

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp /bin/busybox "$root/bin/busybox"
: > "$root/modules.order"
for module in virtio_pci virtio_console; do
  modprobe -d "$kroot" -S "$kver" --show-depends "$module" | while read -r kind path _; do
    [[ $kind == insmod ]] || continue
    name=$(basename "$path")
    grep -qx "$name" "$root/modules.order" || { cp "$path" "$root/lib/modules/$name"; echo "$name" >> "$root/modules.order"; }
  done
done
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m; done
port=
while [ -z "$port" ]; do
  for f in /sys/class/virtio-ports/*/name; do
    [ "$(cat "$f" 2>/dev/null)" = agent.channel.0 ] && port=/dev/$(basename "$(dirname "$f")")
  done
  [ -n "$port" ] || sleep 0.1
done
exec 3<>"$port"
# The write blocks until the host connects; reads return EOF while nobody is connected.
echo QEMU-TEST-READY >&3
while true; do
  if read -r line <&3; then echo "ECHO:$line" >&3; else sleep 0.1; fi
done
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.img"
mv "$work/vmlinux" "$out/vmlinux"
mv "$work/initrd.img" "$out/initrd.img"
echo "$key" > "$out/.key"
