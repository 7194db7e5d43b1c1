# syntax=docker/dockerfile:1
# Scimitar in a container: built on the Rust image, run on Debian slim as a non-root user.
# SQLite, libpq and OpenSSL are compiled into the binary, so the runtime needs no library
# beyond glibc; ca-certificates is there for https webhook receivers.
#
#   docker build -t scimitar .
#   docker run -p 8080:8080 -v scimitar-data:/data \
#     -e SCIMITAR_BASE_URL=https://scim.example.com/scim/v2 scimitar
#
# See docs/deploying.md.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin scimitar \
    && strip target/release/scimitar

FROM debian:bookworm-slim
# ca-certificates follows the Debian release (security updates); a pinned version would
# stop building once the archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 scimitar \
    && useradd --system --uid 10001 --gid scimitar --home-dir /data --shell /usr/sbin/nologin scimitar \
    && mkdir -p /data \
    && chown scimitar:scimitar /data
COPY --from=builder /src/target/release/scimitar /usr/local/bin/scimitar
# Inside the container only: publish the port to choose who may reach it.
ENV SCIMITAR_LISTEN=0.0.0.0:8080 \
    SCIMITAR_DATABASE_URL=sqlite:///data/scimitar.db \
    SCIMITAR_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080
# Liveness through bash's /dev/tcp (the image has no curl): HTTP 200 from /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/scimitar"]
CMD ["serve"]
