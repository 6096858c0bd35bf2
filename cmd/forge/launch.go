package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/forge-mlops/forge/internal/executor/kube"
)

func init() {
	register(kube.LaunchCommand, "(internal) pod side of the Kubernetes executor: fetch code, start a node's ranks", cmdKubeLaunch)
}

// cmdKubeLaunch runs inside a job's pod; see kube.LaunchCommand.
func cmdKubeLaunch(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: forge " + kube.LaunchCommand + " fetch|run ..."}
	}
	fs := flag.NewFlagSet(kube.LaunchCommand+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	switch args[0] {
	case "fetch":
		code := fs.String("code", "", "sha256 of the code bundle to fetch")
		dir := fs.String("dir", kube.CodeDir, "folder to extract the code into")
		bin := fs.String("bin", "", "copy this forge binary there")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if *bin != "" {
			if err := kube.CopySelf(*bin); err != nil {
				return fmt.Errorf("copy forge binary: %w", err)
			}
		}
		if *code == "" {
			return nil
		}
		server, _ := c.env("FORGE_SERVER")
		token, _ := c.env("FORGE_TOKEN")
		return kube.Fetch(ctx, &http.Client{Timeout: 10 * time.Minute}, server, token, *code, *dir)
	case "run":
		procs := fs.Int("procs", 1, "processes on this node")
		gpus := fs.Int("gpus", 0, "GPUs on this node, shared out among the processes")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		code, err := kube.RunLocal(ctx, *procs, *gpus, fs.Args(), os.Environ(), c.stdout, 10*time.Second)
		if err != nil {
			return err
		}
		if code != 0 {
			return exitError{code}
		}
		return nil
	}
	return usageError{"usage: forge " + kube.LaunchCommand + " fetch|run ..."}
}
