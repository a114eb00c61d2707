# reposync in a container: the server, with git and OpenSSH's client for its built-in
# delegate, running as an unprivileged user, its data directory a volume.
#
#   docker build -t reposync .
#   docker run -p 8080:8080 -v reposync-data:/var/lib/reposync \
#     -e REPOSYNC_PUBLIC_URL=https://reposync.example.com reposync

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p reposync-cli

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/reposync --create-home reposync
COPY --from=build /src/target/release/reposync /usr/local/bin/reposync
USER reposync
WORKDIR /var/lib/reposync
# The store, the master key and the built-in delegate's clones: back up the first two.
VOLUME ["/var/lib/reposync"]
ENV REPOSYNC_DATA_DIR=/var/lib/reposync/data \
    REPOSYNC_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["reposync"]
CMD ["serve"]
