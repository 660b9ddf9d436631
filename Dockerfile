# Multi-stage build on Debian 12 (bookworm-slim).
#   docker build -t estuary .
#   docker run --rm -p 8080:8080 -p 8000:8000/udp -p 8000:8000/tcp -p 1935:1935 -e CANDIDATE=<host IP> estuary
# With -e CANDIDATE the container advertises the host's address to WebRTC clients (mount a
# configuration with webrtc.candidates: ["$CANDIDATE"], or pass -c).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config git ca-certificates \
      libuv1-dev libwebsockets-dev libwebsockets-evlib-uv libssl-dev libyaml-dev libjansson-dev \
      libnice-dev libsrtp2-dev libavcodec-dev libswresample-dev libavutil-dev libopus-dev \
      libavformat-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DESTUARY_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr \
      -DCMAKE_INSTALL_SYSCONFDIR=/etc \
    && cmake --build build -j"$(nproc)" \
    && DESTDIR=/out cmake --install build

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libuv1 libwebsockets17 libwebsockets-evlib-uv libssl3 libyaml-0-2 libjansson4 \
      libnice10 libavcodec59 libswresample4 libavutil57 libopus0 libavformat59 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/estuary --create-home estuary
COPY --from=build /out/ /
USER estuary
WORKDIR /var/lib/estuary
EXPOSE 8080/tcp 8000/udp 8000/tcp 1935/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/estuary"]
CMD ["-c", "/etc/estuary/estuary.yaml"]
