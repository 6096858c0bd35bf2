// Command bare is the HTTP ceiling of the serving benchmark: a net/http
// handler that decodes the same JSON inference request as Forge and answers
// a fixed response, so the gap to Forge is everything Forge does beyond
// HTTP and JSON.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
)

var fixed = []byte(`{"model_name":"mlp","model_version":"1","outputs":[{"name":"output","datatype":"FP32","shape":[1,3],"data":[0.9,0.05,0.05]}]}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:18001", "listen address")
	flag.Parse()
	http.HandleFunc("POST /v2/models/{name}/infer", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Inputs []struct {
				Name     string    `json:"name"`
				Shape    []int64   `json:"shape"`
				Datatype string    `json:"datatype"`
				Data     []float32 `json:"data"`
			} `json:"inputs"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixed)
	})
	http.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
