package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// nullServer is a bare HTTP handler giving canned valid replies to the
// calls the mlflow client makes: what the client costs by itself, the
// limit for any server it talks to.
type nullServer struct {
	URL    string
	srv    *http.Server
	runs   atomic.Int64
	search []byte
}

func startNull() (*nullServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n := &nullServer{URL: "http://" + l.Addr().String()}
	// runs/search answers 1,000 runs shaped like those of scenario (c).
	type kv struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	type metric struct {
		Key       string  `json:"key"`
		Value     float64 `json:"value"`
		Timestamp int64   `json:"timestamp"`
		Step      int64   `json:"step"`
	}
	runs := make([]any, 1000)
	now := time.Now().UnixMilli()
	for i := range runs {
		info := n.runInfo(fmt.Sprintf("%032x", i), "FINISHED")
		runs[i] = map[string]any{"info": info, "data": map[string]any{
			"metrics": []metric{{"acc", 0.5, now, 0}, {"loss", 0.5, now, 0}, {"f1", 0.5, now, 0}},
			"params":  []kv{{"lr", "1"}, {"depth", "1"}, {"seed", "1"}},
			"tags":    []kv{{"team", "bench"}, {"i", "1"}}}}
	}
	n.search, _ = json.Marshal(map[string]any{"runs": runs})
	n.srv = &http.Server{Handler: http.HandlerFunc(n.serve)}
	go n.srv.Serve(l)
	return n, nil
}

func (n *nullServer) runInfo(id, status string) map[string]any {
	return map[string]any{"run_id": id, "run_uuid": id, "run_name": "null", "experiment_id": "1", "user_id": "bench",
		"status": status, "start_time": time.Now().UnixMilli(), "artifact_uri": "mlflow-artifacts:/1/" + id + "/artifacts",
		"lifecycle_stage": "active"}
}

func (n *nullServer) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	var v any = struct{}{}
	switch p := strings.TrimPrefix(r.URL.Path, mlflowAPI); p {
	case "experiments/create":
		v = map[string]string{"experiment_id": "1"}
	case "runs/create":
		v = map[string]any{"run": map[string]any{"info": n.runInfo(fmt.Sprintf("%032x", n.runs.Add(1)), "RUNNING"), "data": map[string]any{}}}
	case "runs/update":
		v = map[string]any{"run_info": n.runInfo("0", "FINISHED")}
	case "runs/search":
		w.Write(n.search)
		return
	}
	json.NewEncoder(w).Encode(v)
}

func (n *nullServer) stop() { n.srv.Close() }
