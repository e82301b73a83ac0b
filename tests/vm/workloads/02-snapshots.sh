# 2. Snapshots while mounted: write, snapshot from the host (`slatefs dataset snapshot`), change
# files, then read the old content through a second mount of /DATASET@SNAP and through
# /DATASET/.snapshots/SNAP/, and check that both are read-only and that the live dataset and a
# second snapshot hold the new content.
D=/mnt/snapds
S=/mnt/snapds-s1

listing() { # DIR: names, types, sizes, modes and checksums of everything below DIR
    (
        cd "$1" || exit 1
        find . ! -type l -print0 | xargs -0 stat -c '%n|%F|%a' |
            awk -F'|' '$1 != "." { print }'
        find . -type f -print0 | xargs -0 sha256sum | awk '{ print $2 "|sha256|" $1 }'
        find . -type l -print0 | xargs -0 stat -c '%N'
    ) | LC_ALL=C sort
}

expect_same() { # DIR EXPECTED_LISTING WHAT
    listing "$1" > /tmp/listing.now
    if ! diff "$2" /tmp/listing.now > /tmp/listing.diff; then
        head -n 30 /tmp/listing.diff
        fail "$3 differs from the expected content"
    fi
    echo "  $3: $(wc -l < "$2") lines match"
}

step "create dataset snapds, mount it, write version 1"
on_host dataset create snapds
nfs_mount /snapds "$D" actimeo=0
run mkdir -p "$D/data/sub/deeper" "$D/data/empty-dir"
i=0
while [ $i -lt 40 ]; do
    dd if=/dev/urandom of="$D/data/sub/file$i" bs=1k count=$((i * 7 % 50 + 1)) 2>/dev/null ||
        fail "write file$i"
    i=$((i + 1))
done
run dd if=/dev/urandom of="$D/data/big" bs=64k count=64 conv=fsync
run sh -c "echo 'version 1' > '$D/data/version'"
run ln -s sub/file1 "$D/data/link"
run ln "$D/data/sub/file2" "$D/data/sub/deeper/hardlink"
run chmod 0640 "$D/data/sub/file3"
run sync
listing "$D/data" > /tmp/v1.listing
echo "  version 1: $(wc -l < /tmp/v1.listing) lines"

step "snapshot s1 from the host while mounted"
on_host dataset snapshot snapds s1 --readonly
on_host dataset list-snapshots snapds

step "change files: overwrite, append, truncate, delete, rename, chmod, new files"
run dd if=/dev/urandom of="$D/data/sub/file0" bs=1k count=1 conv=notrunc
run sh -c "echo appended >> '$D/data/sub/file5'"
run truncate -s 1000 "$D/data/big"
run rm "$D/data/sub/file7" "$D/data/link"
run rm -r "$D/data/empty-dir"
run mv "$D/data/sub/file9" "$D/data/sub/deeper/file9-moved"
run chmod 0600 "$D/data/sub/file3"
run mkdir "$D/data/new-dir"
run sh -c "echo 'version 2' > '$D/data/version'"
run dd if=/dev/urandom of="$D/data/new-dir/new" bs=64k count=4 conv=fsync
run sync
listing "$D/data" > /tmp/v2.listing
cmp -s /tmp/v1.listing /tmp/v2.listing && fail "the changes did not change the listing"

step "read s1 through a second mount of /snapds@s1"
nfs_mount /snapds@s1 "$S" actimeo=0
expect_eq "$(cat "$S/data/version")" "version 1" "version file in the snapshot export"
expect_same "$S/data" /tmp/v1.listing "snapshot export /snapds@s1"
expect_fail sh -c "echo x > '$S/data/version'"
expect_fail touch "$S/data/new-file"
expect_fail rm "$S/data/sub/file1"
expect_fail mkdir "$S/data/dir"
expect_same "$S/data" /tmp/v1.listing "snapshot export after write attempts"

step "read s1 through $D/.snapshots/s1"
ls -la "$D/.snapshots" || fail "no .snapshots directory"
ls "$D/.snapshots" | grep -qx s1 || fail ".snapshots does not list s1"
expect_eq "$(cat "$D/.snapshots/s1/data/version")" "version 1" "version file under .snapshots/s1"
expect_same "$D/.snapshots/s1/data" /tmp/v1.listing ".snapshots/s1"
expect_fail sh -c "echo x > '$D/.snapshots/s1/data/version'"
expect_fail touch "$D/.snapshots/s1/data/new-file"
expect_fail rm "$D/.snapshots/s1/data/sub/file1"
expect_fail mkdir "$D/.snapshots/not-a-snapshot"

step "the live dataset holds version 2"
expect_same "$D/data" /tmp/v2.listing "live dataset"

step "second snapshot s2 holds version 2, s1 still version 1"
on_host dataset snapshot snapds s2 --readonly
run sh -c "echo 'version 3' > '$D/data/version'"
# .snapshots was listed before s2 existed: the listing must not be stale (the server changes the
# directory's attributes when a snapshot is added)
ls "$D/.snapshots" | grep -qx s2 || fail ".snapshots does not list s2: $(ls "$D/.snapshots")"
expect_same "$D/.snapshots/s2/data" /tmp/v2.listing ".snapshots/s2"
expect_same "$D/.snapshots/s1/data" /tmp/v1.listing ".snapshots/s1 after s2"
expect_eq "$(cat "$D/data/version")" "version 3" "live version file"

step "cold caches: remount both and compare again"
nfs_umount "$S"
nfs_umount "$D"
drop_caches
nfs_mount /snapds@s1 "$S" actimeo=0
nfs_mount /snapds "$D" actimeo=0
expect_same "$S/data" /tmp/v1.listing "snapshot export /snapds@s1 (cold)"
expect_same "$D/.snapshots/s1/data" /tmp/v1.listing ".snapshots/s1 (cold)"
expect_same "$D/.snapshots/s2/data" /tmp/v2.listing ".snapshots/s2 (cold)"
expect_eq "$(cat "$D/data/version")" "version 3" "live version file (cold)"
nfs_umount "$S"
nfs_umount "$D"
