# Latchkey: one binary serving SQLite (the default, under the /data volume) or PostgreSQL
# (set DATABASE_URL=postgres://...). compose.yaml runs it with PostgreSQL.
#
#   docker build -t latchkey .
#   docker run -p 8080:8080 -v latchkey-data:/data latchkey
#
# The build uses BuildKit cache mounts (the default builder of Docker 23+, and buildah's):
# the crate registry and target/ survive between builds, so a source change recompiles
# Latchkey alone, not its dependencies.

# --- build ------------------------------------------------------------------------------
# Debian 12, like the runtime stage: the binary links the same glibc and libpq.
FROM rust:1.95-slim-bookworm AS builder

# Versions are not pinned: Debian drops superseded point releases from its archive, so a
# pin breaks the build at the next security update; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
# The whole context (.dockerignore keeps out target/, .git and the clients): the crate
# compiles in data/ and migrations/, and copying file by file would go stale silently,
# since CI lints this file but cannot build it.
COPY . .
# The same build command CI and the README use; the binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked \
    && cp target/release/latchkey /usr/local/bin/latchkey

# --- run --------------------------------------------------------------------------------
FROM debian:bookworm-slim

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libpq5 \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged UID/GID, so that volume ownership and runAsNonRoot checks are
# predictable. /data is created and owned here, before VOLUME, so that a new volume
# starts out writable by it.
RUN groupadd --system --gid 10001 latchkey \
    && useradd --system --no-log-init --uid 10001 --gid latchkey \
       --home-dir /data --shell /usr/sbin/nologin latchkey \
    && mkdir /data \
    && chown latchkey:latchkey /data

COPY --from=builder /usr/local/bin/latchkey /usr/local/bin/latchkey

# The metrics listener keeps its default, 127.0.0.1:9090: inside the container, out of
# reach. A deployment with a scraper sets LATCHKEY_METRICS_BIND=0.0.0.0:9090 and keeps that
# port off the public network (compose.yaml: exposed to its network, not published).
ENV DATABASE_URL=/data/latchkey.db \
    LATCHKEY_BIND=0.0.0.0:8080

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# `latchkey healthcheck` GETs /healthz on LATCHKEY_BIND (the image has no curl); it needs
# no database and gives up after 3 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["latchkey", "healthcheck"]

ENTRYPOINT ["latchkey"]
CMD ["serve"]
