# The Pulp image: `pulp run` as a non-root user, the admin listener on :9090 for
# probes, HEALTHCHECK through `pulp health` (no curl in the image).
#
#   docker build -t pulp .
#   docker run -p 8080:8080 -v "$PWD/examples/heartbeat:/plugins:ro" pulp
#
# Base images are build arguments: the defaults come from Docker Hub and gcr.io.
# Where no registry is reachable (this project's CI), deploy/docker/build-local makes
# both from the machine itself and passes PREBUILT, the path of a `pulp` binary
# inside the build context, which the build stage then uses instead of compiling.
# Plugins are mounted at /plugins, or copied in by an image built FROM this one:
#
#   FROM pulp
#   COPY my-plugin/ /plugins/
ARG BUILDER=rust:1-bookworm
ARG RUNTIME=gcr.io/distroless/cc-debian12

FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
ARG PREBUILT=
RUN if [ -n "$PREBUILT" ]; then \
        cp "$PREBUILT" /pulp; \
    else \
        cargo build --release --locked -p pulp-host --bin pulp && \
        cp target/release/pulp /pulp && strip /pulp; \
    fi && \
    mkdir -p /out/var/lib/pulp /out/var/cache/pulp /out/plugins

FROM ${RUNTIME}
COPY --from=build /pulp /usr/local/bin/pulp
COPY --from=build --chown=10001:10001 /out/ /
USER 10001:10001
ENV PULP_STORAGE_ROOT=/var/lib/pulp \
    PULP_CACHE_DIR=/var/cache/pulp \
    PULP_LISTEN=0.0.0.0:8080 \
    PULP_ADMIN=0.0.0.0:9090 \
    NO_COLOR=1
WORKDIR /plugins
EXPOSE 8080 9090
VOLUME ["/var/lib/pulp"]
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["pulp", "health", "127.0.0.1:9090"]
# `docker stop` sends SIGTERM: the plugins get --stop-grace-ms (5 s) to finish, within
# Docker's default 10 s.
ENTRYPOINT ["pulp", "run"]
CMD ["/plugins/pulp.plugin.toml"]
