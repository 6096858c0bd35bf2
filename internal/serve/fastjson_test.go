package serve

import (
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fastSeeds take the fast path; slowSeeds are left to encoding/json/v2.
var fastSeeds = []string{
	`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`,
	` { "id" : "r-1" , "inputs" : [ { "datatype" : "INT64" , "name" : "x" , "shape" : [ 2 , 2 ] , "data" : [ [ 1 , -2 ] , [ 3e2 , 0.5E-1 ] ] } ] , "outputs" : [ { "name" : "y" } ] } `,
	`{"inputs":[{"name":"s","shape":[],"datatype":"BYTES","data":["héllo",true,false,null]}],"outputs":[]}`,
	`{"inputs":[]}`,
	`{}`,
	`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]},{"name":"b","shape":[1],"datatype":"FP32","data":[2]}]}`,
	`{"inputs":[{"name":"x","data":null}]}`, // v2 keeps "null" too; parseJSONData refuses it
}

var slowSeeds = []string{
	`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`,
	`{"inputs":[],"inputs":[]}`,
	`{"id":"a\"b","inputs":[]}`,
	`{"inputs":[{"name":5}]}`,
	`{"inputs":[{"name":"x","shape":[1.0],"data":[1]}]}`,
	`{"inputs":[{"name":"x","shape":[01],"data":[1]}]}`,
	`{"inputs":[{"name":"x","data":[1,,2]}]}`,
	`{"inputs":[{"name":"x","data":[1 2]}]}`,
	`{"inputs":[{"name":"x","data":[-]}]}`,
	`{"inputs":[{"name":"x","data":[1.]}]}`,
	`{"inputs":[{"name":"x","data":[{"a":1}]}]}`,
	`{"inputs":[{"name":"x","data":[1]}]} x`,
	`{"inputs":[{"name":"x","data":[1]}`,
	`{"Inputs":[]}`,
	"{\"id\":\"\xff\"}",
	`[1]`,
	``,
}

// TestFastHeaderTakesTheCommonShape checks that the single-row request of
// the benchmark, and the other well-formed seeds, take the fast path.
func TestFastHeaderTakesTheCommonShape(t *testing.T) {
	for _, s := range fastSeeds {
		if _, ok := fastHeader([]byte(s)); !ok {
			t.Errorf("fast path refused %s", s)
		}
	}
	for _, s := range slowSeeds {
		if _, ok := fastHeader([]byte(s)); ok {
			t.Errorf("fast path took %s, which it must leave to encoding/json/v2", s)
		}
	}
}

// FuzzFastHeader: whatever the fast path accepts, encoding/json/v2 decodes
// without error to the same header. (Run longer with
// go test ./internal/serve -run '^$' -fuzz FuzzFastHeader -fuzztime 1m.)
func FuzzFastHeader(f *testing.F) {
	for _, s := range append(fastSeeds, slowSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := fastHeader(b)
		if !ok {
			return
		}
		var want inferRequestJSON
		if err := jsonv2.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, which v2 refuses: %v", b, err)
		}
		if diff := cmp.Diff(want, fast, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("fast path decoded %q differently (-v2 +fast):\n%s", b, diff)
		}
		for i := range want.Inputs {
			if (want.Inputs[i].Shape == nil) != (fast.Inputs[i].Shape == nil) {
				t.Fatalf("%q: input %d shape nil in one path only (a missing shape is an error, an empty one a scalar)", b, i)
			}
		}
	})
}
