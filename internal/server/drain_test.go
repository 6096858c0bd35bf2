package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

// TestShutdownDrainsKeepAlive runs a server in-process under eight clients
// that keep their connections alive and send requests back to back (metric
// writes and reads), then shuts it down as SIGTERM does. Readiness goes
// false first; every request a client sent gets a whole answer; a client
// stops only when the server refuses new connections, and none sees a
// reset or a connection closed under a request.
func TestShutdownDrainsKeepAlive(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	cfg.HTTP.DrainDelay = 500 * time.Millisecond
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, addrc) }()
	base := "http://" + <-addrc
	run := createRun(t, base)

	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var done atomic.Int64
	failures := make(chan error, 100)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				var req *http.Request
				var check func([]byte) error
				if n%2 == 0 {
					body := fmt.Sprintf(`{"run_id": %q, "key": "m%d", "value": %d, "timestamp": 1, "step": %d}`, run, i, n, n)
					req, _ = http.NewRequest("POST", base+mlflow+"runs/log-metric", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					check = func(b []byte) error {
						if string(b) != "{}" {
							return fmt.Errorf("log-metric answered %q", b)
						}
						return nil
					}
				} else {
					req, _ = http.NewRequest("GET", base+mlflow+"runs/get?run_id="+run, nil)
					check = func(b []byte) error {
						var out api.RunResponse
						if err := json.Unmarshal(b, &out); err != nil || out.Run.Info.RunID != run {
							return fmt.Errorf("runs/get answered %d bytes: %v", len(b), err)
						}
						return nil
					}
				}
				resp, err := client.Do(req)
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						return // the server stopped accepting: the end
					}
					failures <- fmt.Errorf("client %d request %d: %w", i, n, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
				}
				if err == nil {
					err = check(b)
				}
				if err != nil {
					failures <- fmt.Errorf("client %d request %d: %w", i, n, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	for done.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	// Readiness is watched on a connection of its own.
	sawUnready := make(chan bool, 1)
	go func() {
		rc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			resp, err := rc.Get(base + "/readyz")
			if err != nil {
				sawUnready <- false
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				sawUnready <- true
				return
			}
		}
	}()
	before := done.Load()
	cancel()
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !<-sawUnready {
		t.Error("readiness did not go false before the server stopped accepting")
	}
	if done.Load() == before {
		t.Error("no request was answered after the shutdown began")
	}
	t.Logf("%d requests answered, %d after the shutdown began", done.Load(), done.Load()-before)
}
