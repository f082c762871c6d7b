# grail's service binaries on Debian 12 (the same packages `make deps` installs).
#   docker build -t grail:latest .
FROM debian:12 AS build
WORKDIR /src
COPY tools/install_deps.sh tools/install_deps.sh
RUN bash tools/install_deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build JOBS=4 && mkdir -p /opt/grail && cp -r build/bin /opt/grail/bin

FROM debian:12
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libtorch1.13 libopenblas0-openmp libgrpc++1.51 libprotobuf32 libyaml-cpp0.7 libabsl20220623 \
      libprometheus-cpp-core1.0 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/grail /opt/grail
COPY deploy /opt/grail/deploy
USER 65534:65534
ENTRYPOINT []
