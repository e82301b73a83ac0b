# 0. Smoke: the default dataset (export "/") mounts with the CSI node's options through
# mount.nfs, a file written with fsync reads back after a remount, and df answers.
D=/mnt/root

step "mount the default dataset (export /)"
nfs_mount / "$D"
grep " $D " /proc/mounts
df -k "$D"

step "write with fsync, read back after a remount"
run dd if=/dev/urandom of=/tmp/smoke bs=64k count=16 2>/dev/null
run dd if=/tmp/smoke of="$D/smoke" bs=64k conv=fsync
nfs_umount "$D"
drop_caches
nfs_mount / "$D"
expect_eq "$(sha256 "$D/smoke")" "$(sha256 /tmp/smoke)" "checksum after remount"
run rm "$D/smoke"
nfs_umount "$D"
