# syntax=docker/dockerfile:1
# The slatefs image: the release binary on Debian bookworm-slim, with nfs-common for mount.nfs,
# which the CSI node plugin runs to mount datasets. One image serves all three roles of the Helm
# chart (controller, node plugin, dataset server).
#
#   docker build -t ghcr.io/slatefs/slatefs:0.1.0 .
#
# tests/k8s_packaging.rs checks this file against Cargo.toml and the chart.

# The crate's rust-version (Cargo.toml).
ARG RUST_VERSION=1.95
# The crate's version (Cargo.toml); the build fails when they differ.
ARG SLATEFS_VERSION=0.1.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
ARG SLATEFS_VERSION
WORKDIR /src
# .dockerignore admits only what the build reads: Cargo.toml, Cargo.lock, build.rs, proto/, src/
# (and benches/ and tests/, should Cargo.toml declare targets there).
COPY . .
RUN cargo_version="$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { print $2; exit }' Cargo.toml)" \
    && if [ "$cargo_version" != "$SLATEFS_VERSION" ]; then \
         echo "SLATEFS_VERSION=$SLATEFS_VERSION but Cargo.toml says $cargo_version" >&2; exit 1; \
       fi
# The same build as CI's: release profile, the locked dependency set.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/slatefs /out/slatefs

FROM docker.io/library/debian:bookworm-slim AS runtime
ARG SLATEFS_VERSION
# nfs-common: mount.nfs; mount: mount(8)/umount(8), which the node plugin runs;
# ca-certificates: TLS to object storage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nfs-common mount ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/slatefs /usr/local/bin/slatefs
LABEL org.opencontainers.image.title="slatefs" \
      org.opencontainers.image.description="Kubernetes CSI driver and NFS server: every volume a SlateDB filesystem on object storage" \
      org.opencontainers.image.version="${SLATEFS_VERSION}" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.source="https://github.com/slatefs/slatefs"
ENTRYPOINT ["/usr/local/bin/slatefs"]
