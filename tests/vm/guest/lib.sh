# Helpers for guest workloads (busybox ash). Sourced before workload.sh; `set -u` is on.
# Note: busybox-static runs its own applets before $PATH, so the real util-linux mount (which
# calls /sbin/mount.nfs, like the CSI node's mounter) is always called by its full path.
MOUNT=/usr/bin/mount
UMOUNT=/usr/bin/umount
SERVER=10.0.2.2
T_START=$(cut -d' ' -f1 /proc/uptime)
CURRENT_STEP=start
WORKLOAD_DONE=

t() { awk -v s="$T_START" '{ printf "%6.1f", $1 - s }' /proc/uptime; }

# step DESCRIPTION: log progress; a failure names the last step.
step() {
    CURRENT_STEP=$*
    echo "[$(t)s] == $*"
}

fail() {
    echo "[$(t)s] FAIL: $*"
    exit 1
}

on_exit() {
    rc=$?
    if [ -z "$WORKLOAD_DONE" ] && [ "$rc" = 0 ]; then rc=1; fi
    if [ "$rc" = 0 ]; then
        echo "[$(t)s] PASS $WORKLOAD"
    else
        echo "[$(t)s] workload failed (status $rc) in step: $CURRENT_STEP"
    fi
    exit "$rc"
}

# run CMD...: run, echo the command, fail on a non-zero status.
run() {
    echo "+ $*"
    "$@" || fail "command failed (status $?): $*"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# expect_fail CMD...: the command must fail; its stderr is kept in $EXPECT_ERR.
expect_fail() {
    echo "+ (must fail) $*"
    if "$@" 2> /tmp/expect_fail.err; then
        fail "command succeeded but must fail: $*"
    fi
    EXPECT_ERR=$(cat /tmp/expect_fail.err)
    echo "  failed as expected: $EXPECT_ERR"
}

# nfs_mount EXPORT DIR [EXTRA_OPTIONS]: the CSI node's mount, plus extra options.
nfs_mount() {
    mkdir -p "$2"
    opts="vers=3,proto=tcp,port=$NFS_PORT,mountport=$NFS_PORT,nolock,hard${3:+,$3}"
    echo "+ mount -t nfs -o $opts $SERVER:$1 $2"
    $MOUNT -t nfs -o "$opts" "$SERVER:$1" "$2" || fail "mount of $SERVER:$1 on $2 failed"
}

nfs_umount() {
    echo "+ umount $1"
    $UMOUNT "$1" || fail "umount $1 failed"
}

is_mounted() { # DIR
    awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts
}

# drop_caches: make the next reads go to the server.
drop_caches() {
    sync
    echo 3 > /proc/sys/vm/drop_caches
}

# host_call WORD...: run a step on the host (see serve_calls in tests/vm/run.sh):
#   dataset ARGS...          slatefs dataset --admin ... ARGS
#   server-kill | server-start | server-restart [DOWN_SECONDS] | server-stop
# Prints the host's output; returns its status.
host_call() {
    id=/share/calls/$(cat /proc/sys/kernel/random/uuid)
    printf '%s\n' "$@" > "$id.tmp" && mv "$id.tmp" "$id.req"
    i=0
    while [ ! -e "$id.rc" ]; do
        i=$((i + 1))
        [ $i -le 3000 ] || { echo "host_call $*: no answer within 300 s"; return 124; }
        sleep 0.1
    done
    cat "$id.out"
    return "$(cat "$id.rc")"
}

# on_host WORD...: host_call that must succeed.
on_host() {
    echo "+ host: $*"
    host_call "$@" || fail "host call failed: $*"
}

# sha256 FILE: just the digest.
sha256() { sha256sum "$1" | cut -d' ' -f1; }
