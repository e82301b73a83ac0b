# 5. Quota: a dataset created with --quota reports it through FSSTAT (df), and writing past it
# fails in the guest with ENOSPC or EDQUOT; deleting data gives the space back.
D=/mnt/quota
QUOTA_MIB=16

step "create dataset quotads with a ${QUOTA_MIB} MiB quota, mount it"
on_host dataset create quotads --quota "${QUOTA_MIB}Mi"
nfs_mount /quotads "$D"

step "df shows the quota"
df -k "$D"
total_k=$(df -k "$D" | awk 'NR == 2 { print $2 }')
[ "$total_k" -ge $((QUOTA_MIB * 1024 * 9 / 10)) ] && [ "$total_k" -le $((QUOTA_MIB * 1024 * 11 / 10)) ] ||
    fail "df reports ${total_k} KiB total for a ${QUOTA_MIB} MiB quota"

step "a write below the quota succeeds"
run dd if=/dev/urandom of="$D/small" bs=64k count=16 conv=fsync

step "dd of $((QUOTA_MIB * 2)) MiB (random, not compressible or sparse) fails with ENOSPC/EDQUOT"
dd if=/dev/urandom of=/tmp/r1m bs=64k count=16 2>/dev/null
if (i=0; while [ $i -lt $((QUOTA_MIB * 2)) ]; do cat /tmp/r1m; i=$((i + 1)); done) |
        dd of="$D/fill" bs=64k conv=fsync 2> /tmp/dd.err; then
    cat /tmp/dd.err
    fail "writing $((QUOTA_MIB * 2)) MiB into a ${QUOTA_MIB} MiB dataset succeeded"
fi
cat /tmp/dd.err
grep -Eq 'No space left on device|Disk quota exceeded' /tmp/dd.err ||
    fail "dd failed, but not with ENOSPC or EDQUOT"
size=$(stat -c %s "$D/fill")
echo "  fill stopped at $size bytes"
[ "$size" -le $((QUOTA_MIB * 1024 * 1024)) ] || fail "the file grew to $size bytes, past the quota"
df -k "$D"

step "a new file cannot grow past the quota either"
expect_fail dd if=/tmp/r1m of="$D/more" bs=64k conv=fsync
case "$EXPECT_ERR" in
    *"No space left on device"* | *"Disk quota exceeded"*) ;;
    *) fail "second write failed with an unexpected error: $EXPECT_ERR" ;;
esac

step "deleting data gives the space back"
run rm -f "$D/fill" "$D/more"
run sync
# freeing may be asynchronous (background purge); bounded wait for the space to come back
ok=
w=0
while [ $w -lt 60 ]; do
    if dd if=/tmp/r1m of="$D/after" bs=64k conv=fsync 2>/tmp/dd.err; then ok=1; break; fi
    rm -f "$D/after"
    w=$((w + 1))
    sleep 1
done
[ -n "$ok" ] || fail "no space back within 60 s after deleting: $(cat /tmp/dd.err)"
expect_eq "$(sha256 "$D/after")" "$(sha256 /tmp/r1m)" "file written after freeing space"
nfs_umount "$D"
