package serve

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
)

// TestBatching has 64 clients send single rows at once; each must get its
// own row's result, and the exec count must show batches of more than one.
func TestBatching(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{MaxBatchSize: 32, Workers: 1})
	ref := readReference(t, "mlp.reference.json")
	const clients, rounds = 64, 10
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				i := (c*rounds + r) % len(ref.Inputs)
				row := ref.rows(i, i+1)
				resp, err := e.s.Infer(context.Background(), "mlp", "", &Request{Inputs: []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}, Data: row[0]}}})
				if err != nil {
					t.Error(err)
					return
				}
				got := resp.Outputs[0].Data.([]float32)
				if len(got) != 3 || resp.Outputs[0].Shape[0] != 1 {
					t.Errorf("row %d: output %v shape %v", i, got, resp.Outputs[0].Shape)
					return
				}
				for j, w := range ref.Outputs[i] {
					if math.Abs(float64(got[j])-w) > 1e-6 {
						t.Errorf("row %d col %d: got %v, want %v (another request's row?)", i, j, got[j], w)
					}
				}
			}
		}()
	}
	wg.Wait()
	execs := e.metric(t, "nv_inference_exec_count", map[string]string{"model": "mlp"}) - 1 // less the warm-up
	count := e.metric(t, "nv_inference_count", map[string]string{"model": "mlp"})
	if count != clients*rounds {
		t.Errorf("nv_inference_count = %v, want %d", count, clients*rounds)
	}
	if execs >= count {
		t.Errorf("%v executions for %v inferences: no batch of more than one formed", execs, count)
	}
	t.Logf("%v inferences in %v executions", count, execs)
}

// gated wraps a real model so a test can hold its runs.
type gated struct {
	forge.Model
	started chan struct{}
	release chan struct{}
}

func (g *gated) Infer(ctx context.Context, in []forge.Tensor) ([]forge.Tensor, error) {
	g.started <- struct{}{}
	<-g.release
	return g.Model.Infer(ctx, in)
}

type gatedRuntime struct {
	forge.Runtime
	g *gated
}

func (r gatedRuntime) Load(ctx context.Context, src forge.ModelSource) (forge.Model, error) {
	m, err := r.Runtime.Load(ctx, src)
	r.g.Model = m
	return r.g, err
}

// TestQueueFull fills a queue of 2 behind a held run; the next request is
// refused with Unavailable (503) and counted as REJECTED.
func TestQueueFull(t *testing.T) {
	e := newEnv(t, nil, BatchOptions{})
	g := &gated{started: make(chan struct{}, 16), release: make(chan struct{})}
	e.s.opts.Runtimes["gated"] = gatedRuntime{e.s.opts.Runtimes["onnx"], g}
	// The warm-up passes the gate too.
	go func() { <-g.started; g.release <- struct{}{} }()
	err := e.s.Load(context.Background(), forge.ModelSource{Name: "mlp", Version: "1", Files: dirFS(t, "mlp.onnx")},
		LoadOptions{Format: "gated", Batch: BatchOptions{MaxBatchSize: 4, QueueSize: 2, Workers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	row := func(cols int) *Request {
		return &Request{Inputs: []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, int64(cols)}, Data: make([]float32, cols)}}}
	}
	errs := make(chan error, 3)
	go func() { _, err := e.s.Infer(context.Background(), "mlp", "", row(4)); errs <- err }()
	<-g.started // the first request runs and holds the only worker
	for range 2 {
		go func() { _, err := e.s.Infer(context.Background(), "mlp", "", row(4)); errs <- err }()
	}
	v, _, _ := e.s.pick("mlp", "")
	for deadline := time.Now().Add(5 * time.Second); len(v.batch.queue) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the queue did not fill")
		}
		time.Sleep(time.Millisecond)
	}
	code, _, body := e.post(t, "/v2/models/mlp/infer", []byte(`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`), -1)
	if code != 503 || !strings.Contains(string(body), "queue is full") {
		t.Errorf("with the queue full: %d %s, want 503 queue is full", code, body)
	}
	// Let the held run and the queued batch (both rows in one run) finish.
	go func() {
		for range g.started {
			g.release <- struct{}{}
		}
	}()
	g.release <- struct{}{}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := e.metric(t, "nv_inference_request_failure", map[string]string{"model": "mlp", "reason": "REJECTED"}); got != 1 {
		t.Errorf("REJECTED failures = %v, want 1", got)
	}
}

// TestCanary routes 10,000 requests at 80/20 and checks the split within
// 4 standard deviations.
func TestCanary(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx", "mlp/2": "mlp.onnx"}, BatchOptions{})
	if err := e.s.Route("iris", []Target{{"mlp", "1", 80}, {"mlp", "2", 20}}); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	counts := map[string]int{}
	req := &Request{Inputs: []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}, Data: []float32{5.1, 3.5, 1.4, 0.2}}}}
	for range n {
		resp, err := e.s.Infer(context.Background(), "iris", "", req)
		if err != nil {
			t.Fatal(err)
		}
		counts[resp.Version]++
	}
	mean, sd := n*0.2, math.Sqrt(n*0.2*0.8)
	if d := math.Abs(float64(counts["2"]) - mean); d > 4*sd || counts["1"]+counts["2"] != n {
		t.Errorf("canary got %v of %d, want %v ± %.0f", counts, n, mean, 4*sd)
	}
	// A route's version can be named; one it does not serve is not found.
	if resp, err := e.s.Infer(context.Background(), "iris", "2", req); err != nil || resp.Version != "2" {
		t.Errorf("iris version 2: %v %v", resp, err)
	}
	if _, err := e.s.Infer(context.Background(), "iris", "3", req); !forge.IsKind(err, forge.NotFound) {
		t.Errorf("iris version 3: err = %v, want NotFound", err)
	}
	if err := e.s.Unload("mlp", "2"); !forge.IsKind(err, forge.Conflict) {
		t.Errorf("unloading a routed version: err = %v, want Conflict", err)
	}
}

// TestRolloutUnderLoad swaps a route from version 1 to 2 and unloads 1 while
// clients send requests over REST; none may fail.
func TestRolloutUnderLoad(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{MaxBatchSize: 16})
	if err := e.s.Route("iris", []Target{{"mlp", "1", 1}}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var ok, failed atomic.Int64
	var seen sync.Map
	var wg sync.WaitGroup
	body := []byte(`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				code, _, b := e.post(t, "/v2/models/iris/infer", body, -1)
				if code != 200 {
					failed.Add(1)
					t.Errorf("during rollout: %d %s", code, b)
					continue
				}
				ok.Add(1)
				var r inferResponseJSON
				if err := json.Unmarshal(b, &r); err == nil {
					seen.Store(r.ModelVersion, true)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := e.s.Load(context.Background(), forge.ModelSource{Name: "mlp", Version: "2", Files: dirFS(t, "mlp.onnx")}, LoadOptions{Batch: BatchOptions{MaxBatchSize: 16}}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Route("iris", []Target{{"mlp", "2", 1}}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Unload("mlp", "1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	_, v1 := seen.Load("1")
	_, v2 := seen.Load("2")
	if failed.Load() != 0 || !v1 || !v2 {
		t.Errorf("%d ok, %d failed; versions seen: 1 %v, 2 %v", ok.Load(), failed.Load(), v1, v2)
	}
	t.Logf("%d requests during the rollout", ok.Load())
	if _, err := e.s.ModelReady("mlp", "1"); !forge.IsKind(err, forge.NotFound) {
		t.Errorf("version 1 after unload: %v", err)
	}
}
