# Forge's container image: `forge server` (and `forge serve`) with the ONNX
# Runtime library inside, running as a non-root user.
#
#   docker build -t forge:latest .
#   docker run -p 7700:7700 -v forge-data:/var/lib/forge forge:latest
#
# `make image` builds the same image without Docker, as an OCI layout
# (cmd/forge-image): keep the last stage's paths, user, ENV, ports,
# ENTRYPOINT and CMD in step with internal/image.Config (TestDockerfileMatches).
#
# Blobs on S3 and metadata on PostgreSQL make the container disposable:
#   docker run -e FORGE_DB=postgres://... -e FORGE_BLOB=s3://bucket/prefix \
#     -e AWS_ACCESS_KEY_ID=... -e AWS_SECRET_ACCESS_KEY=... forge:latest

# 1. The binary (cgo: DuckDB is linked in, ONNX Runtime is loaded at run time).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/forge ./cmd/forge

# 2. ONNX Runtime from the npm tarball of onnxruntime-node, as
#    scripts/fetch-onnxruntime.sh fetches it (same version and sha256).
FROM node:22-bookworm-slim AS onnxruntime
ARG ORT_VERSION=1.30.0
ARG ORT_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
WORKDIR /tmp/ort
RUN npm pack --silent --ignore-scripts "onnxruntime-node@${ORT_VERSION}" >/dev/null \
	&& tar -xzf "onnxruntime-node-${ORT_VERSION}.tgz" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
	&& echo "${ORT_SHA256}  package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c - \
	&& mkdir -p /out && cp package/bin/napi-v6/linux/x64/libonnxruntime.so.1 /out/

# 3. The image: a small Debian, the two files, a user of its own.
FROM debian:bookworm-slim
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates tzdata \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 10001 forge \
	&& useradd --system --uid 10001 --gid forge --home-dir /var/lib/forge --shell /usr/sbin/nologin forge \
	&& mkdir -p /var/lib/forge && chown forge:forge /var/lib/forge
COPY --from=build /out/forge /usr/local/bin/forge
COPY --from=onnxruntime /out/libonnxruntime.so.1 /usr/local/lib/forge/libonnxruntime.so.1
ENV FORGE_ONNXRUNTIME_LIB=/usr/local/lib/forge/libonnxruntime.so.1 \
	FORGE_DATA_DIR=/var/lib/forge \
	FORGE_ADDR=0.0.0.0:7700 \
	FORGE_GRPC_ADDR=0.0.0.0:7701
USER 10001:10001
WORKDIR /var/lib/forge
VOLUME /var/lib/forge
EXPOSE 7700 7701
ENTRYPOINT ["/usr/local/bin/forge"]
CMD ["server"]
