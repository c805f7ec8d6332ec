# Runner image for tollgate: the docker credential helper, `tollgate` (proxy,
# refresh, check, doctor) and what a Spacelift runner needs around them.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t tollgate .
#   docker run --rm -p 127.0.0.1:5000:5000 tollgate       # the proxy, as a sidecar
#   docker run --rm tollgate refresh --registry HOST ...  # any other subcommand
#
# Publish the port on the host's loopback only: the proxy authenticates no
# client and, in private mode, pulls with this host's credentials.
#
# Base images are named by exact version. To pin them by digest as well (the
# tag stays for humans, the digest is what is pulled), resolve each tag once
# and append it:
#
#   docker buildx imagetools inspect golang:1.26.8-bookworm --format '{{json .Manifest.Digest}}'
#   FROM golang:1.26.8-bookworm@sha256:<digest> AS build
#
# (or `crane digest golang:1.26.8-bookworm`, or `skopeo inspect --format
# '{{.Digest}}' docker://golang:1.26.8-bookworm`). Renovate and Dependabot keep
# tag@digest pairs up to date. See docs/runner-image.md.

# ---- build stage: fetches Go modules and nothing else -----------------------
FROM golang:1.26.8-bookworm AS build

ARG VERSION=devel
ENV CGO_ENABLED=0 \
    GOFLAGS=-buildvcs=false

WORKDIR /src

# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
# Same packages as the tests build: every command under ./cmd/ (tollgate and
# docker-credential-tollgate), static, without local paths, version stamped.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out && \
    CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/spacelift-io/tollgate/internal/buildinfo.Version=${VERSION}" \
        -o /out/ ./cmd/...

# ---- runtime stage ----------------------------------------------------------
# Debian 12 (bookworm) point release 12.12, slim variant.
FROM debian:12.12-slim

# procps: `ps`, which runner images must have. ca-certificates: TLS to
# registries and AWS.
RUN apt-get update && \
    apt-get install -y --no-install-recommends procps ca-certificates && \
    rm -rf /var/lib/apt/lists/*

# The runner user. UID/GID 1983 is what Spacelift runs workers as.
RUN groupadd --gid 1983 spacelift && \
    useradd --uid 1983 --gid 1983 --create-home --home-dir /home/spacelift --shell /bin/bash spacelift

COPY --from=build /out/ /usr/local/bin/

# Docker (and every client that reads a docker config) asks the helper
# `docker-credential-tollgate` for every registry. Logins that operators add
# live in SPACELIFT_DOCKER_CONFIG_DIR, not here.
RUN install -d -m 0700 -o spacelift -g spacelift /home/spacelift/.docker && \
    printf '{"credsStore":"tollgate"}\n' > /home/spacelift/.docker/config.json && \
    chown spacelift:spacelift /home/spacelift/.docker/config.json && \
    chmod 0600 /home/spacelift/.docker/config.json

ENV HOME=/home/spacelift
WORKDIR /home/spacelift
USER 1983

# As a sidecar the image runs the proxy on all interfaces of its pod or
# network namespace; any other subcommand replaces CMD.
EXPOSE 5000
ENTRYPOINT ["tollgate"]
CMD ["proxy", "--listen", "0.0.0.0:5000"]
