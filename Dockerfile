# syntax=docker/dockerfile:1
#
# The gateway's container image: built on the official Rust image, run on distroless (glibc and
# libgcc, no shell, no package manager) as a non-root user.
#
#   docker build -t sse-gateway .
#   docker run --rm -p 8080:8080 sse-gateway        # demo mode: prints a URL and tokens
#
# Every setting is an environment variable (docs/configuration.md).

# The toolchain CI builds and tests with (rust-toolchain.toml), which is also the workspace's rust-version.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Only what the build reads. Every workspace member's manifest is needed to resolve the
# workspace, so loadtest is copied too, though only the gateway is built.
COPY Cargo.toml Cargo.lock ./
COPY shared shared
COPY gateway gateway
COPY loadtest loadtest
# The caches keep downloaded crates and compiled dependencies between builds; the binary is
# copied out of the cached target directory, which is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway \
    && cp target/release/gateway /usr/local/bin/gateway

# Debian 12, as the builder, so the binary finds the glibc it was linked against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /usr/local/bin/gateway /usr/local/bin/gateway
# The image's "nonroot" user, by number so that an orchestrator can verify it is not root.
USER 65532:65532
# 8080: clients (/events, /publish, the demo page). 9090: /metrics, /healthz and /readyz when
# GATEWAY_METRICS_ADDR=0.0.0.0:9090 is set (otherwise they are served on 8080).
EXPOSE 8080 9090
# The image has no curl: the binary probes its own /healthz (on GATEWAY_LISTEN_ADDR, over
# loopback) and exits 0 or 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/gateway", "healthcheck", "--timeout", "2s"]
# SIGTERM starts the graceful drain (docs/operations.md, "Running a node"); give it GATEWAY_SHUTDOWN_GRACE
# (10 s by default) plus a margin before the runtime sends SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
