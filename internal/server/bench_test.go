package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/forge-mlops/forge/api"
)

// BenchmarkLogMetric is one MLflow log-metric call through the whole HTTP
// stack (middleware, JSON, SQLite commit) over a keep-alive connection: the
// unit of the tracking benchmark's scenario a.
func BenchmarkLogMetric(b *testing.B) {
	t := &testing.T{}
	base := inProcess(t, nil)
	run := createRun(t, base)
	client := &http.Client{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body, _ := json.Marshal(api.LogMetricRequest{RunID: run, Key: "loss", Value: ptr(api.Float(float64(i))), Timestamp: 1, Step: api.Int64(i)})
		resp, err := client.Post(base+"/api/2.0/mlflow/runs/log-metric", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkSearchAll1000 is runs/search returning an experiment's 1,000
// runs (each with params, tags and metrics) through the HTTP stack:
// the unit of the tracking benchmark's scenario d.
func BenchmarkSearchAll1000(b *testing.B) {
	t := &testing.T{}
	base := inProcess(t, nil)
	var exp api.CreateExperimentResponse
	mustCall(t, "POST", base+mlflow+"experiments/create", api.CreateExperimentRequest{Name: "bench"}, &exp)
	for i := 0; i < 1000; i++ {
		var run api.RunResponse
		mustCall(t, "POST", base+mlflow+"runs/create", api.CreateRunRequest{ExperimentID: exp.ExperimentID}, &run)
		batch := api.LogBatchRequest{RunID: run.Run.Info.RunID,
			Params: []api.KV{{Key: "lr", Value: "0.1"}, {Key: "depth", Value: "6"}},
			Tags:   []api.KV{{Key: "team", Value: "ml"}}}
		for k := 0; k < 3; k++ {
			batch.Metrics = append(batch.Metrics, api.Metric{Key: "m" + string(rune('a'+k)), Value: api.Float(i), Timestamp: 1, Step: 1})
		}
		mustCall(t, "POST", base+mlflow+"runs/log-batch", batch, nil)
	}
	body, _ := json.Marshal(api.SearchRunsRequest{ExperimentIDs: []string{exp.ExperimentID}, MaxResults: 1000})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := http.Post(base+mlflow+"runs/search", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		b.SetBytes(n)
	}
}
