# Dockerfile: rosimd on debian:bookworm-slim.
#
#   docker build -t rosim .
#   docker run -d --name rosim -p 8080:8080 -v rosim-data:/var/lib/rosim/data rosim
#
# The build stage installs the packages first (scripts/setup.sh --build-only,
# a layer that is rebuilt only when setup.sh changes), then copies the
# sources and builds them with PREFIX=/opt/rosim, so `rosimd -t` in the
# container finds /opt/rosim/etc/rosim/rosimd.conf.  The runtime stage has
# only the shared libraries and runs as user rosim, uid 999 / gid 999.
#
# Configuration: ROSIM_<SECTION>_<KEY> environment variables (docker run -e),
# or `-o section.key=value` arguments after the image name; see the README.
# Data: the collections live in the volume /var/lib/rosim/data.  The model
# is /var/lib/rosim/models/roformer-sim: without one rosimd stops, unless
# -e ROSIM_MODEL_DEMO_IF_MISSING=yes asks for a random demo model (created
# inside the container on start; the log says so); mount a real checkpoint
# there read-only (-v /srv/roformer-sim:/var/lib/rosim/models/roformer-sim:ro).
# A bind mount must be writable by uid 999 (chown 999:999 DIR).
#
# Stopping: `docker stop` sends SIGTERM and kills after 10 s.  The image
# sets [server] shutdown_timeout to 8 s so that requests in flight and the
# index snapshots fit in that; to give them longer, raise both:
# `-e ROSIM_SERVER_SHUTDOWN_TIMEOUT=60` with `docker stop -t 70` (compose:
# stop_grace_period: 70s).

ARG PREFIX=/opt/rosim

FROM debian:bookworm-slim AS build
ARG PREFIX
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN apt-get update && apt-get install -y --no-install-recommends make ca-certificates \
    && sh scripts/setup.sh --build-only \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# The packages are those of the layer above, whatever the lock file of the
# API tests (which setup.sh also watches) says: setup is done.
RUN touch build/.setup-done \
    && make -j"$(nproc)" PREFIX="$PREFIX" \
    && make install PREFIX="$PREFIX" DESTDIR=/out

FROM debian:bookworm-slim
ARG PREFIX
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rosim" \
      org.opencontainers.image.description="RoFormer-Sim sentence vectors, similarity, semantic search and paraphrase generation over HTTP" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# The shared libraries rosimd and rosim need (scripts/runtime-packages, also
# used by scripts/systemd-test.sh), and curl for the health check.
COPY scripts/runtime-packages /tmp/runtime-packages
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(cat /tmp/runtime-packages) \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
    && groupadd --system --gid 999 rosim \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/rosim --create-home \
        --shell /usr/sbin/nologin rosim \
    && mkdir -p /var/lib/rosim/models /var/lib/rosim/data \
    && chown -R rosim:rosim /var/lib/rosim
COPY --from=build /out$PREFIX $PREFIX
USER 999:999
WORKDIR /var/lib/rosim
VOLUME ["/var/lib/rosim/data"]
EXPOSE 8080
ENV PATH="$PREFIX/bin:$PATH" \
    OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1 \
    ROSIM_SERVER_LISTEN=0.0.0.0:8080 \
    ROSIM_SERVER_SHUTDOWN_TIMEOUT=8 \
    ROSIM_MODEL_DIR=/var/lib/rosim/models/roformer-sim \
    ROSIM_STORAGE_DATA=/var/lib/rosim/data
STOPSIGNAL SIGTERM
# Probes are logged at debug level only, so they do not fill the log.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["rosimd"]
