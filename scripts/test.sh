#!/usr/bin/env bash
# Runs every test slatefs has: the Rust suites (engine over NFS, catalog and CLI, CSI, S3,
# Kubernetes packaging) and the end-to-end suite through the Linux kernel's NFS client in a VM.
# Installs what the tests need on a Debian machine first (skipped when already present).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each part prints how long it took (CI has a time limit; this shows where it goes).
started=$SECONDS
part_started=$SECONDS
part() {
  echo "== [$((SECONDS - part_started)) s for the previous part, $((SECONDS - started)) s in all] $*"
  part_started=$SECONDS
}

# The VM suite installs its own packages (qemu, a Debian kernel, busybox, nfs-common) when
# they are missing; the Rust suites need the Helm engine, the Prometheus parser and, for the web
# console's browser test, Chromium and Selenium.
if ! python3 -c "import helm_python" 2>/dev/null; then
  part "installing the Helm engine (helm-python-sdk)"
  python3 -m pip install -q helm-python-sdk==0.2.2
fi
# The metrics tests parse /metrics pages with the Prometheus text-format parser.
if ! python3 -c "import prometheus_client" 2>/dev/null; then
  echo "== installing the Prometheus text-format parser (prometheus-client)"
  python3 -m pip install -q prometheus-client==0.26.0
fi

# The web console's browser test (tests/web.rs, web_browser): Debian's headless Chromium and
# its WebDriver, driven through Selenium.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  part "installing chromium and chromium-driver (the web console's browser test)"
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver
fi
if ! python3 -c "import selenium" 2>/dev/null; then
  part "installing selenium"
  python3 -m pip install -q selenium==4.51.0
fi

part "cargo test --release"
cargo test --release

part "the engine, CSI, dataset, snapshot, cluster and policy suites again, on a real S3 server (s3s on 127.0.0.1) instead of a local directory"
SLATEFS_TEST_STORE=s3 cargo test --release --test nfs_engine
SLATEFS_TEST_STORE=s3 cargo test --release --test csi
SLATEFS_TEST_STORE=s3 cargo test --release --test datasets
SLATEFS_TEST_STORE=s3 cargo test --release --test snapshot_contents --test clone_cost
# Removed data leaving the store (quiet-tree merge) as S3 lists it: about 20 s.
SLATEFS_TEST_STORE=s3 cargo test --release --test collection_snapshots
# Blocks stored compressed on S3 too, and readable across a codec switch: a few seconds.
SLATEFS_TEST_STORE=s3 cargo test --release --test compression --test small_writes
# The store's layout-format marker written and checked through S3's conditional PUT: a second.
SLATEFS_TEST_STORE=s3 cargo test --release --test store_format
SLATEFS_TEST_STORE=s3 cargo test --release --test cluster
SLATEFS_TEST_STORE=s3 cargo test --release --test policies --test cluster_policies

part "kernel NFS client suite (qemu)"
tests/vm/run.sh
part "done"
