#!/usr/bin/env bash
# One command for the NFS benchmark: builds slatefs and the benchmark (release), installs the
# peers, runs every workload against slatefs (sync, async), nfs-ganesha, ZeroFS and the disk in
# one private network + mount namespace (nfs-ganesha needs rpcbind; a tmpfs on /run keeps it
# away from the host's), and prints the tables. The S3 rows run slatefs (sync, async) and ZeroFS
# on the tests' S3 server (tests/support/s3_test_server.rs, a process in the same namespace),
# with the requests it received per workload.
#
#   scripts/bench.sh [--quick] [--stores local|s3|all] [--write] [--no-install] [-- NFSBENCH-ARGS...]
#
#   --quick       ~10x smaller sizes (smoke run)
#   --stores      local: disk, ganesha and the servers on local stores; s3: the S3 rows; all (default)
#   --write       also put the machine description and the tables into BENCHMARKS.md (between
#                 the RESULTS markers)
#   --no-install  do not run scripts/install-peers.sh
# Anything after -- goes to the benchmark (`cargo bench --bench nfsbench -- --help`).
#
#   scripts/bench.sh cluster [--s3] [-- CLUSTERBENCH-ARGS...]
#
# Many servers on one store (benches/clusterbench): three slatefs serve processes, the cost of a
# hop, two writers, failover, latency under snapshots; on a local store, or with --s3 on the
# tests' S3 server (`cargo bench --bench clusterbench -- --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${1:-}" = cluster ]; then
    shift
    cargs=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --s3) cargs+=(--s3) ;;
            --) shift; cargs+=("$@"); break ;;
            *) echo "unknown option $1 (scripts/bench.sh cluster [--s3] [-- ARGS])" >&2; exit 2 ;;
        esac
        shift
    done
    echo "== build" >&2
    cargo build --release --bin slatefs >&2
    exe=$(cargo bench --bench clusterbench --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*clusterbench[^"]*"' | tail -1 | sed 's/"executable":"\(.*\)"/\1/')
    [ -x "$exe" ] || { echo "cannot find the clusterbench executable" >&2; exit 1; }
    # Private copies: others may rebuild target/ while the benchmark runs.
    work=$(mktemp -d /var/tmp/clusterbench.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    cp target/release/slatefs "$work/slatefs"
    cp "$exe" "$work/clusterbench"
    echo "== run" >&2
    SLATEFS_BIN="$work/slatefs" TMPDIR="$work" "$work/clusterbench" "${cargs[@]}"
    echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); memory $(free -h | awk '/^Mem:/ {print $2}')"
    echo "- Kernel: $(uname -r); load at the end: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
    echo "- slatefs $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted changes in src/')"
    exit 0
fi

quick=() stores=all write=0 install=1 extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--quick) ;;
        --stores)
            shift
            case "${1:-}" in local|s3|all) stores=$1 ;; *) echo "--stores takes local, s3 or all" >&2; exit 2 ;; esac ;;
        --write) write=1 ;;
        --no-install) install=0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

echo "== build" >&2
cargo build --release --bin slatefs >&2
if [ "$stores" != local ]; then
    cargo build --release --example s3_test_server >&2
fi
bench_exe=$(cargo bench --bench nfsbench --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*nfsbench[^"]*"' | tail -1 | sed 's/"executable":"\(.*\)"/\1/')
[ -x "$bench_exe" ] || { echo "cannot find the nfsbench executable" >&2; exit 1; }

if [ $install -eq 1 ]; then
    echo "== peers" >&2
    scripts/install-peers.sh >&2 || echo "some peers could not be installed: they are reported missing" >&2
fi

# Private copies: others may rebuild target/ while the benchmark runs.
work=$(mktemp -d /var/tmp/nfsbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp target/release/slatefs "$work/slatefs"
cp "$bench_exe" "$work/nfsbench"
if [ "$stores" != local ]; then
    cp target/release/examples/s3_test_server "$work/s3_test_server"
fi
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:/sbin"

machine() {
    echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- Memory: $(free -h | awk '/^Mem:/ {print $2}') total"
    local dev
    dev=$(df --output=source /var/tmp | tail -1)
    echo "- Disk: $dev ($(df -h --output=fstype,size /var/tmp | tail -1 | xargs)), $(lsblk -dno ROTA "$dev" 2>/dev/null | sed 's/1/rotational/;s/0/non-rotational/' || echo unknown)"
    echo "- Kernel: $(uname -r); load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
    echo "- slatefs $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted changes in src/'); zerofs: $(zerofs --version 2>/dev/null || echo missing); ganesha: $(dpkg-query -W -f='${Version}' nfs-ganesha 2>/dev/null || echo missing)"
}

echo "== run (one network + mount namespace)" >&2
{ machine; echo; } > "$work/machine.md"
unshare --net --mount --fork bash -c '
    set -e
    ip link set lo up
    mount -t tmpfs tmpfs /run
    exec "$0" "$@"' \
    "$work/nfsbench" --slatefs "$work/slatefs" --s3-server "$work/s3_test_server" --stores "$stores" \
    --work "$work/data" --out "$work/results.md" "${quick[@]}" "${extra[@]}"

cat "$work/machine.md"

if [ $write -eq 1 ]; then
    cmd="scripts/bench.sh${quick:+ --quick}$([ "$stores" = all ] || echo " --stores $stores")${extra:+ -- ${extra[*]}}"
    {
        echo "<!-- BEGIN RESULTS (written by scripts/bench.sh --write) -->"
        echo
        echo "Command: \`$cmd\`"
        echo
        cat "$work/machine.md" "$work/results.md"
        echo
        echo "<!-- END RESULTS -->"
    } > "$work/section.md"
    if [ -f BENCHMARKS.md ] && grep -q '<!-- BEGIN RESULTS' BENCHMARKS.md; then
        awk -v sec="$work/section.md" '
            /<!-- BEGIN RESULTS/ { while ((getline l < sec) > 0) print l; skip=1; next }
            /<!-- END RESULTS/ { skip=0; next }
            !skip { print }' BENCHMARKS.md > "$work/B.md"
        cp "$work/B.md" BENCHMARKS.md
    else
        { echo "# Benchmarks"; echo; cat "$work/section.md"; } >> BENCHMARKS.md
    fi
    echo "== BENCHMARKS.md updated" >&2
fi
