package tracking_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

var ctx = context.Background()

func mustKind(t *testing.T, err error, k forge.Kind) {
	t.Helper()
	if forge.KindOf(err) != k || err == nil {
		t.Fatalf("got error %v (kind %v), want kind %v", err, forge.KindOf(err), k)
	}
}

func TestExperiments(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		def, err := s.GetExperiment(ctx, "0")
		if err != nil || def.Name != "Default" || def.LifecycleStage != "active" {
			t.Fatalf("default experiment: %+v %v", def, err)
		}
		id, err := s.CreateExperiment(ctx, "exp", "", []tracking.KV{{"team", "ml"}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.GetExperimentByName(ctx, "exp")
		if err != nil || e.ID != id || e.ArtifactLocation != "mlflow-artifacts:/"+id || !cmp.Equal(e.Tags, []tracking.KV{{"team", "ml"}}) {
			t.Fatalf("get by name: %+v %v", e, err)
		}
		_, err = s.CreateExperiment(ctx, "exp", "", nil)
		mustKind(t, err, forge.AlreadyExists)
		_, err = s.GetExperimentByName(ctx, "nope")
		mustKind(t, err, forge.NotFound)
		_, err = s.GetExperiment(ctx, "9999")
		mustKind(t, err, forge.NotFound)
		_, err = s.GetExperiment(ctx, "abc")
		mustKind(t, err, forge.NotFound) // as MLflow answers
		mustKind(t, s.DeleteExperiment(ctx, "0"), forge.Invalid)

		if err := s.RenameExperiment(ctx, id, "exp2"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetExperimentTag(ctx, id, tracking.KV{"team", "data"}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteExperiment(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: id})
		mustKind(t, err, forge.Invalid)
		active, _, err := s.SearchExperiments(ctx, tracking.Query{View: tracking.ActiveOnly})
		if err != nil || len(active) != 1 || active[0].ID != "0" {
			t.Fatalf("active experiments: %+v %v", active, err)
		}
		deleted, _, err := s.SearchExperiments(ctx, tracking.Query{View: tracking.DeletedOnly, Filter: "tags.team = 'data' AND name LIKE 'exp%'"})
		if err != nil || len(deleted) != 1 || deleted[0].Name != "exp2" {
			t.Fatalf("deleted experiments: %+v %v", deleted, err)
		}
		if err := s.RestoreExperiment(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, _, err = s.SearchExperiments(ctx, tracking.Query{Filter: "name = "})
		mustKind(t, err, forge.Invalid)
	})
}

func TestLoggingRules(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		run, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0", Name: "r", UserID: "ada"})
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != "RUNNING" || run.ArtifactURI != "mlflow-artifacts:/0/"+run.ID+"/artifacts" {
			t.Fatalf("new run: %+v", run)
		}
		pts := []tracking.Metric{
			{Key: "loss", Value: 1.5, Timestamp: 10, Step: 0},
			{Key: "loss", Value: 0.5, Timestamp: 11, Step: 2},
			{Key: "loss", Value: 0.9, Timestamp: 12, Step: 1}, // later, but a lower step: not the latest
			{Key: "nan", Value: math.NaN(), Timestamp: 1, Step: 0},
			{Key: "inf", Value: math.Inf(1), Timestamp: 1, Step: 0},
			{Key: "ninf", Value: math.Inf(-1), Timestamp: 1, Step: 0},
		}
		if err := s.LogBatch(ctx, run.ID, pts, []tracking.KV{{"lr", "0.1"}}, []tracking.KV{{"t", "v"}}); err != nil {
			t.Fatal(err)
		}
		// The same param value again is fine; a new value is refused, and
		// nothing else from that batch is stored.
		if err := s.LogBatch(ctx, run.ID, nil, []tracking.KV{{"lr", "0.1"}}, nil); err != nil {
			t.Fatal(err)
		}
		err = s.LogBatch(ctx, run.ID, []tracking.Metric{{Key: "partial", Value: 1, Timestamp: 1}}, []tracking.KV{{"lr", "0.2"}}, nil)
		mustKind(t, err, forge.Invalid)
		got, err := s.GetRun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		latest := map[string]float64{}
		for _, m := range got.Metrics {
			latest[m.Key] = m.Value
		}
		if _, ok := latest["partial"]; ok {
			t.Fatal("a refused batch left a metric behind")
		}
		if latest["loss"] != 0.5 || !math.IsNaN(latest["nan"]) || !math.IsInf(latest["inf"], 1) || !math.IsInf(latest["ninf"], -1) {
			t.Fatalf("latest metrics: %v", latest)
		}
		// The same point again (a client retrying a batch) is stored once.
		if err := s.LogBatch(ctx, run.ID, pts[:1], nil, nil); err != nil {
			t.Fatal(err)
		}
		hist, _, err := s.MetricHistory(ctx, run.ID, "loss", 0, "")
		if err != nil || len(hist) != 3 || hist[0].Step != 0 || hist[2].Step != 2 {
			t.Fatalf("history: %+v %v", hist, err)
		}

		// Limits.
		big := make([]tracking.Metric, 1001)
		for i := range big {
			big[i] = tracking.Metric{Key: "m", Value: 1, Timestamp: 1, Step: int64(i)}
		}
		mustKind(t, s.LogBatch(ctx, run.ID, big, nil, nil), forge.Invalid)
		many := make([]tracking.KV, 101)
		for i := range many {
			many[i] = tracking.KV{Key: fmt.Sprintf("p%d", i), Value: "v"}
		}
		mustKind(t, s.LogBatch(ctx, run.ID, nil, many, nil), forge.Invalid)
		mustKind(t, s.LogBatch(ctx, run.ID, nil, []tracking.KV{{strings.Repeat("k", 251), "v"}}, nil), forge.Invalid)
		mustKind(t, s.LogBatch(ctx, run.ID, nil, []tracking.KV{{"long", strings.Repeat("v", 6001)}}, nil), forge.Invalid)
		mustKind(t, s.LogBatch(ctx, run.ID, nil, nil, []tracking.KV{{"../etc", "v"}}), forge.Invalid)
		if hist, _, _ := s.MetricHistory(ctx, run.ID, "m", 0, ""); len(hist) != 0 {
			t.Fatalf("%d points of a refused batch stored", len(hist))
		}

		// Deleted runs take no writes; restored ones do.
		if err := s.DeleteRun(ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		mustKind(t, s.LogBatch(ctx, run.ID, pts[:1], nil, nil), forge.Invalid)
		if err := s.RestoreRun(ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		upd, err := s.UpdateRun(ctx, run.ID, "FINISHED", 99, "renamed")
		if err != nil || upd.Status != "FINISHED" || upd.EndTime != 99 || upd.Name != "renamed" {
			t.Fatalf("update: %+v %v", upd, err)
		}
		_, err = s.UpdateRun(ctx, run.ID, "DONE", 0, "")
		mustKind(t, err, forge.Invalid)
		mustKind(t, s.LogBatch(ctx, "nope", pts[:1], nil, nil), forge.NotFound)
		mustKind(t, s.DeleteTag(ctx, run.ID, "missing"), forge.NotFound)
		if err := s.DeleteTag(ctx, run.ID, "t"); err != nil {
			t.Fatal(err)
		}
	})
}

// populate makes runs with metric acc = i/n, param lr, a tag and names.
func populate(t *testing.T, s *tracking.Store, exp string, n int) []tracking.Run {
	t.Helper()
	var runs []tracking.Run
	for i := 0; i < n; i++ {
		r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: exp, Name: fmt.Sprintf("run-%02d", i), StartTime: int64(1000 + i)})
		if err != nil {
			t.Fatal(err)
		}
		metrics := []tracking.Metric{{Key: "acc", Value: float64(i) / float64(n), Timestamp: 1, Step: 0}}
		if i%5 == 4 {
			metrics = nil // some runs lack the metric
		}
		params := []tracking.KV{{"lr", fmt.Sprintf("0.%d", i%3)}}
		tags := []tracking.KV{{"team", []string{"Vision", "nlp"}[i%2]}}
		if err := s.LogBatch(ctx, r.ID, metrics, params, tags); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	return runs
}

func TestSearchRuns(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		runs := populate(t, s, "0", 20)
		names := func(rs []tracking.Run) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.Name)
			}
			return out
		}
		search := func(filter string, order ...string) []string {
			t.Helper()
			rs, _, err := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, Filter: filter, OrderBy: order})
			if err != nil {
				t.Fatalf("search %q: %v", filter, err)
			}
			return names(rs)
		}
		sorted := func(ss []string) []string { sort.Strings(ss); return ss }

		if got := search("metrics.acc >= 0.85"); !cmp.Equal(sorted(got), []string{"run-17", "run-18"}) {
			t.Errorf("metric filter: %v", got)
		}
		if got := search("params.lr = '0.1' AND tags.team = 'nlp' AND metrics.acc < 0.5"); !cmp.Equal(sorted(got), []string{"run-01", "run-07"}) {
			t.Errorf("combined filter: %v", got)
		}
		if got := search("tags.team LIKE 'vis%'"); len(got) != 0 {
			t.Errorf("LIKE must be case-sensitive: %v", got)
		}
		if got := search("tags.team ILIKE 'vis%'"); len(got) != 10 {
			t.Errorf("ILIKE: %d runs", len(got))
		}
		if got := search("attributes.run_name = 'run-03'"); !cmp.Equal(got, []string{"run-03"}) {
			t.Errorf("run_name: %v", got)
		}
		if got := search(fmt.Sprintf("attributes.run_id IN ('%s', '%s')", runs[2].ID, runs[5].ID)); !cmp.Equal(sorted(got), []string{"run-02", "run-05"}) {
			t.Errorf("run_id IN: %v", got)
		}
		if got := search("attributes.start_time > 1017"); !cmp.Equal(sorted(got), []string{"run-18", "run-19"}) {
			t.Errorf("start_time: %v", got)
		}
		// order_by a metric: descending, runs without it last.
		got := search("", "metrics.acc DESC")
		if got[0] != "run-18" || got[1] != "run-17" {
			t.Errorf("order by metric: %v", got)
		}
		for _, n := range got[16:] {
			if n != "run-04" && n != "run-09" && n != "run-14" && n != "run-19" {
				t.Errorf("runs without the metric must sort last: %v", got)
			}
		}
		if got := search("", "attributes.start_time ASC"); got[0] != "run-00" || got[19] != "run-19" {
			t.Errorf("order by start_time: %v", got)
		}
		// Default order: newest first.
		if got := search(""); got[0] != "run-19" {
			t.Errorf("default order: %v", got)
		}

		// Paging visits every run once.
		seen := map[string]bool{}
		token := ""
		for pages := 0; ; pages++ {
			rs, next, err := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, MaxResults: 7, PageToken: token, OrderBy: []string{"metrics.acc"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if seen[r.ID] {
					t.Fatalf("run %s on two pages", r.Name)
				}
				seen[r.ID] = true
			}
			if next == "" {
				break
			}
			token = next
			if pages > 5 {
				t.Fatal("paging does not end")
			}
		}
		if len(seen) != 20 {
			t.Fatalf("paging saw %d runs, want 20", len(seen))
		}

		for _, bad := range []string{"metrics.acc > 'x'", "params.lr > 1", "foo.bar = 1", "metrics.acc > 1 OR metrics.acc < 0", "attributes.nope = 'x'"} {
			_, _, err := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, Filter: bad})
			mustKind(t, err, forge.Invalid)
		}
		_, _, err := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, PageToken: "garbage!"})
		mustKind(t, err, forge.Invalid)
		_, _, err = s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, MaxResults: 50001})
		mustKind(t, err, forge.Invalid)

		if err := s.DeleteRun(ctx, runs[0].ID); err != nil {
			t.Fatal(err)
		}
		if got := search(""); len(got) != 19 {
			t.Errorf("deleted run still active: %d", len(got))
		}
		del, _, _ := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, View: tracking.DeletedOnly})
		if len(del) != 1 || del[0].ID != runs[0].ID {
			t.Errorf("deleted view: %v", names(del))
		}
	})
}

// TestSearchRunsData checks that every run of a search comes back with its
// own params, tags, metrics and inputs (the loader matches rows to runs by
// position in the page), each in key order whatever order they were logged in.
func TestSearchRunsData(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		exp, err := s.CreateExperiment(ctx, "data", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]tracking.Run{}
		for i := range 60 { // over runLoads' threshold: the loads run at once
			r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: exp, Name: fmt.Sprintf("r%d", i), StartTime: int64(i)})
			if err != nil {
				t.Fatal(err)
			}
			v := fmt.Sprint(i)
			// Logged out of key order, and a different number of each per run.
			params := []tracking.KV{{"z", v}, {"a", v}, {"m", v}}[:1+i%3]
			tags := []tracking.KV{{"y", v}, {"b", v}}
			metrics := []tracking.Metric{{Key: "w", Value: float64(i), Timestamp: 1}, {Key: "c", Value: -float64(i), Timestamp: 2, Step: 3}}[:i%3]
			if err := s.LogBatch(ctx, r.ID, metrics, params, tags); err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				ins := []tracking.DatasetInput{{Name: "zeta", Digest: "d" + v, SourceType: "forge", Source: "s"}, {Name: "alpha", Digest: "d" + v, SourceType: "forge", Source: "s"}}
				if err := s.LogInputs(ctx, r.ID, ins); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.GetRun(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			want[r.ID] = got
			keys := func(kvs []tracking.KV) []string {
				var out []string
				for _, kv := range kvs {
					out = append(out, kv.Key)
				}
				return out
			}
			if ks := keys(got.Params); !sort.StringsAreSorted(ks) || len(ks) != 1+i%3 || got.Params[0].Value != v {
				t.Fatalf("run %d params: %+v", i, got.Params)
			}
			if ks := keys(got.Tags); !sort.StringsAreSorted(ks) || !slices.Contains(got.Tags, tracking.KV{Key: "b", Value: v}) {
				t.Fatalf("run %d tags: %+v", i, got.Tags)
			}
			if len(got.Metrics) != i%3 || (len(got.Metrics) == 2 && (got.Metrics[0].Key != "c" || got.Metrics[0].Value != -float64(i) || got.Metrics[0].Step != 3)) {
				t.Fatalf("run %d metrics: %+v", i, got.Metrics)
			}
			if i%4 == 0 && (len(got.Inputs) != 2 || got.Inputs[0].Name != "alpha" || got.Inputs[0].Digest != "d"+v) {
				t.Fatalf("run %d inputs: %+v", i, got.Inputs)
			}
		}
		rs, _, err := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{exp}})
		if err != nil || len(rs) != 60 {
			t.Fatalf("search: %d runs, %v", len(rs), err)
		}
		for _, r := range rs {
			if diff := cmp.Diff(want[r.ID], r); diff != "" {
				t.Errorf("run %s from search differs from GetRun (-get +search):\n%s", r.Name, diff)
			}
		}
	})
}

func TestInputsAndBulkHistory(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		r, _ := s.CreateRun(ctx, tracking.CreateRunOptions{})
		in := tracking.DatasetInput{Name: "sales", Digest: "abc123", SourceType: "forge", Source: "forge:sales@1",
			Tags: []tracking.KV{{"mlflow.data.context", "training"}}}
		if err := s.LogInputs(ctx, r.ID, []tracking.DatasetInput{in}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetRun(ctx, r.ID)
		if len(got.Inputs) != 1 || got.Inputs[0].Digest != "abc123" || got.Inputs[0].Tags[0].Value != "training" {
			t.Fatalf("inputs: %+v", got.Inputs)
		}
		rs, _, err := s.SearchRuns(ctx, tracking.Query{ExperimentIDs: []string{"0"}, Filter: "datasets.context = 'training' AND datasets.name = 'sales'"})
		if err != nil || len(rs) != 1 {
			t.Fatalf("dataset filter: %d %v", len(rs), err)
		}
		var pts []tracking.Metric
		for i := 0; i < 1000; i++ {
			pts = append(pts, tracking.Metric{Key: "loss", Value: float64(i), Timestamp: int64(i), Step: int64(i)})
		}
		if err := s.LogBatch(ctx, r.ID, pts, nil, nil); err != nil {
			t.Fatal(err)
		}
		sample, err := s.MetricHistoryBulkInterval(ctx, []string{r.ID}, "loss", 0, 0, 10)
		if err != nil || len(sample) != 10 || sample[0].Step != 0 || sample[9].Step != 999 || sample[0].RunID != r.ID {
			t.Fatalf("bulk interval: %d points %v", len(sample), err)
		}
		window, _ := s.MetricHistoryBulkInterval(ctx, []string{r.ID}, "loss", 100, 109, 50)
		if len(window) != 10 || window[0].Step != 100 {
			t.Fatalf("bulk interval window: %+v", window)
		}
	})
}

func TestArtifacts(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		blobs, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a := tracking.NewArtifacts(db, blobs)
		for _, p := range []string{"0/r/artifacts/model/model.onnx", "0/r/artifacts/model/MLmodel", "0/r/artifacts/plot.png", "0/r2/artifacts/x"} {
			if _, err := a.Put(ctx, p, strings.NewReader("content of "+p)); err != nil {
				t.Fatal(err)
			}
		}
		ls, err := a.List(ctx, "0/r/artifacts")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range ls {
			got = append(got, fmt.Sprintf("%s:%v", f.Path, f.IsDir))
		}
		if want := []string{"model:true", "plot.png:false"}; !cmp.Equal(got, want) {
			t.Fatalf("list: %v, want %v", got, want)
		}
		rc, fi, err := a.Open(ctx, "0/r/artifacts/model/MLmodel")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "content of 0/r/artifacts/model/MLmodel" || fi.Size != int64(len(b)) {
			t.Fatalf("open: %q", b)
		}
		if err := a.Delete(ctx, "0/r/artifacts/model"); err != nil {
			t.Fatal(err)
		}
		if files, _ := a.Walk(ctx, "0/r"); len(files) != 1 {
			t.Fatalf("after deleting a folder: %+v", files)
		}
		for _, bad := range []string{"../x", "a/../b", "a//b", "a/./b"} {
			_, err := a.Put(ctx, bad, strings.NewReader("x"))
			mustKind(t, err, forge.Invalid)
		}
		root, err := tracking.RunArtifactRoot("mlflow-artifacts://host:7700/3/abc/artifacts")
		if err != nil || root != "3/abc/artifacts" {
			t.Fatalf("root: %q %v", root, err)
		}
	})
}

// A large batch takes the one-statement path on SQLite: the same values come
// back as from single points, NaN and infinities included, keys with spaces and slashes
// too, and a repeated point is stored once.
func TestBulkBatchValues(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		r, _ := s.CreateRun(ctx, tracking.CreateRunOptions{})
		special := []float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.5, 1e-300, 1.7976931348623157e308, 3}
		var pts []tracking.Metric
		for i, v := range special {
			pts = append(pts, tracking.Metric{Key: "val loss/x:1", Value: v, Timestamp: int64(1700000000000 + i), Step: int64(i)})
		}
		pts = append(pts, pts[3], pts[4]) // repeats
		if err := s.LogBatch(ctx, r.ID, pts, nil, nil); err != nil {
			t.Fatal(err)
		}
		hist, _, err := s.MetricHistory(ctx, r.ID, "val loss/x:1", 0, "")
		if err != nil || len(hist) != len(special) {
			t.Fatalf("history: %d points (%v), want %d", len(hist), err, len(special))
		}
		for i, m := range hist {
			want := special[i]
			same := m.Value == want || (math.IsNaN(want) && math.IsNaN(m.Value))
			if !same || m.Step != int64(i) || m.Timestamp != int64(1700000000000+i) {
				t.Errorf("point %d: %+v, want value %v", i, m, want)
			}
		}
		run, _ := s.GetRun(ctx, r.ID)
		if len(run.Metrics) != 1 || run.Metrics[0].Value != 3 || run.Metrics[0].Step != 6 {
			t.Fatalf("latest: %+v", run.Metrics)
		}
	})
}

// A path is a file or a folder, never both: a file under a file, or a file
// where files already sit below, is refused and stores nothing.
func TestArtifactFileOrFolder(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		blobs, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a := tracking.NewArtifacts(db, blobs)
		for _, p := range []string{"0/r/artifacts/a", "0/r/artifacts/d/e/f", "0/r/artifacts/ab", "0/r/artifacts/d.txt"} {
			if _, err := a.Put(ctx, p, strings.NewReader("first "+p)); err != nil {
				t.Fatalf("put %s: %v", p, err)
			}
		}
		before, _ := blobs.List(ctx, "")
		for _, tc := range []struct{ path, want string }{
			{"0/r/artifacts/a/b", "is under '0/r/artifacts/a', which is a file"},
			{"0/r/artifacts/a/b/c", "is under '0/r/artifacts/a', which is a file"},
			{"0/r/artifacts/d", "is a folder (it holds '0/r/artifacts/d/e/f')"},
			{"0/r/artifacts/d/e", "is a folder"},
		} {
			_, err := a.Put(ctx, tc.path, strings.NewReader("refused "+tc.path))
			mustKind(t, err, forge.Invalid)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("put %s: %v, want %q", tc.path, err, tc.want)
			}
		}
		files, err := a.Walk(ctx, "0/r/artifacts")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f.Path)
		}
		if want := []string{"0/r/artifacts/a", "0/r/artifacts/ab", "0/r/artifacts/d.txt", "0/r/artifacts/d/e/f"}; !cmp.Equal(got, want) {
			t.Errorf("files after refused uploads: %v, want %v", got, want)
		}
		if after, _ := blobs.List(ctx, ""); len(after) != len(before) {
			t.Errorf("refused uploads stored %d blobs", len(after)-len(before))
		}
		// Replacing a file, and siblings sharing a prefix, are fine.
		for _, p := range []string{"0/r/artifacts/a", "0/r/artifacts/d/e/g"} {
			if _, err := a.Put(ctx, p, strings.NewReader("again")); err != nil {
				t.Errorf("put %s: %v", p, err)
			}
		}
	})
}
