# The controller image for those who build with Docker or BuildKit. `make
# image` builds the same image without a container engine (image/build.sh).
#
#   docker build -t siskin/controller .
#
# A static binary, so the final stage needs no libc: only the binary, the CA
# bundle (webhooks and metric providers over TLS) and a passwd entry for the
# non-root user 65532.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --bin siskin \
 && cp target/x86_64-unknown-linux-gnu/release/siskin /siskin

FROM debian:bookworm-slim AS base
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >>/etc/passwd \
 && echo 'nonroot:x:65532:' >>/etc/group

FROM scratch
COPY --from=base /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=base /etc/passwd /etc/group /etc/
COPY --from=build /siskin /siskin
USER 65532:65532
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/siskin"]
CMD ["controller"]
