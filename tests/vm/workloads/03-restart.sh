# 3. Server restart under load: the guest writes in a loop through a `hard` mount (and keeps one
# file open for appending) while the host kills slatefs serve with SIGKILL and starts it again on
# the same store and port, three times. The loop must finish without any error (no ESTALE, no
# EIO), and everything written must read back intact after a fresh mount.
D=/mnt/rsds
RESTARTS=3
PER_PHASE=8      # iterations the writer must complete before each restart and after the last
MAX_ITER=2000    # bound on the writer loop

step "create dataset rsds, mount it hard, prepare 8 source files"
on_host dataset create rsds
nfs_mount /rsds "$D"
mkdir -p /tmp/src
k=0
while [ $k -lt 8 ]; do
    dd if=/dev/urandom of=/tmp/src/f$k bs=16k count=$((k * 8 + 8)) 2>/dev/null
    k=$((k + 1))
done

# Iteration i: write d$i/f (a copy of /tmp/src/f$((i % 8))) with fsync through a temporary name
# and a rename, append "entry i" to the journal through a descriptor kept open all along, and
# record i in progress. Runs until /tmp/stop exists; any failure ends it with a message.
# NFSv3 has no reply cache that survives a restart: a mkdir or rename the old server did just
# before it died is retransmitted to the new one, which answers EEXIST / ENOENT although the
# operation took effect. Those two cases are accepted when the result is the intended one; every
# other error (ESTALE, EIO, ...) fails the workload.
writer() {
    exec 3>> "$D/journal"
    i=1
    while [ $i -le $MAX_ITER ] && [ ! -e /tmp/stop ]; do
        dd if=/tmp/src/f$((i % 8)) of="$D/tmp-f$i" bs=64k conv=fsync 2>> /tmp/writer.dd ||
            { echo "dd f$i failed" >> /tmp/writer.err; return 1; }
        if ! mkdir "$D/d$i" 2>> /tmp/writer.msg; then
            [ -d "$D/d$i" ] || { echo "mkdir d$i failed" >> /tmp/writer.err; return 1; }
            echo "mkdir d$i: retransmitted after a restart" >> /tmp/writer.retrans
        fi
        if ! mv "$D/tmp-f$i" "$D/d$i/f" 2>> /tmp/writer.msg; then
            [ -f "$D/d$i/f" ] && [ ! -e "$D/tmp-f$i" ] ||
                { echo "mv f$i failed" >> /tmp/writer.err; return 1; }
            echo "mv f$i: retransmitted after a restart" >> /tmp/writer.retrans
        fi
        echo "entry $i" >&3 || { echo "journal write $i failed" >> /tmp/writer.err; return 1; }
        echo "$i" >> "$D/progress" || { echo "progress $i failed" >> /tmp/writer.err; return 1; }
        ls "$D" > /dev/null || { echo "ls after $i failed" >> /tmp/writer.err; return 1; }
        i=$((i + 1))
    done
    exec 3>&-
    [ -e /tmp/stop ] || { echo "writer hit MAX_ITER without a stop" >> /tmp/writer.err; return 1; }
    return 0
}

writer_report() {
    echo "--- writer errors:"; cat /tmp/writer.err
    echo "--- dd, mkdir, mv messages:"; grep -v records /tmp/writer.dd /tmp/writer.msg | tail -n 20
}

progress() {
    if [ -e "$D/progress" ]; then wc -l < "$D/progress"; else echo 0; fi
}

# wait_progress N: bounded wait until the writer has completed N iterations
wait_progress() {
    w=0
    while [ "$(progress)" -lt "$1" ]; do
        w=$((w + 1))
        [ $w -le 3000 ] || { writer_report; fail "writer did not reach $1 iterations within 300 s"; }
        [ -e /tmp/writer.rc ] && { writer_report; fail "writer ended early: $(cat /tmp/writer.err)"; }
        sleep 0.1
    done
}

step "start the writer, kill -9 and restart the server $RESTARTS times under it"
: > /tmp/writer.err
: > /tmp/writer.dd
: > /tmp/writer.msg
: > /tmp/writer.retrans
rm -f /tmp/stop /tmp/writer.rc
(writer; echo $? > /tmp/writer.rc) &
writer_pid=$!
r=1
while [ $r -le $RESTARTS ]; do
    wait_progress $(( $(progress) + PER_PHASE ))
    echo "[$(t)s] writer at $(progress) iterations; restart $r (kill -9, down 1 s, start)"
    on_host server-restart 1
    r=$((r + 1))
done
wait_progress $(( $(progress) + PER_PHASE ))
echo "[$(t)s] writer at $(progress) iterations after the last restart; stopping it"
touch /tmp/stop

step "wait for the writer"
w=0
while [ ! -e /tmp/writer.rc ]; do
    w=$((w + 1))
    [ $w -le 3000 ] || fail "writer did not finish within 300 s"
    sleep 0.1
done
wait $writer_pid 2>/dev/null
writer_report
cat /tmp/writer.retrans
grep -i 'stale\|error' /tmp/writer.dd /tmp/writer.msg && fail "errors reported"
expect_eq "$(cat /tmp/writer.rc)" 0 "writer exit status"
[ -s /tmp/writer.err ] && fail "the writer reported errors"
dmesg | grep -i 'stale' && fail "the kernel logged stale file handles"
echo "kernel NFS messages:"
dmesg | grep -i 'nfs' | grep -v 'Registered\|Installing' || true
N=$(progress)
echo "  $N iterations"

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
i=1
: > /tmp/dst.sums
while [ $i -le $N ]; do
    echo "$(sha256 /tmp/src/f$((i % 8)))  d$i/f" >> /tmp/dst.sums
    i=$((i + 1))
done
(cd "$D" && sha256sum -c -s /tmp/dst.sums) || {
    (cd "$D" && sha256sum -c /tmp/dst.sums | grep -v ': OK$')
    fail "checksums differ after the restarts"
}
echo "  $N files, the journal and the progress file match"
ls "$D" | grep -q '^tmp-' && fail "leftover temporary files: $(ls "$D" | grep '^tmp-')"
nfs_umount "$D"
