# Builds the modstash binary and a small runtime image (used by docker-compose.yml).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/modstash /usr/local/bin/modstash
WORKDIR /var/lib/modstash
EXPOSE 3000
CMD ["modstash", "serve", "--listen", "0.0.0.0:3000"]
