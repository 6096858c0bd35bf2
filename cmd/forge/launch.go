package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/forge-mlops/forge"
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
		var inputs []forge.Input
		fs.Func("input", "a dataset input to fetch: path=P,ref=NAME@V,format=F,sha256=D (repeatable)", func(s string) error {
			in, err := kube.ParseInputFlag(s)
			inputs = append(inputs, in)
			return err
		})
		dir := fs.String("dir", kube.CodeDir, "folder to extract the code and inputs into")
		bin := fs.String("bin", "", "copy this forge binary there")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if *bin != "" {
			if err := kube.CopySelf(*bin); err != nil {
				return fmt.Errorf("copy forge binary: %w", err)
			}
		}
		server, _ := c.env("FORGE_SERVER")
		token, _ := c.env("FORGE_TOKEN")
		if *code != "" {
			if err := kube.Fetch(ctx, &http.Client{Timeout: 10 * time.Minute}, server, token, *code, *dir); err != nil {
				return err
			}
		}
		// A dataset may be large: no whole-request timeout, only ctx.
		for _, in := range inputs {
			if err := kube.FetchInput(ctx, http.DefaultClient, server, token, in, *dir); err != nil {
				return err
			}
		}
		return nil
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
