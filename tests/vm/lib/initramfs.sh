#!/usr/bin/env bash
# Build the test VM's initramfs from the host's Debian packages:
#   busybox-static (shell and tools), linux-image-amd64 (virtio, 9p and NFS client modules),
#   nfs-common (mount.nfs, exactly what the CSI node runs) and util-linux (mount/umount).
# Usage: initramfs.sh KVER OUT.cpio.gz
set -euo pipefail
KVER=$1
OUT=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODDIR=/lib/modules/$KVER

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/slatefs-vm-initramfs.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
cd "$STAGE"

# merged-/usr layout, like Debian 12 itself
mkdir -p usr/bin usr/sbin usr/local/bin usr/lib/x86_64-linux-gnu usr/lib/modules usr/lib64 \
    etc proc sys dev run tmp share host mnt var/lib
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
ln -s usr/lib64 lib64

cp /bin/busybox usr/bin/busybox
for applet in $(/bin/busybox --list); do
    [ -e "usr/bin/$applet" ] || ln -s busybox "usr/bin/$applet"
done

# Real binaries (replace the busybox applets of the same name) and their libraries.
copy_bin() { # SRC DEST
    rm -f "$STAGE/$2"
    cp -L "$1" "$STAGE/$2"
    ldd "$1" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
        [ -n "$lib" ] && [ -e "$lib" ] || continue
        real=$(readlink -f "$lib")
        dest="usr/lib/x86_64-linux-gnu/$(basename "$lib")"
        case "$lib" in /lib64/*) dest="usr/lib64/$(basename "$lib")" ;; esac
        [ -e "$STAGE/$dest" ] || cp "$real" "$STAGE/$dest"
    done
}
copy_bin /sbin/mount.nfs usr/sbin/mount.nfs
ln -sf mount.nfs usr/sbin/umount.nfs
copy_bin /bin/mount usr/bin/mount
copy_bin /bin/umount usr/bin/umount
# the dynamic loader must also be where x86_64 binaries look for it
[ -e usr/lib64/ld-linux-x86-64.so.2 ] || cp -L /lib64/ld-linux-x86-64.so.2 usr/lib64/
cp -L /lib64/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2

cp /etc/netconfig etc/netconfig
[ -e /etc/services ] && cp /etc/services etc/services
[ -e /etc/protocols ] && cp /etc/protocols etc/protocols
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
printf 'hosts: files\n' > etc/nsswitch.conf
printf '127.0.0.1 localhost\n10.0.2.15 vm\n' > etc/hosts
ln -s /proc/self/mounts etc/mtab
: > etc/fstab
ldconfig -r "$STAGE" 2>/dev/null || true

# Kernel modules, in dependency order (what `modprobe --show-depends` would insmod).
: > etc/vm-modules
for m in virtio_pci virtio_net 9pnet_virtio 9p nfsv3; do
    modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    rel=${ko#"$MODDIR"/}
    mkdir -p "usr/lib/modules/$(dirname "$rel")"
    case "$ko" in
        *.ko) cp "$ko" "usr/lib/modules/$rel" ;;
        *.ko.xz) xz -dc "$ko" > "usr/lib/modules/${rel%.xz}"; rel=${rel%.xz} ;;
        *.ko.zst) zstd -qdc "$ko" > "usr/lib/modules/${rel%.zst}"; rel=${rel%.zst} ;;
        *) echo "unknown module format: $ko" >&2; exit 1 ;;
    esac
    echo "$rel" >> etc/vm-modules
done
grep -q nfsv3 etc/vm-modules || { echo "nfsv3 module missing for $KVER" >&2; exit 1; }

cp "$HERE/guest/init" init
chmod 755 init

find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -1 > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
