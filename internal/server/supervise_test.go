package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

// A long-lived part that dies turns /readyz false with its name, is
// restarted, and /readyz is true again; the restart is counted.
func TestPartRestart(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Long enough to see it down; the test waits on the answer, not the clock.
	s.SetRestartBackoff(2 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- s.Run(ctx, ready) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	readyz := func() (int, string) {
		resp, err := http.Get(s.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, ok func(int, string) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; {
			status, body := readyz()
			if ok(status, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never %s: last %d %q", what, status, body)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("ready", func(status int, _ string) bool { return status == 200 })
	s.KillPart("jobs")
	waitFor("down naming jobs", func(status int, body string) bool { return status == 503 && strings.Contains(body, "jobs") })
	waitFor("ready again", func(status int, _ string) bool { return status == 200 })
	_, metrics := call(t, "GET", s.URL()+"/metrics", nil)
	if !strings.Contains(string(metrics), `forge_part_restarts_total{part="jobs"} 1`) {
		t.Errorf("restart not counted:\n%s", grepLines(string(metrics), "forge_part_restarts_total"))
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
