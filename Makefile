# Forge: the two commands of the README, and the pieces they are made of.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
FORGE_CACHE ?= $(HOME)/.cache/forge
export FORGE_ONNXRUNTIME_LIB ?= $(FORGE_CACHE)/onnxruntime/1.30.0/libonnxruntime.so.1
ADDR ?= 127.0.0.1:7700
DATA ?= ./forge-data

.PHONY: quickstart setup setup-test build test test-go test-python fuzz lint bench-tracking bench-datasets bench-jobs bench-serving bench-ui stop kube-apiserver versitygw image

## quickstart: set up, build, start forge server on embedded defaults and run
## the whole lifecycle (examples/quickstart).
quickstart:
	@scripts/quickstart.sh

setup:
	@scripts/setup.sh run

setup-test:
	@scripts/setup.sh test

# The commit is stamped by the linker: Go's own VCS stamping is missing from
# builds outside a Git checkout (or with -buildvcs=false).
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
LDFLAGS ?= -X github.com/forge-mlops/forge/internal/version.commit=$(COMMIT)

build:
	go build -ldflags "$(LDFLAGS)" -o bin/forge ./cmd/forge

## image: the Dockerfile's image as an OCI layout in build/image, without a
## container engine (cmd/forge-image): the forge binary built as the
## Dockerfile builds it, the ONNX Runtime library and the shared libraries
## they link from this machine.
image:
	CGO_ENABLED=1 go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o build/forge ./cmd/forge
	go run ./cmd/forge-image -forge build/forge -onnxruntime "$(FORGE_ONNXRUNTIME_LIB)" -out build/image -version "$(COMMIT)"

## test: install what the tests need and run them all.
test: setup-test kube-apiserver versitygw test-go fuzz test-python

# A real kube-apiserver for the Kubernetes executor's tests, built from the Go
# module proxy once (about 11 minutes on 2 cores) and cached in $(FORGE_CACHE).
kube-apiserver:
	@scripts/build-kube-apiserver.sh >/dev/null

# A real S3 server (versitygw, POSIX backend) for the S3 blob store's tests,
# built from the Go module proxy once (about 2 minutes) and cached in $(FORGE_CACHE).
versitygw:
	@scripts/build-versitygw.sh >/dev/null

test-go:
	go test -count=1 ./...

## fuzz: run every fuzz target for 5 s each (FUZZTIME=10m make fuzz for longer).
fuzz:
	@scripts/fuzz.sh

test-python: build
	@scripts/test-python.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...
	go mod tidy -diff

# The real MLflow 2.12.2 server, measured beside Forge when it is there.
MLFLOW_PEER ?= ../shared/peers/mlflow-2.12.2
bench-tracking: build
	go run ./bench/tracking -start -forge bin/forge $(if $(wildcard $(MLFLOW_PEER)/server.sh),-mlflow $(MLFLOW_PEER))

bench-datasets:
	go run ./bench/datasets -size 1000 -reps 3

bench-jobs: build
	go run ./bench/jobs -forge bin/forge

bench-serving:
	bench/serving/run.sh

## bench-ui: the web UI in headless Chromium (10,000 runs; 100 runs x 10,000 steps).
bench-ui: build
	go run ./bench/ui -forge bin/forge

stop:
	@if [ -f $(DATA)/server.pid ]; then kill $$(cat $(DATA)/server.pid) 2>/dev/null || true; rm -f $(DATA)/server.pid; echo "forge server stopped"; fi
