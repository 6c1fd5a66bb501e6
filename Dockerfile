# syntax=docker/dockerfile:1
#
# Container image for vault-csi, the Vault/OpenBao provider for the Secrets
# Store CSI driver.
#
# Build for the local machine's architecture (BuildKit, the default builder in
# current Docker releases, is needed for the cache mount below):
#
#   docker build -t vault-csi:0.1.0 .
#
# Build one multi-architecture image and push it to a registry (a plain
# `docker build` cannot hold a multi-platform result locally, hence --push):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#       -t registry.example.com/vault-csi:0.1.0 --push .
#
# Each platform compiles natively inside its own builder container.  A platform
# that differs from the build host's runs under QEMU user-mode emulation
# (`docker run --privileged --rm tonistiigi/binfmt --install arm64` once sets
# that up), which is correct but many times slower than a native build; a
# builder node per architecture (`docker buildx create --append ...`) avoids
# the emulation.

ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

# ---------------------------------------------------------------------------
# Builder: the official Rust image.  Its gcc is all the C toolchain the build
# needs (aws-lc-sys compiles its C sources with the `cc` crate), and no protoc
# is needed either: build.rs parses proto/service.proto with protox.  Builder
# and runtime are both Debian 12 (bookworm), so the binary links against the
# same glibc it runs with.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# Only what the build reads; .dockerignore keeps the context to these too.
# examples/ is compiled in: the `demo` subcommand embeds its
# SecretProviderClass with include_str!.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY examples ./examples
COPY src ./src

# --locked: build exactly the dependency versions in Cargo.lock, and fail
# instead of silently resolving new ones.  The registry cache mount only speeds
# up rebuilds; the binary itself stays in the image layer so it can be copied
# out below.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin vault-csi

# ---------------------------------------------------------------------------
# Runtime: distroless "cc" (glibc, libgcc, CA certificates, no shell, no
# package manager).  The CA bundle is what Vault's TLS certificate is verified
# against unless a SecretProviderClass or flag names its own CA.
FROM ${RUNTIME_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="vault-csi" \
      org.opencontainers.image.description="A Vault/OpenBao provider for the Kubernetes Secrets Store CSI driver" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# The binary is installed under two names.  /bin/vault-csi is ours;
# /bin/vault-csi-provider is the path HashiCorp's image uses, so manifests or
# Helm values that set `command: [/bin/vault-csi-provider]` keep working when
# only the image is swapped.  Distroless has no shell, so a `RUN ln -s` is not
# possible in this stage; copying the file a second time costs one more copy of
# the (stripped) binary in the layer and nothing else.
COPY --from=builder /src/target/release/vault-csi /bin/vault-csi
COPY --from=builder /src/target/release/vault-csi /bin/vault-csi-provider

# Runs as root (uid 0) on purpose: the provider creates its socket in the
# node's hostPath directory /var/run/secrets-store-csi-providers, which is
# root-owned, and the CSI driver (also root) connects to it there.  The
# DaemonSet in deploy/ takes away everything else: read-only root filesystem,
# no privilege escalation, all capabilities dropped, RuntimeDefault seccomp.
USER 0:0

ENTRYPOINT ["/bin/vault-csi"]
CMD ["--endpoint=/provider/vault.sock"]
