// Command team runs the serving benchmark's replicas of a forge server in
// two setups, for bench/serving/run.sh (TEAM=1): a server on SQLite and
// the local blob folder, and one on PostgreSQL and S3 (both started here,
// forgeproc.TeamState). Each gets the model registered and deployed as
// "mlp", and a `forge serve --server URL` replica follows it: the first
// fetches the model through its server, the second, given the bucket's
// settings and credentials, straight from the bucket. It prints
// "local=URL team=URL" once both replicas serve the model, and stops
// everything at SIGTERM or SIGINT.
//
//	team -forge /tmp/forge -model testdata/models/mlp.onnx -local-addr 127.0.0.1:18020 -team-addr 127.0.0.1:18021
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/bench/forgeproc"
)

func main() {
	bin := flag.String("forge", "forge", "forge binary")
	model := flag.String("model", "testdata/models/mlp.onnx", "ONNX model to deploy as mlp")
	localAddr := flag.String("local-addr", "127.0.0.1:18020", "address of the replica of the SQLite + local server")
	teamAddr := flag.String("team-addr", "127.0.0.1:18021", "address of the replica of the PostgreSQL + S3 server")
	asyncCommit := flag.Bool("async-commit", false, "PostgreSQL with synchronous_commit=off")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *bin, *model, *localAddr, *teamAddr, *asyncCommit)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/serving/team:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, model, localAddr, teamAddr string, asyncCommit bool) error {
	local, err := forgeproc.Start(ctx, bin)
	if err != nil {
		return err
	}
	defer local.Stop()
	st, err := forgeproc.StartTeamState(ctx, asyncCommit)
	if err != nil {
		return err
	}
	defer st.Stop()
	team, err := forgeproc.StartEnv(ctx, bin, st.Env(), st.ServerArgs()...)
	if err != nil {
		return err
	}
	defer team.Stop()
	tmp, err := os.MkdirTemp("", "forge-bench-replicas-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var replicas []*exec.Cmd
	defer func() {
		for _, r := range replicas {
			r.Process.Signal(syscall.SIGTERM)
			r.Wait()
		}
	}()
	for _, s := range []struct {
		server, addr string
		env          []string
	}{{local.URL, localAddr, nil}, {team.URL, teamAddr, st.Env()}} {
		c := api.NewClient(s.server, "")
		if _, err := c.UploadModelVersion(ctx, "mlp", []string{model}, api.UploadOptions{Format: "onnx"}); err != nil {
			return fmt.Errorf("register the model on %s: %w", s.server, err)
		}
		if _, err := c.PutDeployment(ctx, "mlp", api.DeploymentSpec{Model: "mlp", Ref: "1"}); err != nil {
			return fmt.Errorf("deploy on %s: %w", s.server, err)
		}
		cmd := exec.Command(bin, "serve", "--server", s.server, "--addr", s.addr, "--grpc-addr", "",
			"--cache-dir", filepath.Join(tmp, filepath.Base(s.addr)), "--log-level", "warn")
		cmd.Env = append(os.Environ(), s.env...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		replicas = append(replicas, cmd)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := forgeproc.WaitReady(ctx, "http://"+s.addr+"/v2/models/mlp/ready", exited, time.Minute, 50*time.Millisecond); err != nil {
			if errors.Is(err, forgeproc.ErrExited) {
				replicas = replicas[:len(replicas)-1]
			}
			return fmt.Errorf("replica of %s: %w", s.server, err)
		}
	}
	fmt.Printf("local=http://%s team=http://%s\n", localAddr, teamAddr)
	<-ctx.Done()
	return nil
}
