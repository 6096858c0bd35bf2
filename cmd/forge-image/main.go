// Command forge-image builds Forge's container image as an OCI image layout
// without a container engine (make image): the same image as the
// Dockerfile, from a forge binary and libonnxruntime.so.1 built or fetched
// here. Load it with `skopeo copy oci:build/image:latest
// docker-daemon:forge:latest` or `podman load`, or push it with
// `crane push build/image REGISTRY/forge:TAG`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/forge-mlops/forge/internal/image"
)

func main() {
	var spec image.Spec
	fs := flag.NewFlagSet("forge-image", flag.ContinueOnError)
	fs.StringVar(&spec.Forge, "forge", "bin/forge", "the forge binary")
	fs.StringVar(&spec.ONNXRuntime, "onnxruntime", os.Getenv("FORGE_ONNXRUNTIME_LIB"), "libonnxruntime.so.1 (env FORGE_ONNXRUNTIME_LIB)")
	fs.StringVar(&spec.Tag, "tag", "latest", "the image's ref name in the layout")
	fs.StringVar(&spec.Version, "version", "", "the image's version label")
	out := fs.String("out", "build/image", "the OCI layout folder")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if spec.ONNXRuntime == "" {
		fmt.Fprintln(os.Stderr, "forge-image: no ONNX Runtime library: set -onnxruntime or FORGE_ONNXRUNTIME_LIB")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := image.Build(ctx, spec, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forge-image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s:%s %s\n", *out, spec.Tag, d)
}
