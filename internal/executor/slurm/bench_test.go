package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/slurmtest"
)

// BenchmarkStart is submit to sbatch accepted, on the real cluster: code
// staged, script written, sbatch --parsable returned the job id.
func BenchmarkStart(b *testing.B) {
	c := slurmtest.Start(b)
	e, err := New(context.Background(), Config{SharedDir: b.TempDir(), Partition: c.Partition, Env: c.Env()})
	if err != nil {
		b.Fatal(err)
	}
	code := b.TempDir()
	var hs []forge.Handle
	b.Cleanup(func() {
		for _, h := range hs {
			e.Cancel(context.Background(), h, forge.ReasonCancelled)
		}
	})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h, err := e.Start(context.Background(), &forge.Launch{
			JobID: fmt.Sprintf("bench%d", i), Attempt: 1, Dir: code, Command: []string{"true"},
			Env: map[string]string{"FORGE_JOB_ID": "bench"}, Resources: forge.Resources{CPUs: 1}, Nodes: 1, ProcsPerNode: 1,
		})
		if err != nil {
			b.Fatal(err)
		}
		hs = append(hs, h)
	}
}

// BenchmarkPass1000 is a status pass over 1,000 running jobs. The runner
// is faked only to count the calls and to list 1,000 jobs without running
// them; TestPassIsOneSqueue checks the same on the real cluster.
func BenchmarkPass1000(b *testing.B) {
	const n = 1000
	var out strings.Builder
	jobs := map[string]*handle{}
	for i := range n {
		id := strconv.Itoa(1000 + i)
		fmt.Fprintf(&out, "%s|RUNNING|0|\n", id)
		jobs[id] = &handle{Job: id, Dir: b.TempDir()}
	}
	listing := []byte(out.String())
	var calls atomic.Int64
	e, err := New(context.Background(), Config{SharedDir: b.TempDir(), Run: func(ctx context.Context, name string, args ...string) ([]byte, error) {
		calls.Add(1)
		if name != "squeue" {
			return nil, fmt.Errorf("unexpected %s", name)
		}
		return listing, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	passes := 0
	for b.Loop() {
		ended, err := e.pass(context.Background(), jobs)
		if err != nil || len(ended) != 0 {
			b.Fatalf("pass: %v, %d ended", err, len(ended))
		}
		passes++
	}
	b.ReportMetric(float64(calls.Load())/float64(passes), "calls/pass")
	if calls.Load() != int64(passes) {
		b.Fatalf("%d calls for %d passes over %d jobs", calls.Load(), passes, n)
	}
}
