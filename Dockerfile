# syntax=docker/dockerfile:1
#
# The `polyscale` binary in a small image: one image for every role of a
# distributed deployment (`polyscale serve --services NAME`, `polyscale
# gateway`, `polyscale keys generate`) and for the all-in-one `polyscale
# serve`. See docker-compose.yml and deploy/.
#
#   DOCKER_BUILDKIT=1 docker build -t polyscale:local .
#
# The host crate's build script (host/build.rs, guest-build/) builds the
# domain components from plugins/ for wasm32-wasip2 and embeds them, so the
# whole workspace is the build context (wit/, plugins/, guest-build/, ...;
# .dockerignore leaves out build output and data).

# The workspace's rust-version (Cargo.toml) is the floor.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# The guests' target (the build script would add it too, on every build).
RUN rustup target add wasm32-wasip2
COPY . .
# Cache mounts: the crates.io downloads (the host's and the guests'
# workspaces) and the target directory, whose `wasm-components/` holds the
# guest build. The binary is copied out of the cache mount before the step
# ends.
RUN --mount=type=cache,id=polyscale-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=polyscale-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=polyscale-target,target=/src/target,sharing=locked \
    cargo build --release -p polyscale --locked \
    && install -D -m 0755 target/release/polyscale /out/polyscale

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: TLS to Elasticsearch and the like; curl: the compose
# healthchecks (Kubernetes probes need nothing in the image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A fixed, non-root uid (Kubernetes' runAsNonRoot checks it is numeric).
# /var/lib/polyscale is the data directory (compile cache; SQLite files in
# the all-in-one mode); /keys is where `polyscale keys generate` writes in
# docker-compose.yml: a named volume mounted there starts owned by this user.
RUN groupadd --system --gid 10001 polyscale \
    && useradd --system --uid 10001 --gid polyscale --no-create-home \
       --home-dir /var/lib/polyscale --shell /usr/sbin/nologin polyscale \
    && install -d -o polyscale -g polyscale -m 0700 /var/lib/polyscale /keys
COPY --from=builder /out/polyscale /usr/local/bin/polyscale
# Listen on the container's interfaces (the defaults are loopback), keep
# data in the data directory. POLYSCALE_ADMIN is not a configuration key:
# it is where the admin commands (`polyscale component list`, ...) look for
# the admin plane, here the all-in-one default socket.
ENV POLYSCALE_DATA_DIR=/var/lib/polyscale \
    POLYSCALE_LISTEN=0.0.0.0:8080 \
    POLYSCALE_GRPC_LISTEN=0.0.0.0:50051 \
    POLYSCALE_METRICS_LISTEN=0.0.0.0:9464 \
    POLYSCALE_ADMIN=unix:/var/lib/polyscale/admin.sock
USER 10001:10001
WORKDIR /var/lib/polyscale
# GraphQL (gateway), gRPC (services), metrics and probes.
EXPOSE 8080 50051 9464
ENTRYPOINT ["polyscale"]
CMD ["serve"]
