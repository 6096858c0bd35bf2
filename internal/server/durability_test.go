package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// Every write the API acknowledges survives a kill -9 of the server: several
// clients stream writes, the server is killed mid-stream, restarted on the
// same store, and every acknowledged write is looked up.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		testKill9(t, "--data-dir", dir)
		db, err := sqlstore.Open(context.Background(), sqlstore.Options{DataDir: dir})
		if err != nil {
			t.Fatalf("store does not reopen: %v", err)
		}
		defer db.Close()
		var res string
		if err := db.QueryRow(context.Background(), "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
			t.Fatalf("integrity_check: %q %v", res, err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dbURL := sqlstoretest.PostgresURL(t)
		testKill9(t, "--data-dir", t.TempDir(), "--db", dbURL)
		db, err := sqlstore.Open(context.Background(), sqlstore.Options{URL: dbURL})
		if err != nil {
			t.Fatalf("store does not reopen: %v", err)
		}
		db.Close()
	})
}

// ledger is what one writer had acknowledged, run by run.
type ledger struct {
	runs map[string]*runLedger
}

type runLedger struct {
	metrics map[string][]int64 // key -> acknowledged steps
	params  map[string]string
	tags    map[string]string
	// inFlight is the value of a set-tag cut off by the kill: it may or may
	// not have committed, so either it or the acknowledged value is right.
	inFlight map[string]string
}

func testKill9(t *testing.T, args ...string) {
	p, _ := startForge(t, args...)
	const writers = 6
	var acks, inflight atomic.Int64
	ledgers := make([]*ledger, writers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for w := range writers {
		l := &ledger{runs: map[string]*runLedger{}}
		ledgers[w] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			var run string
			var rl *runLedger
			post := func(endpoint string, in, out any) bool {
				b, _ := json.Marshal(in)
				req, _ := http.NewRequestWithContext(ctx, "POST", p.url+mlflow+endpoint, bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				inflight.Add(1)
				resp, err := hc.Do(req)
				inflight.Add(-1)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return false
				}
				if out != nil && json.NewDecoder(resp.Body).Decode(out) != nil {
					return false
				}
				acks.Add(1)
				return true
			}
			for i := 0; ctx.Err() == nil; i++ {
				var ok bool
				switch {
				case i%40 == 0:
					var out api.RunResponse
					if ok = post("runs/create", api.CreateRunRequest{ExperimentID: "0", RunName: fmt.Sprintf("w%d-%d", w, i)}, &out); ok {
						run = out.Run.Info.RunID
						rl = &runLedger{metrics: map[string][]int64{}, params: map[string]string{}, tags: map[string]string{"mlflow.runName": fmt.Sprintf("w%d-%d", w, i)}}
						l.runs[run] = rl
					}
				case i%4 == 1:
					v := api.Float(i)
					if ok = post("runs/log-metric", api.LogMetricRequest{RunID: run, Key: "single", Value: &v, Timestamp: 1, Step: api.Int64(i)}, nil); ok {
						rl.metrics["single"] = append(rl.metrics["single"], int64(i))
					}
				case i%4 == 2:
					req := api.LogBatchRequest{RunID: run, Params: []api.KV{{Key: fmt.Sprintf("p%d", i), Value: fmt.Sprint(i)}}}
					for s := range 50 {
						req.Metrics = append(req.Metrics, api.Metric{Key: "batch", Value: api.Float(s), Timestamp: 1, Step: api.Int64(i*100 + s)})
					}
					if ok = post("runs/log-batch", req, nil); ok {
						for s := range 50 {
							rl.metrics["batch"] = append(rl.metrics["batch"], int64(i*100+s))
						}
						rl.params[fmt.Sprintf("p%d", i)] = fmt.Sprint(i)
					}
				default:
					v := fmt.Sprint("v", i)
					if ok = post("runs/set-tag", api.SetTagRequest{RunID: run, Key: "t", Value: &v}, nil); ok {
						rl.tags["t"] = v
					} else {
						rl.inFlight = map[string]string{"t": v}
					}
				}
				if !ok {
					return // the server is gone; what it acknowledged is in the ledger
				}
			}
		}()
	}
	// Let the stream run, then kill the server while requests are in flight.
	deadline := time.Now().Add(10 * time.Second)
	for (acks.Load() < 500 || inflight.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	atKill, inflightAtKill := acks.Load(), inflight.Load()
	p.kill()
	wg.Wait()
	if atKill < 100 {
		t.Fatalf("only %d writes acknowledged before the kill", atKill)
	}

	p2, _ := startForge(t, args...)
	var runs, points, params, tags int
	for _, l := range ledgers {
		for id, rl := range l.runs {
			runs++
			var got api.RunResponse
			mustCall(t, "GET", p2.url+mlflow+"runs/get?run_id="+id, nil, &got)
			have := map[string]string{}
			for _, kv := range got.Run.Data.Params {
				have[kv.Key] = kv.Value
			}
			for k, v := range rl.params {
				params++
				if have[k] != v {
					t.Errorf("run %s: param %s = %q after restart, acknowledged %q", id, k, have[k], v)
				}
			}
			have = map[string]string{}
			for _, kv := range got.Run.Data.Tags {
				have[kv.Key] = kv.Value
			}
			for k, v := range rl.tags {
				tags++
				if have[k] != v && (rl.inFlight == nil || have[k] != rl.inFlight[k]) {
					t.Errorf("run %s: tag %s = %q after restart, acknowledged %q", id, k, have[k], v)
				}
			}
			for key, steps := range rl.metrics {
				var h api.MetricsResponse
				mustCall(t, "GET", p2.url+mlflow+"metrics/get-history?"+url.Values{"run_id": {id}, "metric_key": {key}}.Encode(), nil, &h)
				stored := map[int64]bool{}
				for _, m := range h.Metrics {
					stored[int64(m.Step)] = true
				}
				for _, s := range steps {
					points++
					if !stored[s] {
						t.Errorf("run %s: metric %s step %d acknowledged but lost", id, key, s)
					}
				}
			}
		}
	}
	// The restarted store takes writes again.
	createRun(t, p2.url)
	t.Logf("killed with %d requests in flight after %d acknowledged writes; after restart all %d runs, %d metric points, %d params and %d tag values acknowledged were found",
		inflightAtKill, acks.Load(), runs, points, params, tags)
	p2.term(t)
}
