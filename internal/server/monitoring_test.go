package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
)

// infer sends rows of 30 features drawn from the training distribution
// (plus shift per feature) to deployment name as one request with id.
func (m *monitored) infer(t *testing.T, name, id string, rows int, shift map[int]float64) {
	t.Helper()
	data := make([]string, 0, rows*monFeatures)
	for range rows {
		for j := range monFeatures {
			data = append(data, fmt.Sprintf("%.7g", m.rng.NormFloat64()+shift[j]))
		}
	}
	body := fmt.Sprintf(`{"id":%q,"inputs":[{"name":"input__0","datatype":"FP32","shape":[%d,%d],"data":[%s]}]}`, id, rows, monFeatures, strings.Join(data, ","))
	if code, out := call(t, "POST", m.base+"/v2/models/"+name+"/infer", rawJSON(body)); code != 200 {
		t.Fatalf("infer: %d %s", code, out)
	}
}

// A deployment that logs its own payloads names the logged inputs after
// its reference's columns (lineage's by default); a reference that cannot
// name the model's inputs is refused, and nothing is stored.
func TestDeploymentPayloadLog(t *testing.T) {
	m := startMonitored(t, 0) // the server logs nothing by default
	ctx := context.Background()
	cols := make([]string, monFeatures)
	for j := range cols {
		cols[j] = fmt.Sprintf("f%02d", j)
	}
	m.addCSV(t, "narrow", "a,b\n1,2\n3,4\n")
	words := slices.Clone(cols)
	words[5] = "colour"
	m.addCSV(t, "words", strings.Join(words, ",")+"\n"+strings.Repeat("1,", 5)+"red"+strings.Repeat(",1", 24)+"\n")
	clash := slices.Clone(cols)
	clash[2] = "request_id"
	m.addCSV(t, "clash", strings.Join(clash, ",")+"\n"+strings.TrimSuffix(strings.Repeat("1,", 30), ",")+"\n")
	for _, tc := range []struct {
		spec api.DeploymentSpec
		want string
	}{
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "narrow@1"}, "reference narrow@1 has 2 columns but model cancer version 1 takes 30 inputs per row"},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "words@1"}, `column "colour" (input 6 of model cancer version 1) is not a number`},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "clash@1"}, `column "request_id" would clash`},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "nope@1"}, "reference nope@1"},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "train"}, `invalid reference "train"`},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 1.5}, "payload log rate 1.5 is out of range"},
	} {
		_, err := m.c.PutDeployment(ctx, "cancer-api", tc.spec)
		if httpStatus(err) != 400 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("deploy %+v: %v, want 400 saying %q", tc.spec, err, tc.want)
		}
		if _, err := m.c.GetDeployment(ctx, "cancer-api"); httpStatus(err) != 404 {
			t.Fatalf("after a refused deploy: %v, want no deployment stored", err)
		}
	}

	d, err := m.c.PutDeployment(ctx, "cancer-api", api.DeploymentSpec{Model: "cancer", Ref: "1", LogPayloads: 1})
	if err != nil || d.Status == nil || !d.Status.Ready {
		t.Fatalf("deploy: %+v %v", d, err)
	}
	if !slices.Equal(d.PayloadColumns, cols) || d.LogPayloads != 1 || d.Reference != "" {
		t.Fatalf("deployment logs %v at %v (reference %q), want the reference's columns f00..f29 at 1 with lineage's reference", d.PayloadColumns, d.LogPayloads, d.Reference)
	}
	m.infer(t, "cancer-api", "req-a", 3, nil)
	m.infer(t, "cancer-api", "req-b", 2, nil)
	m.s.FlushPayloads()

	// The logged rows: one per request row, with the request id, time,
	// model version, the inputs under the reference's names and the output.
	pq := filepath.Join(m.dir, "logged.parquet")
	f, err := os.Create(pq)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.c.GetDataset(ctx, "payloads.cancer-api", f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := m.eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, ids, bad int
	var names string
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT request_id),
		count(*) FILTER (WHERE version <> '1' OR model <> 'cancer' OR deployment <> 'cancer-api' OR timestamp IS NULL OR f29 IS NULL OR out_output__0 IS NULL)
		FROM read_parquet('`+pq+`')`).Scan(&n, &ids, &bad); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM read_parquet('`+pq+`'))`).Scan(&names); err != nil {
		t.Fatal(err)
	}
	want := "timestamp,model,version,request_id,deployment," + strings.Join(cols, ",") + ",out_output__0"
	if n != 5 || ids != 2 || bad != 0 || names != want {
		t.Errorf("logged %d rows of %d requests (%d incomplete), columns %s; want 5 rows of 2 requests, all complete, columns %s", n, ids, bad, names, want)
	}
}
