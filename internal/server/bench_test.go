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
