package main

import (
	"bytes"
	"context"
	"sync"

	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/executor/local"
)

func init() {
	register("run", "run a training job: forge run [flags] -- CMD ARGS...", cmdRun)
	register(local.ShimCommand, "(internal) supervise one job process for the local executor", cmdShim)
}

func cmdShim(ctx context.Context, c *cli, args []string) error {
	if code := local.Shim(args); code != 0 {
		return exitError{code}
	}
	return nil
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdRun(ctx context.Context, c *cli, args []string) error {
	// Everything after the first "--" is the command, flags and all.
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			break
		}
	}
	fs := newFlags(c, "run")
	cf := addClientFlags(fs, c)
	var spec api.JobSpec
	var inputs, envs listFlag
	file := fs.String("f", "", "job spec file (YAML); flags override its fields")
	fs.StringVar(&spec.Name, "name", "", "job and run name (default: a readable adjective-noun-number)")
	fs.Float64Var(&spec.CPUs, "cpus", 0, "CPUs per node (default 1)")
	fs.StringVar(&spec.Memory, "memory", "", "memory per node, e.g. 4GiB")
	fs.IntVar(&spec.GPUs, "gpus", 0, "GPUs per node")
	fs.IntVar(&spec.Nodes, "nodes", 0, "nodes (default 1)")
	fs.IntVar(&spec.ProcsPerNode, "procs-per-node", 0, "processes per node (default 1)")
	fs.Var(&inputs, "i", "input NAME=DATASET[@VERSION] (repeatable): sets FORGE_INPUT_NAME")
	fs.Var(&envs, "e", "environment K=V (repeatable)")
	fs.StringVar(&spec.Timeout, "timeout", "", "stop the job after this long, e.g. 2h")
	fs.IntVar(&spec.MaxRetries, "retries", 0, "retries after a failure")
	fs.StringVar(&spec.Experiment, "experiment", "", "tracking experiment of the job's run")
	fs.IntVar(&spec.Priority, "priority", 0, "higher runs first")
	fs.StringVar(&spec.Executor, "executor", "", "the server's executor to run on (see forge executors ls; default: the server's default)")
	fs.StringVar(&spec.Image, "image", "", "container image, for executors that run containers (Kubernetes)")
	dir := fs.String("C", ".", "the code folder to bundle")
	noCode := fs.Bool("no-code", false, "do not upload the code folder")
	wait := fs.Bool("wait", false, "stream the logs and exit with the job's exit code")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	command = append(pos, command...)
	if *file != "" {
		var fromFile api.JobSpec
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(b, &fromFile); err != nil {
			return fmt.Errorf("job spec %s: %w", *file, err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		spec = merge(fromFile, spec, set)
	}
	if len(command) > 0 {
		spec.Command = command
	}
	if len(spec.Command) == 0 {
		return usageError{"usage: forge run [flags] -- CMD ARGS... (or -f spec.yaml with a command)"}
	}
	for _, kv := range envs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usageError{fmt.Sprintf("-e %q: want K=V", kv)}
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	for _, kv := range inputs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usageError{fmt.Sprintf("-i %q: want NAME=DATASET[@VERSION]", kv)}
		}
		if spec.Inputs == nil {
			spec.Inputs = map[string]string{}
		}
		spec.Inputs[k] = v
	}
	client := cf.client()
	if !*noCode && spec.Code == "" {
		if spec.Code, err = uploadCode(ctx, c, client, *dir); err != nil {
			return err
		}
	}
	j, err := client.SubmitJob(ctx, spec)
	if err != nil {
		return err
	}
	if cf.json() && !*wait {
		return printJSON(c.stdout, j)
	}
	if !*wait {
		fmt.Fprintln(c.stdout, j.ID)
		return nil
	}
	fmt.Fprintf(c.stderr, "job %s (%s) submitted: %s\n", j.ID, j.Name, stateLine(j))
	return followToEnd(ctx, client, j, c)
}

// followToEnd streams the logs and returns the job's exit as the error,
// then says which run the job made and where to see it. Interrupted
// (Ctrl-C), it leaves the job running, says how to cancel it, and exits 130
// as a shell does.
func followToEnd(ctx context.Context, client *api.Client, submitted api.Job, c *cli) error {
	id := submitted.ID
	stop := watchState(ctx, client, submitted, c.stderr)
	defer stop()
	rc, err := client.JobLogs(ctx, id, 0, true)
	if err == nil {
		_, err = io.Copy(c.stdout, rc)
		rc.Close()
	}
	stop() // before anything else is written to stderr
	if ctx.Err() != nil {
		fmt.Fprintf(c.stderr, "\nforge: stopped following job %s; it keeps running. Cancel it with: forge jobs cancel %s\n", id, id)
		return exitError{130}
	}
	if err != nil {
		return fmt.Errorf("stream logs: %w", err)
	}
	for {
		j, err := client.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.Final() {
			if j.State == "succeeded" {
				fmt.Fprintf(c.stderr, "job %s: %s\n", id, stateLine(j))
			}
			if j.RunID != "" {
				fmt.Fprintf(c.stderr, "run %s: %s/#/runs/%s\n", j.RunID, client.Base(), j.RunID)
			}
			if j.State == "succeeded" {
				return nil
			}
			code := 1
			if j.ExitCode != nil && *j.ExitCode > 0 {
				code = *j.ExitCode
			}
			fmt.Fprintf(c.stderr, "forge: job %s %s (%s, exit %d) %s\n", id, j.State, j.Reason, code, j.Message)
			return exitError{code}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(c.stderr, "\nforge: stopped following job %s; it keeps running. Cancel it with: forge jobs cancel %s\n", id, id)
			return exitError{130}
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// merge lays the flags that were set over the file's spec.
func merge(file, flags api.JobSpec, set map[string]bool) api.JobSpec {
	out := file
	pick := map[string]func(){
		"name": func() { out.Name = flags.Name }, "cpus": func() { out.CPUs = flags.CPUs },
		"memory": func() { out.Memory = flags.Memory }, "gpus": func() { out.GPUs = flags.GPUs },
		"nodes": func() { out.Nodes = flags.Nodes }, "procs-per-node": func() { out.ProcsPerNode = flags.ProcsPerNode },
		"timeout": func() { out.Timeout = flags.Timeout }, "retries": func() { out.MaxRetries = flags.MaxRetries },
		"experiment": func() { out.Experiment = flags.Experiment }, "priority": func() { out.Priority = flags.Priority },
		"executor": func() { out.Executor = flags.Executor }, "image": func() { out.Image = flags.Image },
	}
	for name, f := range pick {
		if set[name] {
			f()
		}
	}
	return out
}

// watchState says on w when the job's state changes (queued, running, a
// retry back in the queue) while its log streams, until stop is called.
// The end is left to the caller, which says it once the log is over.
func watchState(ctx context.Context, client *api.Client, submitted api.Job, w io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	id := submitted.ID
	go func() {
		defer close(done)
		last := stateLine(submitted)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			j, err := client.Job(ctx, id)
			if err != nil || j.Final() {
				continue
			}
			if s := stateLine(j); s != last {
				last = s
				fmt.Fprintf(w, "job %s: %s\n", id, s)
			}
		}
	}()
	return sync.OnceFunc(func() { cancel(); <-done })
}

// stateLine is a job's state as forge run --wait says it: "queued",
// "running (attempt 1)", "queued for attempt 2 (attempt 1: failed, exit 3)",
// "succeeded (attempt 1, took 4.1s)".
func stateLine(j api.Job) string {
	var prev *api.JobAttempt
	if n := len(j.Attempts); n > 0 {
		prev = &j.Attempts[n-1]
	}
	switch {
	case j.State == "queued" && prev != nil && prev.FinishedAt != 0:
		how := j.Reason
		if prev.Reason != "" {
			how = prev.Reason
		}
		if prev.ExitCode != nil {
			how += fmt.Sprintf(", exit %d", *prev.ExitCode)
		}
		return fmt.Sprintf("queued for attempt %d (attempt %d: %s)", prev.Attempt+1, prev.Attempt, strings.TrimPrefix(how, ", "))
	case j.State == "queued":
		return "queued"
	case j.Final() && prev != nil && prev.FinishedAt != 0:
		took := (time.Duration(prev.FinishedAt-prev.StartedAt) * time.Millisecond).Round(100 * time.Millisecond)
		return fmt.Sprintf("%s (attempt %d, took %s)", j.State, prev.Attempt, took)
	}
	return fmt.Sprintf("%s (attempt %d)", j.State, max(1, j.Attempt, len(j.Attempts)))
}

// uploadCode bundles dir and stores the bundle on the server unless it
// has it, returning its digest.
func uploadCode(ctx context.Context, c *cli, client *api.Client, dir string) (string, error) {
	var buf bytes.Buffer
	pack := c.phase("bundling the code in " + dir)
	b, err := bundle.Build(dir, &buf, bundle.DefaultMaxBytes)
	pack.stop()
	if err != nil {
		return "", err
	}
	digest, size := b.Digest, b.Size
	for _, d := range b.DataDirs {
		fmt.Fprintf(c.stderr, "left out %s/ from the code: it is a Forge data folder (a server's database and blobs)\n", d)
	}
	has, err := client.HasBundle(ctx, digest)
	if err != nil {
		return "", err
	}
	if !has {
		up := c.newBar("uploading code "+digest[:12], int64(buf.Len()))
		err := client.UploadBundle(ctx, digest, &buf, up.set)
		up.close()
		if err != nil {
			return "", fmt.Errorf("upload code: %w", err)
		}
		fmt.Fprintf(c.stderr, "uploaded code %s (%d KiB)\n", digest[:12], size>>10)
	}
	return digest, nil
}
