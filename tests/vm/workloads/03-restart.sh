# 3. Server restart under load: the guest writes in a loop through a `hard` mount (and keeps one
# file open for appending) while the host kills slatefs serve with SIGKILL and starts it again on
# the same store and port, three times. The loop must finish without any error (no ESTALE, no
# EIO), and everything written must read back intact after a fresh mount.
D=/mnt/rsds
N=30          # files written by the loop
RESTARTS=3

step "create dataset rsds, mount it hard, prepare $N source files"
on_host dataset create rsds
nfs_mount /rsds "$D"
mkdir -p /tmp/src
i=1
while [ $i -le $N ]; do
    dd if=/dev/urandom of=/tmp/src/f$i bs=16k count=$((i % 8 * 8 + 8)) 2>/dev/null
    i=$((i + 1))
done
(cd /tmp/src && sha256sum f* > /tmp/src.sums)

writer() {
    exec 3>> "$D/journal"   # one open file across all restarts
    i=1
    while [ $i -le $N ]; do
        dd if=/tmp/src/f$i of="$D/tmp-f$i" bs=64k conv=fsync 2>> /tmp/writer.err ||
            { echo "dd f$i failed" >> /tmp/writer.err; return 1; }
        mkdir "$D/d$i" || { echo "mkdir d$i failed" >> /tmp/writer.err; return 1; }
        mv "$D/tmp-f$i" "$D/d$i/f$i" || { echo "mv f$i failed" >> /tmp/writer.err; return 1; }
        echo "entry $i" >&3 || { echo "journal write $i failed" >> /tmp/writer.err; return 1; }
        echo "$i" >> "$D/progress" || { echo "progress $i failed" >> /tmp/writer.err; return 1; }
        ls "$D" > /dev/null || { echo "ls after $i failed" >> /tmp/writer.err; return 1; }
        i=$((i + 1))
    done
    exec 3>&-
    return 0
}

step "start the writer, kill -9 and restart the server $RESTARTS times under it"
: > /tmp/writer.err
(writer; echo $? > /tmp/writer.rc) &
writer_pid=$!
r=1
while [ $r -le $RESTARTS ]; do
    # wait (bounded) until the writer is past the next tenth of its work
    want=$((r * N / (RESTARTS + 1)))
    w=0
    while [ "$(cat "$D/progress" 2>/dev/null | wc -l)" -lt $want ]; do
        w=$((w + 1))
        [ $w -le 1200 ] || fail "writer made no progress to $want within 120 s: $(cat /tmp/writer.err)"
        [ -e /tmp/writer.rc ] && fail "writer ended early: $(cat /tmp/writer.err)"
        sleep 0.1
    done
    echo "[$(t)s] writer at $(wc -l < "$D/progress")/$N; restart $r"
    # stays down for a second: the client sees refused connections, then reconnects
    on_host server-restart 1
    r=$((r + 1))
done

step "wait for the writer"
w=0
while [ ! -e /tmp/writer.rc ]; do
    w=$((w + 1))
    [ $w -le 3000 ] || fail "writer did not finish within 300 s"
    sleep 0.1
done
wait $writer_pid 2>/dev/null
if [ -s /tmp/writer.err ]; then
    cat /tmp/writer.err
fi
expect_eq "$(cat /tmp/writer.rc)" 0 "writer exit status"
grep -qi stale /tmp/writer.err && fail "ESTALE seen by the writer"
[ -s /tmp/writer.err ] && fail "the writer reported errors"
dmesg | grep -i 'stale' && fail "the kernel logged stale file handles"

step "read everything back through a fresh mount"
nfs_umount "$D"
drop_caches
nfs_mount /rsds "$D"
i=1
: > /tmp/expected.journal
while [ $i -le $N ]; do
    echo "entry $i" >> /tmp/expected.journal
    i=$((i + 1))
done
cmp /tmp/expected.journal "$D/journal" || fail "journal (the file kept open) differs"
expect_eq "$(wc -l < "$D/progress")" "$N" "lines in progress"
(cd "$D" && for d in d*; do echo "$d"; done | wc -l) > /tmp/ndirs
expect_eq "$(cat /tmp/ndirs)" "$N" "directories written"
sed 's|  f\([0-9]*\)$|  d\1/f\1|' /tmp/src.sums > /tmp/dst.sums
(cd "$D" && sha256sum -c -s /tmp/dst.sums) || {
    (cd "$D" && sha256sum -c /tmp/dst.sums | grep -v ': OK$')
    fail "checksums differ after the restarts"
}
echo "  $N files, the journal and the progress file match"
ls "$D" | grep -q '^tmp-' && fail "leftover temporary files: $(ls "$D" | grep '^tmp-')"
nfs_umount "$D"
