// Command jobs benchmarks Forge's job system end to end, over loopback:
//
//	(a) submit-to-process-started latency on an idle server (median, p90);
//	(b) is `go test ./internal/jobs -bench SchedulerPass` (not run here);
//	(c) `forge jobs logs -f` following a job that writes at a fixed rate
//	    (50 MB/s by default) and one that writes as fast as it can.
//
// It starts `forge server` itself on a temp data dir from a built binary:
//
//	go build -o /tmp/forge-bench ./cmd/forge && go run ./bench/jobs -forge /tmp/forge-bench
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/bench/forgeproc"
)

type options struct {
	forge     string
	server    string
	scenarios string
	jobs      int
	rate      float64 // MB/s for the paced writer
	seconds   float64
	python    string
	maxMB     float64 // (c): what the unpaced writer may write at most
	lagLimit  time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("jobs", flag.ExitOnError)
	fs.StringVar(&o.forge, "forge", "/tmp/forge-bench", "the forge binary: it runs the server and `jobs logs -f`")
	fs.StringVar(&o.server, "server", "", "use this server (on this machine) instead of starting one")
	fs.StringVar(&o.scenarios, "scenarios", "a,c", "which scenarios to run")
	fs.IntVar(&o.jobs, "jobs", 50, "(a): jobs to time")
	fs.Float64Var(&o.rate, "rate", 50, "(c): MB/s the paced writer writes")
	fs.Float64Var(&o.seconds, "seconds", 5, "(c): how long each writer writes")
	fs.StringVar(&o.python, "python", "/usr/bin/python3", "(c): python for the paced writer")
	fs.Float64Var(&o.maxMB, "max-mb", 1000, "(c): MB the unpaced writer writes at most (it stops at -seconds or this, whichever comes first)")
	fs.DurationVar(&o.lagLimit, "follow-limit", 60*time.Second, "(c): how long the follower may run on after the writer's end before it is stopped and the case fails")
	fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/jobs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	url := o.server
	if url == "" {
		p, err := forgeproc.Start(ctx, o.forge)
		if err != nil {
			return err
		}
		defer p.Stop()
		url = p.URL
	}
	c := api.NewClient(url, "")
	for _, sc := range strings.Split(o.scenarios, ",") {
		var err error
		switch sc {
		case "a":
			err = latency(ctx, c, o)
		case "c":
			err = follow(ctx, c, url, o)
		default:
			err = fmt.Errorf("unknown scenario %q (a, c; b is go test -bench)", sc)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc, err)
		}
	}
	return nil
}

// latency submits jobs one at a time, each once the one before has ended,
// and compares the time the client took just before the POST with the time
// the job's process took as it started (`date +%s%N`, from its log).
func latency(ctx context.Context, c *api.Client, o options) error {
	var ds, admits []time.Duration
	for i := range o.jobs {
		t0 := time.Now()
		j, err := c.SubmitJob(ctx, api.JobSpec{Name: "bench-latency", Command: []string{"date", "+%s%N"}})
		if err != nil {
			return err
		}
		if j, err = waitEnd(ctx, c, j.ID); err != nil {
			return err
		}
		if j.State != "succeeded" {
			return fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Message)
		}
		out, err := readAll(ctx, c, j.ID)
		if err != nil {
			return err
		}
		f := strings.Fields(strings.TrimSpace(out))
		if len(f) != 3 {
			return fmt.Errorf("job %s: log %q is not one timestamped line", j.ID, out)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("job %s: log %q: %w", j.ID, out, err)
		}
		d := time.Unix(0, ns).Sub(t0)
		ds = append(ds, d)
		if len(j.Attempts) > 0 {
			// The attempt's start is when the scheduler admitted it (ms).
			admits = append(admits, time.UnixMilli(j.Attempts[0].StartedAt).Sub(t0))
		}
		if i == 0 {
			fmt.Printf("(a) first job (cold): %v\n", d.Round(10*time.Microsecond))
		}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1)+0.5)].Round(10 * time.Microsecond) }
	fmt.Printf("(a) submit-to-process-started over %d jobs: median %v, p90 %v, min %v, max %v (target: median < 50ms)\n",
		len(ds), q(0.5), q(0.9), ds[0].Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond))
	if len(admits) > 0 {
		slices.Sort(admits)
		fmt.Printf("(a) of which submit-to-admitted (ms clock): median %v\n", admits[len(admits)/2].Round(time.Millisecond))
	}
	return nil
}

// verdict is PASS when the follower got the whole log, and for the paced
// writer the end line within a second of its writing (the unpaced one
// writes faster than any follower reads: its figure is the rate).
func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func waitEnd(ctx context.Context, c *api.Client, id string) (api.Job, error) {
	for {
		j, err := c.Job(ctx, id)
		if err != nil || j.Final() {
			return j, err
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func readAll(ctx context.Context, c *api.Client, id string) (string, error) {
	rc, err := c.JobLogs(ctx, id, 0, false)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// pacedWriter writes 100-byte lines at rate MB/s in 10 ms slices for the
// given seconds, then a last line "end UNIX_NS WRITTEN_BYTES".
const pacedWriter = `
import os, sys, time
rate, secs = float(sys.argv[1]) * 1e6, float(sys.argv[2])
line = b"x" * 99 + b"\n"
out = sys.stdout.buffer
t0 = time.monotonic()
written = 0
while True:
    el = time.monotonic() - t0
    if el >= secs:
        break
    due = int(rate * min(el + 0.01, secs)) - written
    if due > 0:
        n = max(due // 100, 1)
        out.write(line * n)
        out.flush()
        written += 100 * n
    else:
        time.sleep(0.001)
el = time.monotonic() - t0
out.write(b"end %d %d %.6f\n" % (time.time_ns(), written, el))
out.flush()
`

// follow runs `forge jobs logs -f` on a job that writes for o.seconds,
// paced and then unpaced, and reports what the follower received.
func follow(ctx context.Context, c *api.Client, url string, o options) error {
	secs := strconv.FormatFloat(o.seconds, 'f', -1, 64)
	cases := []struct {
		name   string
		target bool // the follower must keep up (the paced writer)
		cmd    []string
	}{
		{fmt.Sprintf("paced %g MB/s", o.rate), true, []string{o.python, "-c", pacedWriter, strconv.FormatFloat(o.rate, 'f', -1, 64), secs}},
		// yes as fast as the pipe takes it; the shim's copying is its limit.
		// Bounded in time and bytes: a writer faster than the follower
		// would otherwise leave it gigabytes behind.
		{fmt.Sprintf("unpaced (yes, at most %g MB)", o.maxMB), false, []string{"sh", "-c", `s=$(date +%s%N); timeout ` + secs +
			` yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c ` +
			strconv.FormatInt(int64(o.maxMB*1e6), 10) + `; e=$(date +%s%N); echo; echo "end $e 0 $(( (e - s) / 1000 ))e-6"`}},
	}
	for _, tc := range cases {
		j, err := c.SubmitJob(ctx, api.JobSpec{Name: "bench-follow", Command: tc.cmd})
		if err != nil {
			return err
		}
		// The follower may run the writer's time and lagLimit more.
		fctx, cancel := context.WithTimeout(ctx, time.Duration(o.seconds*float64(time.Second))+o.lagLimit)
		defer cancel()
		cmd := exec.CommandContext(fctx, o.forge, "jobs", "logs", "-f", "--server", url, j.ID)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		var got int64
		var endLine string
		var endAt time.Time
		r := bufio.NewReaderSize(out, 1<<20)
		for {
			line, err := r.ReadSlice('\n')
			got += int64(len(line))
			if i := bytes.Index(line, []byte("] end ")); i >= 0 {
				endLine, endAt = strings.TrimSpace(string(line[i+2:])), time.Now()
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		werr := cmd.Wait()
		stopped := fctx.Err() != nil
		cancel()
		exitAt := time.Now()
		took := exitAt.Sub(start)
		if stopped {
			// The job is stopped too, so that the next case runs alone.
			c.CancelJob(ctx, j.ID)
		}
		j, err = waitEnd(ctx, c, j.ID)
		if err != nil {
			return err
		}
		var logSize int64
		if n := len(j.Attempts); n > 0 {
			logSize = j.Attempts[n-1].LogSize
		}
		if stopped {
			fmt.Printf("(c) %s: FAIL: the follower was stopped after %.1fs (the writer's %gs and -follow-limit %v) with %.1f MB of the log's %.1f MB\n",
				tc.name, took.Seconds(), o.seconds, o.lagLimit, float64(got)/1e6, float64(logSize)/1e6)
			continue
		}
		if werr != nil {
			return fmt.Errorf("forge jobs logs -f: %w", werr)
		}
		f := strings.Fields(endLine)
		if len(f) != 4 {
			fmt.Printf("(c) %s: FAIL: job %s (%s) log %.1f MB: the follower ended after %.1f MB without the end line\n",
				tc.name, j.ID, j.State, float64(logSize)/1e6, float64(got)/1e6)
			continue
		}
		endNS, _ := strconv.ParseInt(f[1], 10, 64)
		written, _ := strconv.ParseFloat(f[2], 64)
		wsecs, _ := strconv.ParseFloat(f[3], 64)
		lag := endAt.Sub(time.Unix(0, endNS))
		writeRate := ""
		if written > 0 {
			writeRate = fmt.Sprintf("process wrote %.1f MB in %.2fs (%.1f MB/s); ", written/1e6, wsecs, written/1e6/wsecs)
		}
		fmt.Printf("(c) %s: %s: %slog %.1f MB (%.1f MB/s over the writer's %.2fs); follower got %.1f MB (complete: %v) in %.2fs: the end line %v after it was written, and the follower's exit %v after that\n",
			tc.name, verdict(got == logSize && (lag < time.Second || !tc.target)), writeRate, float64(logSize)/1e6, float64(logSize)/1e6/wsecs, wsecs, float64(got)/1e6, got == logSize, took.Seconds(), lag.Round(time.Millisecond), exitAt.Sub(endAt).Round(time.Millisecond))
	}
	return nil
}
