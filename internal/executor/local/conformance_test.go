package local

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/executor/executortest"
)

func TestConformance(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	executortest.Run(t, executortest.Backend{
		New: func(t *testing.T, state string) forge.Executor {
			e, err := New(context.Background(), Config{
				Root: state, Shim: []string{self, ShimCommand},
				CPUs: 32, MemoryBytes: 8 << 30, GPUs: []int{}, Grace: 500 * time.Millisecond, Poll: 20 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
		Nodes: 2,
		// The shim dies with its process group, leaving no exit file.
		Lose: func(t *testing.T, e forge.Executor, h forge.Handle) forge.Handle {
			for _, p := range mustHandle(t, h).Procs {
				syscall.Kill(-p.PID, syscall.SIGKILL)
			}
			return h
		},
		Timeout: 20 * time.Second,
	})
}
