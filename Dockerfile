# syntax=docker/dockerfile:1
#
# Switchyard operator image: a statically linked (musl) `switchyard` binary on
# distroless/static, running as the non-root user 65532.
#
#   docker build -t ghcr.io/switchyard-io/switchyard:dev .
#
# Stages:
#   chef     Rust toolchain + musl target + cargo-chef (changes almost never)
#   planner  computes recipe.json: the workspace's manifests and lockfile,
#            stripped of source code
#   builder  builds the dependencies from recipe.json (a cached layer that is
#            reused while Cargo.toml/Cargo.lock do not change), then the crate
#   runtime  distroless/static:nonroot with only the binary

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS chef
# musl-gcc compiles the C parts of dependencies (ring, zstd-sys) for the musl
# target; rustc links the result statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
RUN cargo install cargo-chef --locked --version 0.1.78
ENV CARGO_TERM_COLOR=never \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is cached until the manifests or Cargo.lock
# change.
RUN cargo chef cook --release --locked --target x86_64-unknown-linux-musl \
      -p switchyard --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p switchyard --bin switchyard \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/switchyard /out/switchyard

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Kubernetes operator that turns routine MySQL DBA work into declarative custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/switchyard /usr/local/bin/switchyard
USER 65532:65532
# /metrics, /healthz, /readyz (switchyard run --metrics-addr 0.0.0.0:8080)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["run"]
