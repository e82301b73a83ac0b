# 4. The CSI node service for real: `slatefs csi --mode node` runs inside the guest (the binary
# and its libraries come over the read-only 9p share) against the host's dataset server, and
# `slatefs csi call` drives NodePublishVolume / NodeGetVolumeStats / NodeUnpublishVolume on its
# socket, like the kubelet would. Checked: the NFS mount in /proc/mounts and its options, data
# written through it reaching the server, a read-only snapshot volume (and its stats), errors for
# unknown volumes, idempotent retries, a SINGLE_NODE_SINGLE_WRITER volume refusing a second
# target, a plugin restart with volumes published, and the clean-up (twice).
SOCK=/csi/csi.sock
EP=unix://$SOCK
PODS=/var/lib/kubelet/pods
T=$PODS/pod-a/volumes/kubernetes.io~csi/csivol/mount
T2=$PODS/pod-b/volumes/kubernetes.io~csi/csivol-snap/mount
# A SINGLE_NODE_SINGLE_WRITER volume and two pods that want it.
SW1=$PODS/pod-d/volumes/kubernetes.io~csi/csisw/mount
SW2=$PODS/pod-e/volumes/kubernetes.io~csi/csisw/mount
QUOTA=$((64 * 1024 * 1024))
CSI_PID=

csi_start() {
    mkdir -p /csi
    rm -f "$SOCK"
    cat > /tmp/csi.toml <<EOT
[admin]
token_file = "/share/job/admin.token"
EOT
    echo "+ slatefs csi --mode node (log /tmp/csi.log)"
    slatefs csi --mode node --endpoint "$EP" --node-id vm-node -c /tmp/csi.toml \
        --admin "tcp://$SERVER:$ADMIN_PORT" --nfs-server "$SERVER:$NFS_PORT" >> /tmp/csi.log 2>&1 &
    CSI_PID=$!
    w=0
    while [ ! -S "$SOCK" ]; do
        w=$((w + 1))
        if [ $w -gt 600 ] || ! kill -0 $CSI_PID 2>/dev/null; then
            cat /tmp/csi.log
            fail "the CSI node plugin did not create $SOCK"
        fi
        sleep 0.1
    done
}

csi_stop() {
    kill $CSI_PID 2>/dev/null
    w=0
    while kill -0 $CSI_PID 2>/dev/null && [ $w -lt 100 ]; do sleep 0.1; w=$((w + 1)); done
    kill -9 $CSI_PID 2>/dev/null
    wait $CSI_PID 2>/dev/null
    CSI_PID=
}

# csi RPC ARGS...: call, print the JSON response, fail on a non-zero status
csi() {
    echo "+ csi call $*"
    slatefs csi call --endpoint "$EP" "$@" > /tmp/csi.out 2> /tmp/csi.err
    rc=$?
    cat /tmp/csi.out
    [ $rc = 0 ] || fail "csi call $* failed with $rc: $(cat /tmp/csi.err)"
}

# csi_status RPC ARGS...: the exit status (= the gRPC code) of a call that must fail
csi_status() {
    echo "+ csi call $* (must fail)"
    slatefs csi call --endpoint "$EP" "$@" > /tmp/csi.out 2> /tmp/csi.err
    rc=$?
    echo "  status $rc: $(cat /tmp/csi.err)"
    return 0
}

json_num() { # KEY UNIT: a number of the usage entry with that unit, from node-stats JSON
    tr -d " \n" < /tmp/csi.out | sed "s/},{/}\n{/g" | grep "\"unit\":\"$2\"" |
        sed -n "s/.*\"$1\":\([0-9-]*\).*/\1/p" | head -n 1
}

mount_line() { # DIR
    awk -v d="$1" '$2 == d' /proc/mounts
}

step "create the volume's dataset on the host (64 MiB quota) and start the node plugin"
on_host dataset create csivol --quota 64Mi
csi_start
w=0
until slatefs csi call --endpoint "$EP" probe 2>&1 | grep -q '"ready": true'; do
    w=$((w + 1))
    [ $w -le 100 ] || { csi probe; fail "the plugin does not report ready (admin API reachable?)"; }
    sleep 0.2
done
csi probe
csi node-info
grep -q '"node_id": "vm-node"' /tmp/csi.out || fail "node-info does not report node id vm-node"
csi node-capabilities
grep -q GET_VOLUME_STATS /tmp/csi.out || fail "node does not advertise GET_VOLUME_STATS"

step "NodePublishVolume mounts 10.0.2.2:/csivol at the target path"
mkdir -p "$(dirname "$T")"
csi node-publish --volume-id csivol --target-path "$T"
mount_line "$T"
line=$(mount_line "$T")
[ -n "$line" ] || fail "$T is not in /proc/mounts"
set -- $line
expect_eq "$1" "$SERVER:/csivol" "mount source"
expect_eq "$3" nfs "filesystem type"
for opt in vers=3 hard nolock proto=tcp "port=$NFS_PORT" "mountport=$NFS_PORT" rw; do
    case ",$4," in *",$opt,"*) ;; *) fail "mount option $opt missing: $4" ;; esac
done

step "a file written through the published volume reaches the server"
run dd if=/dev/urandom of=/tmp/payload bs=64k count=32 2>/dev/null
run dd if=/tmp/payload of="$T/payload" bs=64k conv=fsync
run sh -c "echo hello-from-csi > '$T/hello'"
nfs_mount /csivol /mnt/check
expect_eq "$(sha256 /mnt/check/payload)" "$(sha256 /tmp/payload)" "payload read through a direct mount"
expect_eq "$(cat /mnt/check/hello)" hello-from-csi "hello read through a direct mount"
nfs_umount /mnt/check

step "a repeated NodePublishVolume succeeds and mounts nothing more"
csi node-publish --volume-id csivol --target-path "$T"
expect_eq "$(awk -v d="$T" '$2 == d' /proc/mounts | wc -l)" 1 "mounts at the target after a retry"

step "NodeGetVolumeStats reports the quota and the usage"
csi node-stats --volume-id csivol --volume-path "$T"
total=$(json_num total BYTES)
used=$(json_num used BYTES)
expect_eq "$total" "$QUOTA" "total bytes (the quota)"
[ -n "$used" ] && [ "$used" -ge $((2 * 1024 * 1024)) ] || fail "used bytes $used < the 2 MiB written"
grep -q '"abnormal": false' /tmp/csi.out || fail "volume condition is not normal"
csi_status node-stats --volume-id csivol --volume-path /nonexistent
expect_eq "$rc" 5 "status of stats for a path where nothing is published (NOT_FOUND)"

step "a read-only snapshot volume"
on_host dataset snapshot csivol snap1 --readonly
run sh -c "echo changed > '$T/hello'"
mkdir -p "$(dirname "$T2")"
csi node-publish --volume-id csivol@snap1 --target-path "$T2" --readonly --access-mode single-node-reader-only
line=$(mount_line "$T2")
[ -n "$line" ] || fail "$T2 is not in /proc/mounts"
set -- $line
expect_eq "$1" "$SERVER:/csivol@snap1" "snapshot mount source"
case ",$4," in *,ro,*) ;; *) fail "snapshot volume not mounted ro: $4" ;; esac
expect_eq "$(cat "$T2/hello")" hello-from-csi "file in the snapshot volume"
expect_eq "$(cat "$T/hello")" changed "file in the live volume"
expect_fail sh -c "echo x > '$T2/hello'"
csi node-publish --volume-id csivol@snap1 --target-path "$T2" --readonly --access-mode single-node-reader-only
expect_eq "$(mount_line "$T2" | wc -l)" 1 "mounts at the snapshot target after a retry"
csi node-stats --volume-id csivol@snap1 --volume-path "$T2"
snap_total=$(json_num total BYTES)
snap_used=$(json_num used BYTES)
[ -n "$snap_used" ] && [ "$snap_used" -gt 0 ] || fail "snapshot volume used bytes: '$snap_used'"
[ "$snap_total" -ge "$snap_used" ] || fail "snapshot volume total $snap_total < used $snap_used"
grep -q '"abnormal": false' /tmp/csi.out || fail "snapshot volume condition is not normal"

step "SINGLE_NODE_SINGLE_WRITER: one target on this node, a second one refused"
on_host dataset create csisw --quota 16Mi
mkdir -p "$(dirname "$SW1")" "$(dirname "$SW2")"
csi node-publish --volume-id csisw --target-path "$SW1" --access-mode single-node-single-writer
is_mounted "$SW1" || fail "$SW1 is not mounted"
run sh -c "echo single-writer > '$SW1/owner'"
csi node-publish --volume-id csisw --target-path "$SW1" --access-mode single-node-single-writer
expect_eq "$(mount_line "$SW1" | wc -l)" 1 "mounts at the single-writer target after a retry"
csi_status node-publish --volume-id csisw --target-path "$SW2" --access-mode single-node-single-writer
expect_eq "$rc" 9 "status of a second target for a SINGLE_NODE_SINGLE_WRITER volume (FAILED_PRECONDITION)"
case "$(cat /tmp/csi.err)" in *"$SW1"*) ;; *) fail "the refusal does not name the published target $SW1" ;; esac
is_mounted "$SW2" && fail "the refused publish mounted $SW2"
[ -e "$SW2" ] && fail "the refused publish created $SW2"
expect_eq "$(cat "$SW1/owner")" single-writer "the first target after the refusal"
csi node-unpublish --volume-id csisw --target-path "$SW1"
is_mounted "$SW1" && fail "$SW1 is still mounted"
csi node-publish --volume-id csisw --target-path "$SW2" --access-mode single-node-single-writer
expect_eq "$(cat "$SW2/owner")" single-writer "the second target once the first is gone"
csi node-unpublish --volume-id csisw --target-path "$SW2"
[ -e "$SW2" ] && fail "$SW2 still exists after unpublish"

step "errors: unknown volume, incompatible publish"
csi_status node-publish --volume-id no-such-volume --target-path "$PODS/pod-c/volumes/x/mount"
expect_eq "$rc" 5 "status of publishing an unknown volume (NOT_FOUND)"
awk -v d="$PODS/pod-c/volumes/x/mount" '$2 == d { exit 1 }' /proc/mounts || fail "unknown volume got mounted"
csi_status node-publish --volume-id csivol@snap1 --target-path "$T"
expect_eq "$rc" 6 "status of publishing another volume over a published target (ALREADY_EXISTS)"

step "the plugin restarts with volumes published and still knows them"
csi_stop
is_mounted "$T" || fail "stopping the plugin unmounted the volume"
csi_start
csi node-publish --volume-id csivol --target-path "$T"
expect_eq "$(awk -v d="$T" '$2 == d' /proc/mounts | wc -l)" 1 "mounts at the target after a plugin restart and retry"
csi node-stats --volume-id csivol --volume-path "$T"

step "NodeUnpublishVolume unmounts and removes the target paths"
csi node-unpublish --volume-id csivol --target-path "$T"
is_mounted "$T" && fail "$T is still mounted"
[ -e "$T" ] && fail "$T still exists after unpublish"
csi node-unpublish --volume-id csivol@snap1 --target-path "$T2"
is_mounted "$T2" && fail "$T2 is still mounted"
[ -e "$T2" ] && fail "$T2 still exists after unpublish"
csi node-unpublish --volume-id csivol --target-path "$T"
echo "  a repeated unpublish succeeds"
grep -q "$SERVER:/csivol" /proc/mounts && fail "a csivol mount is left: $(grep csivol /proc/mounts)"

step "the data outlives the publish"
nfs_mount /csivol /mnt/check
expect_eq "$(sha256 /mnt/check/payload)" "$(sha256 /tmp/payload)" "payload after unpublish"
nfs_umount /mnt/check
csi_stop
echo "--- plugin log"
cat /tmp/csi.log
