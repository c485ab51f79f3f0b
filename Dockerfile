# Dockerfile: rosimd on debian:bookworm-slim.
#
#   docker build -t rosim .
#   docker run -p 8080:8080 -v rosim-models:/var/lib/rosim/models \
#              -v rosim-data:/var/lib/rosim/data rosim
#
# The build stage runs the same scripts/setup.sh as the README; the runtime
# stage has only the shared libraries.  Without a model in the models
# volume, rosimd creates a random demo model on first start (and says so);
# put a real checkpoint in /var/lib/rosim/models/roformer-sim.

FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN sh scripts/setup.sh --build-only \
    && make -j"$(nproc)" \
    && make install PREFIX=/opt/rosim DESTDIR=/out

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libmicrohttpd12 libjansson4 libopenblas0-pthread libsqlite3-0 libinih1 \
        libsystemd0 libutf8proc2 libgomp1 libdnnl2 libstdc++6 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/rosim --create-home --shell /usr/sbin/nologin rosim \
    && mkdir -p /var/lib/rosim/models /var/lib/rosim/data \
    && chown -R rosim:rosim /var/lib/rosim
COPY --from=build /out/opt/rosim /opt/rosim
USER rosim
WORKDIR /var/lib/rosim
VOLUME ["/var/lib/rosim/models", "/var/lib/rosim/data"]
EXPOSE 8080
ENV OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/opt/rosim/bin/rosimd", "-c", "/opt/rosim/etc/rosim/rosimd.conf", \
            "--listen", "0.0.0.0:8080", "--model", "/var/lib/rosim/models/roformer-sim", \
            "--data", "/var/lib/rosim/data"]
