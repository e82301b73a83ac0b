# Runs in the guest as `sh /share/job/start.sh` (from /init): one workload, its log and exit
# status go back to the host through the share.
. /share/job/env
export WORKLOAD NFS_PORT ADMIN_PORT GUEST_TIMEOUT
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export NO_COLOR=1
cd /tmp
T0=$(cut -d' ' -f1 /proc/uptime)
echo "guest: running $WORKLOAD (timeout ${GUEST_TIMEOUT}s)" > /dev/console
timeout -s KILL "$GUEST_TIMEOUT" sh -c '
    set -u
    . /share/job/lib.sh
    trap on_exit EXIT
    . /share/job/workload.sh
    WORKLOAD_DONE=1
' > /share/job/log 2>&1 < /dev/null
rc=$?
if [ "$rc" != 0 ]; then
    {
        [ "$rc" = 137 ] && echo "guest: workload killed after ${GUEST_TIMEOUT}s"
        echo "guest: exit status $rc; kernel messages since the workload started:"
        dmesg | awk -v t0="$T0" '{ ts = substr($0, 2, index($0, "]") - 2) + 0; if (ts >= t0) print }' |
            tail -n 60
        echo "guest: mounts:"
        grep -E ' (nfs|nfs4) ' /proc/mounts
    } >> /share/job/log 2>&1
fi
echo "$rc" > /share/job/rc.tmp && mv /share/job/rc.tmp /share/job/rc
echo "guest: $WORKLOAD exited $rc" > /dev/console
