# 6. Failover: the guest writes through a `hard` mount of a server that does not own the dataset
# (it forwards every call to the owner) while the host kills the owner with SIGKILL. The server
# the guest mounts takes the dataset over; the writer must go on without an error (no ESTALE, no
# EIO), and everything written must read back intact on a fresh mount.
D=/mnt/fo
PER_PHASE=10
MAX_ITER=2000

step "create dataset fo; a snapshot from the host makes the catalog owner its owner"
on_host dataset create fo
on_host dataset snapshot fo before --readonly
host_call dataset info fo > /tmp/info || fail "dataset info failed"
cat /tmp/info
grep -q '^owner: *owner$' /tmp/info || fail "the catalog owner should own fo: $(cat /tmp/info)"
nfs_mount /fo "$D"
dd if=/dev/urandom of=/tmp/src bs=64k count=4 2>/dev/null

# Iteration i: write f$i with fsync, append "entry i" to a journal kept open, record i in progress.
writer() {
    exec 3>> "$D/journal"
    i=1
    while [ $i -le $MAX_ITER ] && [ ! -e /tmp/stop ]; do
        dd if=/tmp/src of="$D/f$i" bs=64k conv=fsync 2>> /tmp/writer.dd ||
            { echo "dd f$i failed" >> /tmp/writer.err; return 1; }
        echo "entry $i" >&3 || { echo "journal write $i failed" >> /tmp/writer.err; return 1; }
        echo "$i" >> "$D/progress" || { echo "progress $i failed" >> /tmp/writer.err; return 1; }
        i=$((i + 1))
    done
    exec 3>&-
    [ -e /tmp/stop ] || { echo "writer hit MAX_ITER without a stop" >> /tmp/writer.err; return 1; }
}

progress() { if [ -e "$D/progress" ]; then wc -l < "$D/progress"; else echo 0; fi; }

wait_progress() {
    w=0
    while [ "$(progress)" -lt "$1" ]; do
        w=$((w + 1))
        [ $w -le 3000 ] || { cat /tmp/writer.err; fail "writer did not reach $1 iterations within 300 s"; }
        [ -e /tmp/writer.rc ] && fail "writer ended early: $(cat /tmp/writer.err)"
        sleep 0.1
    done
}

step "write through the node; kill -9 the owner under the writer"
: > /tmp/writer.err
: > /tmp/writer.dd
rm -f /tmp/stop /tmp/writer.rc
(writer; echo $? > /tmp/writer.rc) &
writer_pid=$!
wait_progress $PER_PHASE
echo "[$(t)s] writer at $(progress) iterations; killing the owner"
on_host owner-kill
before=$(progress)
wait_progress $((before + PER_PHASE))
echo "[$(t)s] writer at $(progress) iterations with the owner dead"
touch /tmp/stop
w=0
while [ ! -e /tmp/writer.rc ]; do
    w=$((w + 1))
    [ $w -le 3000 ] || fail "writer did not finish within 300 s"
    sleep 0.1
done
wait $writer_pid 2>/dev/null
cat /tmp/writer.err
expect_eq "$(cat /tmp/writer.rc)" 0 "writer exit status"
[ -s /tmp/writer.err ] && fail "the writer reported errors"
grep -i 'stale\|error' /tmp/writer.dd && fail "errors reported"
dmesg | grep -i 'stale' && fail "the kernel logged stale file handles"
N=$(progress)
echo "  $N iterations"

step "the node owns fo now; the owner comes back as a follower of it"
on_host owner-start
host_call dataset info fo > /tmp/info || fail "dataset info failed"
cat /tmp/info
grep -q '^owner: *node$' /tmp/info || fail "the node should own fo now"

step "read everything back through a fresh mount"
nfs_umount "$D"
drop_caches
nfs_mount /fo "$D"
i=1
: > /tmp/expected.journal
while [ $i -le $N ]; do
    echo "entry $i" >> /tmp/expected.journal
    i=$((i + 1))
done
cmp /tmp/expected.journal "$D/journal" || fail "journal (the file kept open) differs"
want=$(sha256 /tmp/src)
i=1
while [ $i -le $N ]; do
    expect_eq "$(sha256 "$D/f$i")" "$want" "f$i"
    i=$((i + 1))
done
nfs_umount "$D"
