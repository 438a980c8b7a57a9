#!/bin/bash
# Builds the guest assets the shim boots: an ELF kernel (vmlinux.container, booted through PVH)
# and a newc initramfs (kata-containers-initrd.img) holding the agent as /init, busybox and the
# kernel modules the agent loads at boot. See docs/guest.md.
#
# usage: build-image.sh --out DIR [--agent STATIC-BINARY] [--cache DIR] [--compression gzip|none]
#
# Everything is cached by content: the output directory records a hash of every input (kernel
# .deb sha256, agent and busybox binaries, this script, the module list, the compression), and a
# re-run with the same inputs returns at once without touching apt.
set -euo pipefail

readonly SCRIPT_VERSION=2
readonly KERNEL_META_PACKAGE=linux-image-amd64
# What the agent needs: the transports (virtio-serial, vsock), block and network devices, the
# shared filesystems (9p, virtio-fs, overlay for the rootfs), ext4 for block and direct volumes,
# memory hotplug/balloon, and pmem for nvdimm rootfs images. modprobe resolves their dependencies
# below.
readonly MODULES="virtio_pci virtio_console virtio_blk virtio_net vmw_vsock_virtio_transport
  9pnet_virtio 9p virtiofs overlay ext4 virtio_mem virtio_balloon libnvdimm nd_pmem nd_btt nfit"
readonly BUSYBOX=/bin/busybox
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR

die() { echo "build-image: $*" >&2; exit 1; }
log() { [[ -n ${QUIET:-} ]] || echo "build-image: $*" >&2; }

out='' agent='' cache='' compression=gzip
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --agent) agent=${2:?--agent needs a path}; shift 2 ;;
    --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
    --compression) compression=${2:?--compression needs gzip or none}; shift 2 ;;
    --quiet) QUIET=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -n $out ]] || die "--out DIR is required"
[[ $compression == gzip || $compression == none ]] || die "--compression must be gzip or none, not '$compression'"
[[ -z $agent || -x $agent ]] || die "agent '$agent' is not an executable file"
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (apt-get install busybox-static)"
for tool in apt-get apt-cache dpkg depmod modprobe cpio xz sha256sum; do
  command -v $tool >/dev/null || die "'$tool' not found (needs apt, dpkg, kmod, cpio, xz-utils, coreutils)"
done
cache=${cache:-${XDG_CACHE_HOME:-$HOME/.cache}/kata-guest-image}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd) cache=$(cd "$cache" && pwd)

sha() { sha256sum "$1" | cut -d' ' -f1; }
# The up-to-date path must stay well under a second on a loaded machine: few processes.
first_word() { local word _; read -r word _; printf '%s' "$word"; }

# --- which kernel. Debian publishes kernel fixes in the security suite (<codename>-security), and a
# machine set up without it (a debootstrap chroot, a minimal image) would build the point
# release's older kernel: bookworm's 6.1.176 has a virtiofs use-after-free on submount unmount
# ("VFS: Busy inodes after unmount", fixed in 6.1.177) that oopses a container's last process
# as it exits, so its exit is never reported. So the kernel is resolved with the security suite
# always present: the machine's own apt sources when they have it, else a private apt state
# under the cache (the machine's sources plus the security suite; nothing system-wide changes).
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
apt_options=()
if [[ -n $codename ]] && ! compgen -G "/var/lib/apt/lists/*_dists_${codename}-security_*Packages*" >/dev/null; then
  private=$cache/apt-$codename
  apt_options=(-o "Dir::Etc::SourceList=$private/sources.list" -o "Dir::State::Lists=$private/lists"
               -o "Dir::Cache=$private/cache" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
  # Refreshed once a day: security fixes arrive, and the up-to-date path stays without network.
  if [[ -z $(find "$private/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit 2>/dev/null) ]]; then
    mkdir -p "$private/lists/partial" "$private/cache/archives/partial"
    { cat /etc/apt/sources.list 2>/dev/null || true
      echo "deb http://deb.debian.org/debian-security $codename-security main"
    } > "$private/sources.list"
    log "resolving the kernel with $codename-security added (the machine's apt sources lack it)"
    apt-get "${apt_options[@]}" update -qq 2> "$private/update.err" ||
      { cat "$private/update.err" >&2; die "apt-get update of the private apt state in $private failed"; }
  fi
fi
# apt-cache costs ~1 s here (no pkgcache), so its answer is cached against the state of the apt
# lists it read; `apt-get update` invalidates it.
lists_dir=/var/lib/apt/lists
((${#apt_options[@]})) && lists_dir=$private/lists
lists_state=$(stat -c '%n %s %Y' "$lists_dir"/*_Packages* 2>/dev/null | sha256sum | first_word)
resolved=$cache/kernel-resolution.$lists_state
if [[ ! -s $resolved ]]; then
  kpkg=$(apt-cache "${apt_options[@]}" depends "$KERNEL_META_PACKAGE" | awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
  [[ -n $kpkg ]] || die "cannot resolve the kernel package $KERNEL_META_PACKAGE depends on (apt-get update?)"
  info=$(apt-cache "${apt_options[@]}" show --no-all-versions "$kpkg")
  kdeb_sha=$(awk '$1=="SHA256:" {print $2; exit}' <<<"$info")
  kversion=$(awk '$1=="Version:" {print $2; exit}' <<<"$info")
  [[ -n $kdeb_sha && -n $kversion ]] || die "apt-cache show $kpkg gave no Version/SHA256"
  rm -f "$cache"/kernel-resolution.*
  printf '%s %s %s\n' "$kpkg" "$kversion" "$kdeb_sha" > "$resolved.tmp" && mv "$resolved.tmp" "$resolved"
fi
read -r kpkg kversion kdeb_sha < "$resolved"
kver=${kpkg#linux-image-}            # 6.1.0-56-amd64: the directory name under /lib/modules
# A guest kernel known to break containers is refused rather than shipped.
if [[ $kversion == 6.1.* ]] && dpkg --compare-versions "$kversion" lt 6.1.177; then
  die "kernel $kpkg $kversion has the virtiofs submount use-after-free fixed in 6.1.177" \
      "(containers' exits are lost); Debian's $codename-security suite has the fix"
fi

# One sha256sum for every input file: the script, init.sh, busybox and the agent, by content.
input_hashes=$(sha256sum "${BASH_SOURCE[0]}" "$SCRIPT_DIR/init.sh" "$BUSYBOX" ${agent:+"$agent"})
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
key=$(printf '%s\n' "script=$SCRIPT_VERSION" "$input_hashes" "kernel=$kpkg $kversion $kdeb_sha" \
  "busybox=$busybox_version" "modules=${MODULES//[[:space:]]/ }" "compression=$compression" | sha256sum | first_word)
stamp=$out/.build-image.key
if [[ -f $stamp && $(<"$stamp") == "$key" && -f $out/vmlinux.container && -f $out/kata-containers-initrd.img ]]; then
  log "up to date ($kver, key ${key:0:12})"
  exit 0
fi
rm -f "$stamp"
# The initramfs has no libc: a dynamic agent would fail as /init with a bare ENOENT.
if [[ -n $agent ]] && command -v file >/dev/null && ! file -L "$agent" | grep -q 'static'; then
  die "agent '$agent' is not statically linked"
fi

# --- kernel: download (verified against apt's SHA256), unpack, depmod, extract the ELF.
kdir=$cache/kernel-$kdeb_sha
if [[ ! -f $kdir/.complete ]]; then
  rm -rf "$kdir" && mkdir -p "$kdir/deb"
  log "downloading $kpkg $kversion"
  # (as root apt warns that the download is unsandboxed; that is expected here)
  if ! (cd "$kdir/deb" && apt-get "${apt_options[@]}" download -q "$kpkg=$kversion") 2> "$kdir/apt.err"; then
    cat "$kdir/apt.err" >&2
    die "apt-get download $kpkg=$kversion failed"
  fi
  deb=$(echo "$kdir"/deb/*.deb)
  [[ -f $deb ]] || die "apt-get download $kpkg=$kversion produced no .deb"
  [[ $(sha "$deb") == "$kdeb_sha" ]] || die "$deb does not match apt's SHA256 $kdeb_sha"
  dpkg -x "$deb" "$kdir/root"
  depmod -b "$kdir/root" "$kver"      # the .deb has no modules.dep: its postinst makes it
  # The bzImage is XZ-compressed, and decompressing it costs ~3 s under TCG; the ELF inside boots
  # straight through PVH. The XZ stream starts at its magic; --single-stream ignores the trailer.
  bz=$kdir/root/boot/vmlinuz-$kver
  offset=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "$bz" | cut -d: -f1)
  [[ -n $offset ]] || die "no XZ stream in $bz"
  # (process substitution: tail's SIGPIPE when xz stops early must not fail the pipeline)
  xz -dc --single-stream < <(tail -c +$((offset + 1)) "$bz") > "$kdir/vmlinux"
  [[ $(head -c 4 "$kdir/vmlinux" | od -An -c | tr -d ' ') == '177ELF' ]] || die "$bz: payload is not an ELF kernel"
  rm -rf "$kdir/deb"
  touch "$kdir/.complete"
fi

# --- initramfs tree.
work=$(mktemp -d "${TMPDIR:-/tmp}/kata-guest-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,etc,lib/modules,mnt,root,usr/bin,usr/sbin}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
  [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done
: > "$root/etc/modules.order"
for module in $MODULES; do
  deps=$(modprobe -d "$kdir/root" -S "$kver" --show-depends "$module") || die "module $module: not in $kver"
  while read -r kind path _; do
    [[ $kind == insmod ]] || continue       # "builtin X" needs nothing
    name=$(basename "$path")
    grep -qx "$name" "$root/etc/modules.order" && continue
    cp "$path" "$root/lib/modules/$name"
    echo "$name" >> "$root/etc/modules.order"
  done <<<"$deps"
done
if [[ -n $agent ]]; then
  # Debug info is for the host (the unstripped binary stays in the build tree); the guest loads
  # the whole initramfs into RAM, so it gets the stripped copy.
  if command -v strip >/dev/null; then strip -s -o "$root/init" "$agent"; else cp "$agent" "$root/init"; fi
  chmod 0755 "$root/init"
  ln -s /init "$root/usr/bin/kata-agent"
else
  install -m 0755 "$SCRIPT_DIR/init.sh" "$root/init"
fi
echo "$kver" > "$root/etc/kata-kernel-version"

# Deterministic archive: sorted names, fixed mtimes, so equal inputs give equal bytes.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) > "$work/initrd.cpio"
if [[ $compression == gzip ]]; then
  gzip -n -6 < "$work/initrd.cpio" > "$work/initrd.img"
else
  mv "$work/initrd.cpio" "$work/initrd.img"
fi

cp "$kdir/vmlinux" "$out/vmlinux.container.tmp" && mv "$out/vmlinux.container.tmp" "$out/vmlinux.container"
mv "$work/initrd.img" "$out/kata-containers-initrd.img"
cp "$root/etc/modules.order" "$out/kata-containers-initrd.modules"
echo "$key" > "$stamp"
log "built $kver: vmlinux.container $(stat -c %s "$out/vmlinux.container") B," \
    "kata-containers-initrd.img $(stat -c %s "$out/kata-containers-initrd.img") B ($compression)," \
    "$(wc -l < "$root/etc/modules.order") modules"
