#!/usr/bin/env bash
# Installs the benchmark peers (idempotent): nfs-ganesha with the VFS FSAL and rpcbind (apt),
# ZeroFS 0.19.1 (cargo install, ~5 min), perf when available. A peer that cannot be installed is
# reported here and shows up as "missing" in the benchmark table.
set -u
ZEROFS_VERSION=0.19.1
status=0

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pkgs=()
for p in nfs-ganesha nfs-ganesha-vfs rpcbind iproute2 util-linux; do
    have_pkg "$p" || pkgs+=("$p")
done
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "install-peers: apt-get install ${pkgs[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; }; then
        echo "install-peers: apt install failed; nfs-ganesha will be reported missing" >&2
        status=1
    fi
else
    echo "install-peers: nfs-ganesha, nfs-ganesha-vfs, rpcbind already installed"
fi
# Debian's package starts a ganesha service on install; the benchmark runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q nfs-ganesha 2>/dev/null; then
    systemctl stop nfs-ganesha || true
fi

zerofs_bin="${CARGO_HOME:-$HOME/.cargo}/bin/zerofs"
if [ -x "$zerofs_bin" ] && "$zerofs_bin" --version 2>/dev/null | grep -q "$ZEROFS_VERSION"; then
    echo "install-peers: zerofs $ZEROFS_VERSION already installed"
else
    echo "install-peers: cargo install zerofs --version $ZEROFS_VERSION (takes minutes)"
    # A target dir of its own: no lock contention with the project's build.
    if ! CARGO_TARGET_DIR="${TMPDIR:-/tmp}/zerofs-target" cargo install zerofs --version "$ZEROFS_VERSION" --locked; then
        echo "install-peers: cargo install zerofs failed; ZeroFS will be reported missing" >&2
        status=1
    fi
fi
exit $status
