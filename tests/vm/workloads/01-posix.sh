# 1. POSIX workload through the kernel NFS client: untar ~2,300 entries (files, symlinks, hard
# links, odd names), checksum every file and compare every entry's metadata with what the host
# generated; chmod/chown/utimes/truncate; renames across directories; rm -rf; fsync'd writes;
# everything re-checked after a fresh mount.
D=/mnt/posix
DATA=/share/data

manifest() { # DIR: one line per entry of ./tree, in the format of tree.manifest
    (
        cd "$1" || exit 1
        find ./tree ! -type l -print0 | xargs -0 stat -c '%n|%F|%a|%u|%g|%s|%Y|%h' |
            awk -F'|' '$2 == "directory" { print $1 "|" $2 "|" $3; next } { print }'
        find ./tree -type l -print0 | xargs -0 stat -c '%N' |
            sed -e "s/^'\(.*\)' -> '\(.*\)'\$/\1|symbolic link|\2/"
    ) | LC_ALL=C sort
}

check_tree() { # DIR EXPECTED_MANIFEST EXPECTED_SUMS
    manifest "$1" > /tmp/manifest.guest
    if ! diff /tmp/manifest.guest "$2" > /tmp/manifest.diff; then
        head -n 40 /tmp/manifest.diff
        fail "metadata of the tree differs from $2 ($(grep -c '^[-+][^-+]' /tmp/manifest.diff) lines)"
    fi
    (cd "$1" && sha256sum -c -s "$3") || {
        (cd "$1" && sha256sum -c "$3" 2>&1 | grep -v ': OK$' | head -n 20)
        fail "checksums differ from $3"
    }
    echo "  $(wc -l < "$2") entries and $(wc -l < "$3") file checksums match"
}

step "create dataset posix and mount it"
on_host dataset create posix
nfs_mount /posix "$D"
expect_eq "$(ls -A "$D" | grep -v '^\.snapshots$' | wc -l)" 0 "entries in a new dataset"

step "untar $(wc -l < $DATA/tree.manifest) entries"
run tar -xf "$DATA/tree.tar" -C "$D"

step "checksum every file and compare metadata (cached)"
check_tree "$D" "$DATA/tree.manifest" "$DATA/tree.sha256"

step "remount with cold caches, compare again"
nfs_umount "$D"
drop_caches
nfs_mount /posix "$D"
check_tree "$D" "$DATA/tree.manifest" "$DATA/tree.sha256"

# From here on no attribute caching (every stat asks the server). Not for the bulk checks above:
# with actimeo=0 every read() of a file costs a GETATTR, which is slow under TCG.
nfs_umount "$D"
nfs_mount /posix "$D" actimeo=0

step "chmod, chown, utimes, truncate"
F=$D/tree/ops-file
run dd if=/dev/urandom of="$F" bs=1k count=100 2>/dev/null
run chmod 4751 "$F"
expect_eq "$(stat -c %a "$F")" 4751 "mode after chmod 4751"
run chmod 0600 "$F"
expect_eq "$(stat -c %a "$F")" 600 "mode after chmod 0600"
run chown 1234:5678 "$F"
expect_eq "$(stat -c %u:%g "$F")" 1234:5678 "owner after chown"
run chown 0:0 "$F"
run mkdir "$D/tree/ops-dir"
run chmod 0711 "$D/tree/ops-dir"
expect_eq "$(stat -c %a "$D/tree/ops-dir")" 711 "directory mode after chmod"
run touch -d "2001-02-03 04:05:06" "$F"
expect_eq "$(stat -c %Y "$F")" 981173106 "mtime after touch -d"
run touch -r "$DATA/tree.tar" "$D/tree/ops-dir"
expect_eq "$(stat -c %Y "$D/tree/ops-dir")" "$(stat -c %Y "$DATA/tree.tar")" "directory mtime after touch -r"
before=$(stat -c %Y "$F")
run sh -c "echo appended >> '$F'"
[ "$(stat -c %Y "$F")" -gt "$before" ] || fail "mtime did not advance on write"
run truncate -s 50000 "$F"
expect_eq "$(stat -c %s "$F")" 50000 "size after truncate down"
run truncate -s 200000 "$F"
expect_eq "$(stat -c %s "$F")" 200000 "size after truncate up"
expect_eq "$(dd if="$F" bs=50000 skip=1 count=3 2>/dev/null | tr -d '\0' | wc -c)" 0 \
    "non-zero bytes in the extended range"
run ln -s "no/such/target" "$D/tree/ops-symlink"
expect_eq "$(readlink "$D/tree/ops-symlink")" "no/such/target" "new symlink target"
run ln "$F" "$D/tree/ops-hardlink"
expect_eq "$(stat -c %h "$F")" 2 "link count after ln"
expect_eq "$(stat -c %i "$F")" "$(stat -c %i "$D/tree/ops-hardlink")" "inode of a hard link"
run rm "$F"
expect_eq "$(stat -c %h "$D/tree/ops-hardlink")" 1 "link count after rm of the other name"
expect_eq "$(stat -c %s "$D/tree/ops-hardlink")" 200000 "size through the remaining link"
run mkfifo "$D/tree/ops-fifo"
expect_eq "$(stat -c %F "$D/tree/ops-fifo")" "fifo" "type of a fifo"

step "rename across directories"
src=$(sed -n '100p' "$DATA/tree.sha256")
f=${src#*  }
sum=${src%%  *}
run mkdir -p "$D/renamed/a/b"
run mv "$D/$f" "$D/renamed/a/b/moved-file"
expect_eq "$(sha256 "$D/renamed/a/b/moved-file")" "$sum" "content of a renamed file"
[ ! -e "$D/$f" ] || fail "old name still exists after rename: $f"
# a whole directory (with contents) into another directory
tree_sum() { (cd "$1" && find . -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort | sha256sum); }
dirsum=$(tree_sum "$D/tree/deep")
run mv "$D/tree/deep" "$D/renamed/a/deep-moved"
expect_eq "$(tree_sum "$D/renamed/a/deep-moved")" "$dirsum" "contents of a renamed directory"
[ ! -e "$D/tree/deep" ] || fail "old directory still exists after rename"
# rename over an existing file replaces it
run sh -c "echo old > '$D/renamed/target'; echo new > '$D/renamed/a/source'"
run mv "$D/renamed/a/source" "$D/renamed/target"
expect_eq "$(cat "$D/renamed/target")" new "content after rename over an existing file"
# directory rules
expect_fail mv "$D/renamed" "$D/renamed/a/b/inside"
expect_fail rmdir "$D/renamed/a"
case "$EXPECT_ERR" in *"not empty"*) ;; *) fail "rmdir of a non-empty directory: $EXPECT_ERR" ;; esac
expect_fail mkdir "$D/renamed/a"
case "$EXPECT_ERR" in *"exists"*) ;; *) fail "mkdir of an existing name: $EXPECT_ERR" ;; esac

step "fsync'd writes, re-read after a remount"
run dd if=/dev/urandom of=/tmp/rand bs=64k count=128 2>/dev/null
run dd if=/tmp/rand of="$D/fsynced" bs=64k conv=fsync
# overwrite in the middle, unaligned, without truncating
run dd if=/dev/urandom of=/tmp/patch bs=1000 count=77 2>/dev/null
run dd if=/tmp/patch of=/tmp/rand bs=1000 seek=3001 conv=notrunc
run dd if=/tmp/patch of="$D/fsynced" bs=1000 seek=3001 conv=notrunc,fsync
# sparse write beyond EOF
run dd if=/tmp/patch of=/tmp/rand bs=1000 seek=20000 conv=notrunc
run dd if=/tmp/patch of="$D/fsynced" bs=1000 seek=20000 conv=notrunc,fsync
want=$(sha256 /tmp/rand)
expect_eq "$(sha256 "$D/fsynced")" "$want" "checksum of the fsync'd file (cached)"
nfs_umount "$D"
drop_caches
nfs_mount /posix "$D" actimeo=0
expect_eq "$(stat -c %s "$D/fsynced")" "$(stat -c %s /tmp/rand)" "size of the fsync'd file"
expect_eq "$(sha256 "$D/fsynced")" "$want" "checksum of the fsync'd file after remount"
expect_eq "$(cat "$D/renamed/target")" new "renamed file after remount"
expect_eq "$(stat -c %a:%Y "$D/tree/ops-dir")" "711:$(stat -c %Y "$DATA/tree.tar")" "directory mode and mtime after remount"

step "rm -rf everything"
# with attribute caching again: under actimeo=0 every unlink costs extra GETATTRs
nfs_umount "$D"
nfs_mount /posix "$D"
run rm -rf "$D/tree" "$D/renamed" "$D/fsynced"
expect_eq "$(ls -A "$D" | grep -v '^\.snapshots$' | wc -l)" 0 "entries left after rm -rf"
nfs_umount "$D"
drop_caches
nfs_mount /posix "$D"
expect_eq "$(ls -A "$D" | grep -v '^\.snapshots$' | wc -l)" 0 "entries left after rm -rf and remount"
nfs_umount "$D"
