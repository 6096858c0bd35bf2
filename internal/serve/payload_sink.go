package serve

import (
	"bufio"
	"bytes"
)

// PayloadSink receives a deployment's logged rows, each as the JSON object
// its dataset row is made of (timestamp, model, version, request_id,
// deployment, row, the inputs under the feature names, the outputs), keyed
// by request id. The payload log calls it from its own goroutine, never on
// a request's path; Publish must not block (a sink that cannot keep up
// drops and counts).
type PayloadSink interface {
	Publish(key string, value []byte)
}

// publish hands pl's rows to its route's sink.
func publish(sink PayloadSink, pl payload) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for _, row := range flatten(pl) {
		b.Reset()
		writeRow(w, row)
		w.Flush()
		sink.Publish(pl.id, bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	}
}
