package serve

import (
	"strconv"
	"testing"

	"github.com/forge-mlops/forge"
)

// FuzzDecodeInferRequest: any OIP body (JSON header and binary tail) is
// decoded or refused as the client's mistake, never a panic or a 500.
func FuzzDecodeInferRequest(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"y"}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}}]}`+"\x01\x00\x00\x00"), 87)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[-1],"datatype":"FP64","data":[]}]}`), -1)
	f.Add([]byte(`{`), -1)
	f.Fuzz(func(t *testing.T, body []byte, hlen int) {
		h := ""
		if hlen >= 0 {
			h = strconv.Itoa(hlen)
		}
		_, err := decodeInferRequest(body, h)
		if err != nil && forge.KindOf(err) == forge.Internal {
			t.Fatalf("refused with an internal error: %v", err)
		}
	})
}
