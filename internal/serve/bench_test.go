package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api/oip"
	"github.com/forge-mlops/forge/internal/httpapi"
)

var singleRow = []byte(`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`)

// bareHandler is the HTTP ceiling: it decodes the same JSON request with
// encoding/json and answers a fixed response.
func bareHandler() http.Handler {
	fixed := []byte(`{"model_name":"mlp","model_version":"1","outputs":[{"name":"output","datatype":"FP32","shape":[1,3],"data":[0.9,0.05,0.05]}]}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Inputs []struct {
				Name     string    `json:"name"`
				Shape    []int64   `json:"shape"`
				Datatype string    `json:"datatype"`
				Data     []float32 `json:"data"`
			} `json:"inputs"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixed)
	})
}

// load sends b.N requests over conns keep-alive connections and reports
// requests/s and latency percentiles.
func load(b *testing.B, url string, body []byte, conns int) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < b.N; i += conns {
				t := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
}

// BenchmarkRESTSingleRow: one row of the iris MLP per JSON request through
// Forge's whole handler stack, against the bare handler, over real TCP.
func BenchmarkRESTSingleRow(b *testing.B) {
	e := newEnv(b, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{})
	bare := httptest.NewServer(bareHandler())
	defer bare.Close()
	for _, conns := range []int{16, 64} {
		b.Run(fmt.Sprintf("forge/c%d", conns), func(b *testing.B) { load(b, e.url+"/v2/models/mlp/infer", singleRow, conns) })
		b.Run(fmt.Sprintf("bare/c%d", conns), func(b *testing.B) { load(b, bare.URL, singleRow, conns) })
	}
}

// BenchmarkOverhead splits one single-row request's time: the model alone
// (ONNX Runtime through the adapter), Server.Infer (resolution, checks,
// metrics), and the REST handler without the network (JSON both ways).
func BenchmarkOverhead(b *testing.B) {
	e := newEnv(b, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{})
	v, _, _ := e.s.pick("mlp", "")
	in := []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}, Data: []float32{5.1, 3.5, 1.4, 0.2}}}
	ctx := context.Background()
	b.Run("model", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.model.Infer(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("server", func(b *testing.B) {
		req := &Request{Inputs: in}
		for b.Loop() {
			if _, err := e.s.Infer(ctx, "mlp", "", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	mux := http.NewServeMux()
	httpapi.Mount(mux, e.s.Routes())
	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/v2/models/mlp/infer", bytes.NewReader(singleRow))
			mux.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Body.String())
			}
		}
	})
}

// bigMLP generates the 256-1024-1024-10 MLP with torch.
func bigMLP(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "big.onnx")
	cmd := exec.Command("/usr/bin/python3", "../../bench/serving/make_mlp.py", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("make_mlp.py: %v\n%s", err, msg)
	}
	return out
}

// BenchmarkBatching: 64 concurrent single-row clients on the large MLP,
// with dynamic batching and without.
func BenchmarkBatching(b *testing.B) {
	path := bigMLP(b)
	for _, mode := range []struct {
		name  string
		batch BatchOptions
	}{{"off", BatchOptions{}}, {"on", BatchOptions{MaxBatchSize: 64, Workers: 2}}, {"on-1worker", BatchOptions{MaxBatchSize: 64, Workers: 1}}} {
		b.Run(mode.name, func(b *testing.B) {
			e := newEnv(b, map[string]string{"big/1": path}, mode.batch)
			row := make([]float32, 256)
			for i := range row {
				row[i] = float32(i%7) / 7
			}
			req := &Request{Inputs: []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 256}, Data: row}}}
			const clients = 64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := c; i < b.N; i += clients {
						if _, err := e.s.Infer(context.Background(), "big", "", req); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkTensor64x256 sends a 64x256 FP32 batch to the large MLP as REST
// JSON, REST binary and gRPC raw contents.
func BenchmarkTensor64x256(b *testing.B) {
	e := newEnv(b, map[string]string{"big/1": bigMLP(b)}, BatchOptions{})
	data := make([]float32, 64*256)
	var raw []byte
	for i := range data {
		data[i] = float32(i%13) / 13
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(data[i]))
	}
	js, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{64, 256}, "datatype": "FP32", "data": data}}})
	header := []byte(fmt.Sprintf(`{"inputs":[{"name":"input","shape":[64,256],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, len(raw)))
	bin := append(slices.Clone(header), raw...)
	client := &http.Client{}
	post := func(b *testing.B, body []byte, hlen int) {
		for b.Loop() {
			req, _ := http.NewRequest("POST", e.url+"/v2/models/big/infer", bytes.NewReader(body))
			if hlen > 0 {
				req.Header.Set(headerLength, fmt.Sprint(hlen))
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatal(resp.Status)
			}
		}
	}
	b.Run("rest-json", func(b *testing.B) { post(b, js, 0) })
	b.Run("rest-binary", func(b *testing.B) { post(b, bin, len(header)) })
	b.Run("grpc-raw", func(b *testing.B) {
		c := grpcClientB(b, e)
		req := &oip.ModelInferRequest{ModelName: "big", Inputs: []*oip.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{64, 256}}}, RawInputContents: [][]byte{raw}}
		for b.Loop() {
			if _, err := c.ModelInfer(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("model-only", func(b *testing.B) {
		v, _, _ := e.s.pick("big", "")
		in := []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{64, 256}, Data: data}}
		for b.Loop() {
			v.model.Infer(context.Background(), in)
		}
	})
}
