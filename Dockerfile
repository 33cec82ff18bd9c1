# portcullis container image: a static-ish release binary on a small Debian base,
# running as a non-root user, with its config mounted at /etc/portcullis.
#
#   docker build -t portcullis .
#   docker run --rm -p 8080:8080 -v "$PWD/config:/etc/portcullis:ro" portcullis
#
# The config path is /etc/portcullis/portcullis.toml ($PORTCULLIS_CONFIG); mount a
# folder (or a Kubernetes ConfigMap) there. Files the config references are resolved
# relative to that folder. The folder is watched, so ConfigMap updates are reloaded.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin portcullis

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid portcullis --no-create-home --shell /usr/sbin/nologin portcullis \
    && mkdir -p /etc/portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
COPY config/example.toml /etc/portcullis/portcullis.example.toml
ENV PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml \
    RUST_LOG=info
USER 10001:10001
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run"]
