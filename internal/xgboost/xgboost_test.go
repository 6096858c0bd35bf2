package xgboost

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/forge-mlops/forge"
)

const modelDir = "../../testdata/models"

// f32 decodes a reference value: the shortest decimal of a float32, parsed
// straight to float32 so no double rounding creeps in; null is NaN.
type f32 float32

func (f *f32) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = f32(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 32)
	*f = f32(v)
	return err
}

// reference is a NAME.reference.json written by testdata/models/generate.py:
// inputs and what XGBoost itself predicted for them.
type reference struct {
	Model         string  `json:"model"`
	Objective     string  `json:"objective"`
	NumFeatures   int     `json:"num_features"`
	NumTrees      int     `json:"num_trees"`
	OutputsPerRow int     `json:"outputs_per_row"`
	Inputs        [][]f32 `json:"inputs"`
	Margins       [][]f32 `json:"margins"`
	Outputs       [][]f32 `json:"outputs"`
}

func loadReference(t testing.TB, path string) *reference {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(ref.Inputs) == 0 || len(ref.Inputs) != len(ref.Outputs) || len(ref.Inputs) != len(ref.Margins) {
		t.Fatalf("%s: %d inputs, %d outputs, %d margins", path, len(ref.Inputs), len(ref.Outputs), len(ref.Margins))
	}
	return &ref
}

func loadModel(t testing.TB, name string) *Model {
	t.Helper()
	f, err := os.Open(filepath.Join(modelDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return m
}

func flatten(rows [][]f32) []float32 {
	var out []float32
	for _, r := range rows {
		for _, v := range r {
			out = append(out, float32(v))
		}
	}
	return out
}

// near reports whether got matches want to 1e-6, absolute for values up to
// 1 and relative above (regression targets run into the hundreds).
func near(got, want float32) bool {
	d := math.Abs(float64(got) - float64(want))
	return d <= 1e-6*math.Max(1, math.Abs(float64(want)))
}

func TestMatchesXGBoost(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(modelDir, "xgb_*.reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The four the serving path relies on must be there; a glob that finds
	// nothing must not pass.
	for _, want := range []string{"xgb_binary", "xgb_multiclass", "xgb_softmax", "xgb_regression"} {
		if _, err := os.Stat(filepath.Join(modelDir, want+".reference.json")); err != nil {
			t.Errorf("fixture missing: %v", err)
		}
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".reference.json")
		t.Run(name, func(t *testing.T) {
			ref := loadReference(t, path)
			m := loadModel(t, ref.Model)
			info := m.Info()
			if info.Objective != ref.Objective || info.NumFeature != ref.NumFeatures ||
				info.NumTrees != ref.NumTrees || m.OutputsPerRow() != ref.OutputsPerRow {
				t.Fatalf("info %+v, outputs/row %d; reference says %s, %d features, %d trees, %d outputs/row",
					info, m.OutputsPerRow(), ref.Objective, ref.NumFeatures, ref.NumTrees, ref.OutputsPerRow)
			}
			if info.Version != "1.7.4" {
				t.Errorf("version %q, want 1.7.4", info.Version)
			}
			rows := flatten(ref.Inputs)
			n := len(ref.Inputs)

			out := make([]float32, n*m.OutputsPerRow())
			if err := m.Predict(rows, n, out); err != nil {
				t.Fatal(err)
			}
			compare(t, "output", out, ref.Outputs)

			margins := make([]float32, n*len(ref.Margins[0]))
			if err := m.PredictMargin(rows, n, margins); err != nil {
				t.Fatal(err)
			}
			compare(t, "margin", margins, ref.Margins)
		})
	}
}

func compare(t *testing.T, what string, got []float32, want [][]f32) {
	t.Helper()
	bad, exact, worst := 0, 0, 0.0
	for r, row := range want {
		for c, w := range row {
			g := got[r*len(row)+c]
			if g == float32(w) {
				exact++
			}
			worst = max(worst, math.Abs(float64(g)-float64(w)))
			if !near(g, float32(w)) {
				if bad++; bad <= 5 {
					t.Errorf("row %d %s %d: got %v, xgboost %v", r, what, c, g, w)
				}
			}
		}
	}
	t.Logf("%ss: %d of %d bit-identical to xgboost, largest difference %.3g", what, exact, len(got), worst)
	if bad > 5 {
		t.Errorf("%d %ss differ in all", bad, what)
	}
}

// The fixtures must exercise the two rules that naive evaluators get wrong:
// a value equal to a threshold goes right, and NaN follows default_left.
// This checks that the reference inputs really contain such cases.
func TestFixturesCoverEdgeCases(t *testing.T) {
	ref := loadReference(t, filepath.Join(modelDir, "xgb_binary.reference.json"))
	m := loadModel(t, ref.Model)
	ties, nans := 0, 0
	for _, row := range ref.Inputs {
		for _, root := range m.roots {
			for i := root; !m.nodes[i].isLeaf(i); {
				n := m.nodes[i]
				v := float32(row[n.feat])
				switch {
				case v != v:
					nans++
					i = n.missing
				case v == n.cond:
					ties++
					i = n.left + 1
				case v < n.cond:
					i = n.left
				default:
					i = n.left + 1
				}
			}
		}
	}
	if ties < 20 || nans < 20 {
		t.Errorf("reference rows reach %d splits at their threshold and %d with NaN; want at least 20 of each", ties, nans)
	}
}

// mutate loads xgb_binary.json as generic JSON, applies f, and re-encodes.
func mutate(t *testing.T, f func(doc map[string]any)) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(modelDir, "xgb_binary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(v any, path ...string) map[string]any {
	m := v.(map[string]any)
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func tree(doc map[string]any, i int) map[string]any {
	trees := obj(doc, "learner", "gradient_booster", "model")["trees"].([]any)
	return trees[i].(map[string]any)
}

func TestLoadRejects(t *testing.T) {
	original, err := os.ReadFile(filepath.Join(modelDir, "xgb_binary.json"))
	if err != nil {
		t.Fatal(err)
	}
	learner := func(doc map[string]any) map[string]any { return obj(doc, "learner") }
	tests := []struct {
		name string
		data []byte
		want string // in the client-visible message
	}{
		{"empty", nil, "empty"},
		{"truncated", original[:len(original)/2], "truncated"},
		{"truncated at end", original[:len(original)-1], "truncated"},
		{"not json", []byte("model = xgb.Booster()"), "not valid JSON"},
		{"trailing garbage", append(append([]byte{}, original...), "}}"...), "not valid JSON"},
		{"array", []byte("[1, 2]"), "expected"},
		{"no learner", []byte(`{"version": [1, 7, 4]}`), `no "learner"`},
		{"no model param", mutate(t, func(d map[string]any) { delete(learner(d), "learner_model_param") }), "learner_model_param"},
		{"no objective", mutate(t, func(d map[string]any) { delete(learner(d), "objective") }), "objective"},
		{"no booster", mutate(t, func(d map[string]any) { delete(learner(d), "gradient_booster") }), "gradient_booster"},
		{"gblinear", mutate(t, func(d map[string]any) { obj(d, "learner", "gradient_booster")["name"] = "gblinear" }), "gblinear"},
		{"unknown objective", mutate(t, func(d map[string]any) { obj(d, "learner", "objective")["name"] = "survival:cox" }), "survival:cox"},
		{"bad num_feature", mutate(t, func(d map[string]any) { obj(d, "learner", "learner_model_param")["num_feature"] = "thirty" }), "num_feature"},
		{"bad base_score", mutate(t, func(d map[string]any) { obj(d, "learner", "learner_model_param")["base_score"] = "x" }), "base_score"},
		{"logistic base_score 1", mutate(t, func(d map[string]any) { obj(d, "learner", "learner_model_param")["base_score"] = "1" }), "base_score"},
		{"binary with classes", mutate(t, func(d map[string]any) { obj(d, "learner", "learner_model_param")["num_class"] = "3" }), "num_class"},
		{"num_trees mismatch", mutate(t, func(d map[string]any) {
			obj(d, "learner", "gradient_booster", "model", "gbtree_model_param")["num_trees"] = "21"
		}), "num_trees"},
		{"tree_info out of range", mutate(t, func(d map[string]any) {
			obj(d, "learner", "gradient_booster", "model")["tree_info"].([]any)[3] = 1
		}), "tree_info[3]"},
		{"short right_children", mutate(t, func(d map[string]any) {
			tr := tree(d, 2)
			rc := tr["right_children"].([]any)
			tr["right_children"] = rc[:len(rc)-1]
		}), "tree 2: right_children"},
		{"num_nodes mismatch", mutate(t, func(d map[string]any) { obj(tree(d, 0), "tree_param")["num_nodes"] = "2" }), "num_nodes"},
		{"child out of range", mutate(t, func(d map[string]any) { tree(d, 1)["left_children"].([]any)[0] = 9999 }), "outside"},
		{"negative child", mutate(t, func(d map[string]any) { tree(d, 1)["right_children"].([]any)[0] = -5 }), "outside"},
		{"cycle", mutate(t, func(d map[string]any) { tree(d, 0)["left_children"].([]any)[0] = 0 }), "not a tree"},
		{"feature out of range", mutate(t, func(d map[string]any) { tree(d, 0)["split_indices"].([]any)[0] = 30 }), "feature 30"},
		{"categorical split", mutate(t, func(d map[string]any) { tree(d, 0)["split_type"].([]any)[0] = 1 }), "categorical"},
		{"default_left strings", mutate(t, func(d map[string]any) { tree(d, 0)["default_left"] = []any{"yes"} }), "default_left"},
		{"split_conditions strings", mutate(t, func(d map[string]any) { tree(d, 0)["split_conditions"].([]any)[0] = "0.5" }), "split_conditions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Load(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatalf("loaded a model with %d trees, want an error", m.Info().NumTrees)
			}
			if !forge.IsKind(err, forge.Invalid) {
				t.Fatalf("error kind %v (%v), want invalid", forge.KindOf(err), err)
			}
			if msg := forge.Message(err); !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not mention %q", msg, tt.want)
			}
		})
	}

	// The harness itself must not be what breaks the file.
	if _, err := Load(bytes.NewReader(mutate(t, func(map[string]any) {}))); err != nil {
		t.Fatalf("unmodified round trip: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestLoadReadErrorIsNotInvalid(t *testing.T) {
	_, err := Load(failingReader{})
	if err == nil || forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v, want the read error, not marked invalid", err)
	}
}

func TestPredictShapes(t *testing.T) {
	m := loadModel(t, "xgb_multiclass.json")
	nf, k := m.Info().NumFeature, m.OutputsPerRow()
	tests := []struct {
		name       string
		rows, outs int
		nrows      int
	}{
		{"short input", 2*nf - 1, 2 * k, 2},
		{"long input", 2*nf + 1, 2 * k, 2},
		{"short output", 2 * nf, 2*k - 1, 2},
		{"long output", 2 * nf, 2*k + 1, 2},
		{"negative rows", 0, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Predict(make([]float32, tt.rows), tt.nrows, make([]float32, tt.outs))
			if !forge.IsKind(err, forge.Invalid) {
				t.Errorf("got %v, want an invalid error", err)
			}
		})
	}
	if err := m.Predict(nil, 0, nil); err != nil {
		t.Errorf("zero rows: %v", err)
	}
}

func TestConcurrentPredict(t *testing.T) {
	ref := loadReference(t, filepath.Join(modelDir, "xgb_multiclass.reference.json"))
	m := loadModel(t, ref.Model)
	rows, n := flatten(ref.Inputs), len(ref.Inputs)
	want := make([]float32, n*m.OutputsPerRow())
	if err := m.Predict(rows, n, want); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			got := make([]float32, len(want))
			for range 20 {
				if err := m.Predict(rows, n, got); err != nil {
					errs <- err
					return
				}
				for i := range got {
					if got[i] != want[i] {
						errs <- errors.New("concurrent prediction differs from serial")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
