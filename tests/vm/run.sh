#!/usr/bin/env bash
# End-to-end tests of slatefs through the Linux kernel's NFS client, inside a qemu VM.
#
#   tests/vm/run.sh [WORKLOAD...]      run all workloads (or the named ones: "posix", "03", ...)
#   tests/vm/run.sh --list             list the workloads
#
# What it does, per workload: a private network + mount namespace (only `lo`), a fresh store, a
# real `slatefs serve` on 127.0.0.1:$VM_NFS_PORT, and a Debian kernel booted under TCG from a
# cached initramfs (busybox, mount.nfs, util-linux mount, the NFS/9p/virtio modules). The guest
# reaches the server as 10.0.2.2, mounts it exactly as the CSI node does, runs
# tests/vm/workloads/NN-NAME.sh, and powers off; its exit status and log come back over 9p.
# Guest scripts ask the host for steps such as `slatefs dataset snapshot` or a server kill -9 via
# files in the shared folder (see host_call in guest/lib.sh and serve_calls below).
#
# Environment:
#   SLATEFS_BIN     binary under test (default: `cargo build --release`, target/release/slatefs)
#   VM_TIMEOUT      seconds per workload, whole VM run (default 900)
#   VM_NFS_PORT     NFS+MOUNT port inside the namespace (default 20490; cluster workloads
#                   also use the next four ports)
#   VM_ADMIN_PORT   admin API port for workloads that need it on TCP (default 20491)
#   VM_SERVE_ARGS   extra arguments for `slatefs serve` (e.g. "--durability async")
#   VM_KEEP=1       keep the work directory (stores, logs, shares) even when all pass
#   VM_WORKDIR      work directory (default: a new /tmp/slatefs-vm.XXXXXX)
#   VM_CACHE        cache directory (default: tests/vm/cache, git-ignored)
#   VM_NO_INSTALL=1 never run apt-get; fail if something is missing
# Exit status: 0 only when every selected workload passed.
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
CACHE=${VM_CACHE:-$VM_DIR/cache}
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_NFS_PORT=${VM_NFS_PORT:-20490}
VM_ADMIN_PORT=${VM_ADMIN_PORT:-20491}

log() { printf '[vm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# A process that exists and is not a zombie.
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --------------------------------------------------------------------------------------------
# Inside the namespace: server, host-call loop, qemu.   run.sh __inner NAME WORKDIR
# --------------------------------------------------------------------------------------------
SERVER_PID=

server_start() {
    mkdir -p "$WD/store"
    echo "=== $(date +%T.%N) slatefs serve (start)" >> "$WD/server.log"
    # shellcheck disable=SC2086
    NO_COLOR=1 RUST_LOG=${RUST_LOG:-info,slatedb=warn,zerofs_nfsserve=warn} "$SLATEFS" serve -c "$WD/slatefs.toml" ${VM_SERVE_ARGS:-} \
        >> "$WD/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 600; i++)); do
        if ! alive "$SERVER_PID"; then
            wait "$SERVER_PID" 2>/dev/null || true
            echo "slatefs serve exited during start-up (see server.log)"
            SERVER_PID=
            return 1
        fi
        (exec 3<>"/dev/tcp/127.0.0.1/$VM_NFS_PORT") 2>/dev/null && break
        sleep 0.1
    done
    if [ "$i" -ge 600 ]; then
        echo "slatefs serve did not listen on 127.0.0.1:$VM_NFS_PORT within 60 s"
        return 1
    fi
    local j
    for ((j = 0; j < 300; j++)); do
        admin_ready && break
        sleep 0.1
    done
    admin_ready || echo "warning: the admin API is not reachable; dataset calls will fail"
    i=$((i + j))
    echo "server up (pid $SERVER_PID) after $((i / 10)).$((i % 10)) s"
}

server_kill() { # SIGNAL
    [ -n "$SERVER_PID" ] || { echo "server not running"; return 0; }
    echo "=== $(date +%T.%N) kill -$1 $SERVER_PID" >> "$WD/server.log"
    kill "-$1" "$SERVER_PID" 2>/dev/null || true
    local i=0
    while alive "$SERVER_PID" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    if alive "$SERVER_PID"; then
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    { wait "$SERVER_PID"; } 2>/dev/null || true
    echo "server (pid $SERVER_PID) stopped with SIG$1"
    SERVER_PID=
}

# CLUSTER workloads: a second server, the catalog owner, on the same store; the guest mounts the
# first one (a catalog reader named "node"), which forwards to the owner of each dataset.
OWNER_PID=

owner_start() {
    echo "=== $(date +%T.%N) slatefs serve (catalog owner, start)" >> "$WD/owner.log"
    NO_COLOR=1 RUST_LOG=${RUST_LOG:-info,slatedb=warn,zerofs_nfsserve=warn} "$SLATEFS" serve -c "$WD/owner.toml" \
        >> "$WD/owner.log" 2>&1 &
    OWNER_PID=$!
    local i
    for ((i = 0; i < 600; i++)); do
        alive "$OWNER_PID" || { echo "the catalog owner exited during start-up (see owner.log)"; OWNER_PID=; return 1; }
        [ -S "$WD/owner.sock" ] && (exec 3<>"/dev/tcp/127.0.0.1/$((VM_NFS_PORT + 2))") 2>/dev/null && break
        sleep 0.1
    done
    echo "catalog owner up (pid $OWNER_PID)"
}

owner_kill() {
    [ -n "$OWNER_PID" ] || { echo "catalog owner not running"; return 0; }
    echo "=== $(date +%T.%N) kill -9 $OWNER_PID" >> "$WD/owner.log"
    kill -9 "$OWNER_PID" 2>/dev/null || true
    { wait "$OWNER_PID"; } 2>/dev/null || true
    echo "catalog owner (pid $OWNER_PID) killed"
    OWNER_PID=
}

admin_ready() {
    if [ -n "$ADMIN_TCP" ]; then
        (exec 3<>"/dev/tcp/127.0.0.1/$VM_ADMIN_PORT") 2>/dev/null
    else
        [ -S "$WD/admin.sock" ]
    fi
}

# One request from the guest: argument words, one per line.
host_call_exec() {
    local cmd=$1
    shift
    case "$cmd" in
        dataset)
            if [ -n "$CLUSTER" ]; then
                "$SLATEFS" dataset -c "$WD/owner.toml" "$@"
            else
                "$SLATEFS" dataset -c "$WD/slatefs.toml" "$@"
            fi ;;
        owner-kill) owner_kill ;;
        owner-start) owner_start ;;
        server-kill) server_kill KILL ;;
        server-stop) server_kill TERM ;;
        server-start) server_start ;;
        server-restart) # [DOWN_SECONDS]: kill -9, stay down a while, start again on the same store
            server_kill KILL
            sleep "${1:-0}"
            server_start ;;
        echo) echo "$@" ;;
        *) echo "unknown host call: $cmd"; return 127 ;;
    esac
}

serve_calls_once() {
    local req id rc args
    for req in "$WD/share/calls"/*.req; do
        [ -e "$req" ] || continue
        id=${req%.req}
        mv "$req" "$id.run"
        mapfile -t args < "$id.run"
        echo "$(date +%T.%N) host call: ${args[*]}" >> "$WD/calls.log"
        rc=0
        host_call_exec "${args[@]}" > "$id.out.tmp" 2>&1 < /dev/null || rc=$?
        sed 's/^/    /' "$id.out.tmp" >> "$WD/calls.log"
        echo "    -> $rc" >> "$WD/calls.log"
        mv "$id.out.tmp" "$id.out"
        echo "$rc" > "$id.rc.tmp"
        mv "$id.rc.tmp" "$id.rc"
    done
}

inner() {
    NAME=$1
    WD=$2
    ip link set lo up
    if [ -n "$CLUSTER" ] && ! owner_start > "$WD/owner-start.out" 2>&1; then
        cat "$WD/owner-start.out" >&2
        echo "owner" > "$WD/failed-at"
        return 1
    fi
    if ! server_start > "$WD/server-start.out" 2>&1; then
        cat "$WD/server-start.out" >&2
        echo "server" > "$WD/failed-at"
        server_kill KILL > /dev/null
        return 1
    fi
    local qemu_pid
    timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
        -accel tcg,thread=multi -cpu max -machine pc -smp 1 -m 1G \
        -nodefaults -no-reboot -display none -monitor none \
        -kernel "$VMLINUX" -initrd "$INITRAMFS" \
        -append "console=ttyS0 panic=-1 quiet" \
        -serial "file:$WD/console.log" \
        -device virtio-net-pci,netdev=n0,romfile= -netdev user,id=n0 \
        -virtfs "local,path=$WD/share,mount_tag=share,security_model=none" \
        -virtfs "local,path=$HOSTDIR,mount_tag=host,security_model=none,readonly=on" \
        > "$WD/qemu.log" 2>&1 &
    qemu_pid=$!
    while alive "$qemu_pid"; do
        serve_calls_once
        sleep 0.1
    done
    local qrc=0
    wait "$qemu_pid" || qrc=$?
    echo "$qrc" > "$WD/qemu.rc"
    server_kill TERM > /dev/null
    owner_kill > /dev/null
}

if [ "${1:-}" = __inner ]; then
    shift
    export SLATEFS HOSTDIR VMLINUX INITRAMFS
    inner "$@"
    exit $?
fi

# --------------------------------------------------------------------------------------------
# Host side
# --------------------------------------------------------------------------------------------
list_workloads() {
    local f
    for f in "$VM_DIR"/workloads/[0-9][0-9]-*.sh; do
        case "$f" in *.host.sh) continue ;; esac
        basename "$f" .sh
    done
}

if [ "${1:-}" = --list ]; then
    list_workloads
    exit 0
fi
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi

ensure_packages() {
    local need=()
    command -v qemu-system-x86_64 > /dev/null || need+=(qemu-system-x86)
    compgen -G '/boot/vmlinuz-*' > /dev/null || need+=(linux-image-amd64)
    if [ ! -x /bin/busybox ] || ldd /bin/busybox > /dev/null 2>&1; then need+=(busybox-static); fi
    command -v cpio > /dev/null || need+=(cpio)
    [ -x /sbin/mount.nfs ] || need+=(nfs-common)
    command -v python3 > /dev/null || need+=(python3)
    command -v unshare > /dev/null || need+=(util-linux)
    command -v ip > /dev/null || need+=(iproute2)
    [ ${#need[@]} -eq 0 ] && return 0
    [ -z "${VM_NO_INSTALL:-}" ] || die "missing packages: ${need[*]}"
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q > /dev/null
    apt-get install -y -q --no-install-recommends "${need[@]}" > /dev/null
}

pick_kernel() {
    local v k
    for v in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -rV); do
        compgen -G "/lib/modules/$v/kernel/fs/nfs/nfsv3.ko*" > /dev/null && { echo "$v"; return 0; }
    done
    return 1
}

build_images() {
    KVER=$(pick_kernel) || die "no /boot/vmlinuz-* with NFS modules in /lib/modules"
    mkdir -p "$CACHE"
    VMLINUX=$CACHE/vmlinux-$KVER
    if [ ! -s "$VMLINUX" ]; then
        log "extracting vmlinux from /boot/vmlinuz-$KVER"
        python3 "$VM_DIR/lib/extract-vmlinux.py" "/boot/vmlinuz-$KVER" "$VMLINUX"
    fi
    local key
    key=$( { echo "$KVER"; cat "$VM_DIR/lib/initramfs.sh" "$VM_DIR/guest/init"; \
             sha256sum /bin/busybox /sbin/mount.nfs /bin/mount /bin/umount; } | sha256sum | cut -c1-16)
    INITRAMFS=$CACHE/initramfs-$KVER-$key.cpio.gz
    if [ ! -s "$INITRAMFS" ]; then
        log "building initramfs ($KVER, key $key)"
        rm -f "$CACHE"/initramfs-*.cpio.gz
        bash "$VM_DIR/lib/initramfs.sh" "$KVER" "$INITRAMFS"
    fi
}

build_slatefs() {
    if [ -n "${SLATEFS_BIN:-}" ]; then
        [ -x "$SLATEFS_BIN" ] || die "SLATEFS_BIN=$SLATEFS_BIN is not executable"
        return 0
    fi
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --bin slatefs) >&2
    SLATEFS_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/slatefs
}

# The read-only "host" share: the binary under test and the shared libraries it needs, so the
# guest can run `slatefs csi` (the loader and libc already are in the initramfs).
stage_hostdir() {
    HOSTDIR=$RUN/host
    mkdir -p "$HOSTDIR/bin" "$HOSTDIR/lib"
    cp -L "$SLATEFS_BIN" "$HOSTDIR/bin/slatefs"
    local lib
    ldd "$SLATEFS_BIN" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
        [ -n "$lib" ] && [ -e "$lib" ] && cp -L "$lib" "$HOSTDIR/lib/"
    done
    SLATEFS=$HOSTDIR/bin/slatefs
}

print_file() { # TITLE FILE [TAIL_LINES]
    [ -s "$2" ] || return 0
    echo "----- $1 ($2) -----"
    if [ -n "${3:-}" ]; then tail -n "$3" "$2"; else cat "$2"; fi
}

run_workload() { # NAME
    local name=$1 wd=$RUN/$1 t0 rc reason=
    t0=$(now)
    mkdir -p "$wd/share/job" "$wd/share/calls" "$wd/share/data" "$wd/store"
    cp "$VM_DIR/guest/lib.sh" "$VM_DIR/guest/start.sh" "$wd/share/job/"
    cp "$VM_DIR/workloads/$name.sh" "$wd/share/job/workload.sh"
    # A workload's optional NN-NAME.host.sh may set ADMIN_TCP=1 (admin API on TCP with a bearer
    # token, so that the guest can reach it) and define host_prepare DATA_DIR CACHE_DIR (runs on
    # the host before the VM boots).
    ADMIN_TCP=
    CLUSTER=
    unset -f host_prepare
    if [ -f "$VM_DIR/workloads/$name.host.sh" ]; then
        . "$VM_DIR/workloads/$name.host.sh"
    fi
    local admin="listen = \"unix://$wd/admin.sock\""
    if [ -n "$ADMIN_TCP" ]; then
        # 0600: slatefs refuses a token file that group or others may read.
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$wd/share/job/admin.token")
        admin="listen = \"tcp://127.0.0.1:$VM_ADMIN_PORT\"
token_file = \"$wd/share/job/admin.token\""
    fi
    # The server's config file; `slatefs dataset -c` reads the same one.
    cat > "$wd/slatefs.toml" <<EOF
[storage]
url = "file://$wd/store"

[nfs]
listen = "127.0.0.1:$VM_NFS_PORT"

[admin]
$admin
EOF
    if [ -n "$CLUSTER" ]; then
        # The owner keeps what it owns (no handoff to the node) until the workload kills it.
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$wd/cluster.secret"
        chmod 600 "$wd/cluster.secret"
        cat >> "$wd/slatefs.toml" <<EOF

[catalog]
role = "reader"

[cluster]
name = "node"
listen = "127.0.0.1:$((VM_NFS_PORT + 3))"
secret_file = "$wd/cluster.secret"
EOF
        cat > "$wd/owner.toml" <<EOF
[storage]
url = "file://$wd/store"

[nfs]
listen = "127.0.0.1:$((VM_NFS_PORT + 2))"

[admin]
listen = "unix://$wd/owner.sock"

[cluster]
name = "owner"
listen = "127.0.0.1:$((VM_NFS_PORT + 4))"
secret_file = "$wd/cluster.secret"
handoff_after_ms = 600000
EOF
    fi
    cat > "$wd/share/job/env" <<EOF
WORKLOAD=$name
NFS_PORT=$VM_NFS_PORT
ADMIN_PORT=${ADMIN_TCP:+$VM_ADMIN_PORT}
GUEST_TIMEOUT=$((VM_TIMEOUT - 30))
EOF
    if declare -F host_prepare > /dev/null; then
        if ! (host_prepare "$wd/share/data" "$CACHE") > "$wd/prepare.log" 2>&1; then
            reason="host_prepare failed"
        fi
    fi
    rc=1
    if [ -z "$reason" ]; then
        # Own network (only lo), mount and PID namespaces: the guest reaches nothing but this
        # server, and when the inner shell dies everything it started dies with it.
        timeout -k 10 $((VM_TIMEOUT + 120)) \
            unshare --net --mount --pid --fork --kill-child --mount-proc -- \
            env SLATEFS="$SLATEFS" HOSTDIR="$HOSTDIR" VMLINUX="$VMLINUX" INITRAMFS="$INITRAMFS" \
            VM_TIMEOUT="$VM_TIMEOUT" VM_NFS_PORT="$VM_NFS_PORT" VM_ADMIN_PORT="$VM_ADMIN_PORT" \
            ADMIN_TCP="$ADMIN_TCP" CLUSTER="$CLUSTER" VM_SERVE_ARGS="${VM_SERVE_ARGS:-}" \
            bash "$VM_DIR/run.sh" __inner "$name" "$wd" > "$wd/inner.log" 2>&1 || true
        if [ -f "$wd/failed-at" ]; then
            reason="slatefs serve did not start"
        elif [ ! -f "$wd/qemu.rc" ]; then
            reason="harness error or timeout"
        elif [ "$(cat "$wd/qemu.rc")" = 124 ] || [ "$(cat "$wd/qemu.rc")" = 137 ]; then
            reason="VM timed out after ${VM_TIMEOUT}s"
        elif [ ! -s "$wd/share/job/rc" ]; then
            reason="guest wrote no exit status (crash? see console)"
        else
            rc=$(cat "$wd/share/job/rc")
            [ "$rc" = 0 ] || reason="guest workload exited $rc"
        fi
    fi
    local secs
    secs=$(elapsed "$t0")
    if [ -z "$reason" ]; then
        RESULTS+=("PASS  $name  (${secs}s)")
        log "PASS $name (${secs}s)"
        return 0
    fi
    RESULTS+=("FAIL  $name  (${secs}s): $reason")
    log "FAIL $name (${secs}s): $reason"
    {
        print_file "host prepare" "$wd/prepare.log"
        print_file "harness" "$wd/inner.log"
        print_file "guest log of $name" "$wd/share/job/log"
        print_file "host calls" "$wd/calls.log" 60
        print_file "slatefs serve log" "$wd/server.log" 60
        print_file "catalog owner log" "$wd/owner.log" 60
        print_file "VM console" "$wd/console.log" 40
        print_file "qemu" "$wd/qemu.log" 20
        echo "----- end of $name -----"
    } >&2
    return 1
}

main() {
    local selected=() all w a
    mapfile -t all < <(list_workloads)
    if [ $# -eq 0 ]; then
        selected=("${all[@]}")
    else
        for a in "$@"; do
            local found=
            for w in "${all[@]}"; do
                case "$w" in "$a" | "$a"-* | [0-9][0-9]-"$a") selected+=("$w"); found=1 ;; esac
            done
            [ -n "$found" ] || die "no workload matches '$a' (have: ${all[*]})"
        done
    fi
    exec 2>&1 # one stream, in order, for CI logs
    [ "$(id -u)" = 0 ] || die "run as root (unshare --net --mount, apt-get)"

    local t0
    t0=$(now)
    ensure_packages
    build_images
    build_slatefs
    RUN=${VM_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/slatefs-vm.XXXXXX")}
    mkdir -p "$RUN"
    stage_hostdir
    log "kernel $KVER, work dir $RUN, binary $SLATEFS_BIN, setup $(elapsed "$t0")s"

    RESULTS=()
    local failed=0
    for w in "${selected[@]}"; do
        log "running $w"
        run_workload "$w" || failed=$((failed + 1))
    done

    echo "==== VM end-to-end results ($(elapsed "$t0")s total) ===="
    printf '%s\n' "${RESULTS[@]}"
    echo "vm: $(( ${#selected[@]} - failed )) passed, $failed failed"
    if [ "$failed" -eq 0 ] && [ -z "${VM_KEEP:-}" ] && [ -z "${VM_WORKDIR:-}" ]; then
        rm -rf "$RUN"
    else
        echo "work dir kept: $RUN"
    fi
    [ "$failed" -eq 0 ]
}

main "$@"
