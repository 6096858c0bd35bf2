package registry_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// Each fixture uploaded through Forge's endpoint is detected, validated and
// described as the library that wrote it says, and comes back byte for byte.
func TestUploadFixtures(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		for i, name := range []string{"mlp.onnx", "xgb_binary.json", "xgb_multiclass.json", "xgb_regression.json"} {
			ref := reference(t, name)
			d, err := e.client.UploadModelVersion(ctx, "fixtures", []string{filepath.Join(fixtures, name)}, api.UploadOptions{Description: name})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want := string(rune('1' + i)); d.ModelVersion.Version != want {
				t.Errorf("%s: version %s, want %s", name, d.ModelVersion.Version, want)
			}
			if d.ModelFile != name || len(d.Files) != 1 || d.Files[0].Path != name || d.Files[0].Size != int64(len(fixture(t, name))) {
				t.Errorf("%s: model file %q, files %+v", name, d.ModelFile, d.Files)
			}
			if d.ModelVersion.Status != "READY" || d.ModelVersion.CurrentStage != "None" || d.Lineage.Source != "upload:"+name {
				t.Errorf("%s: %+v", name, d.ModelVersion)
			}
			sig := d.Signature
			if sig == nil || len(sig.Inputs) != 1 || len(sig.Outputs) != 1 {
				t.Fatalf("%s: signature %+v", name, sig)
			}
			perRow := num(ref["outputs_per_row"])
			wantOut := []int64{-1}
			if perRow > 1 {
				wantOut = []int64{-1, perRow}
			}
			if strings.HasSuffix(name, ".onnx") {
				if d.Format != "onnx" || sig.ONNX == nil || sig.ONNX.Opset == 0 {
					t.Errorf("%s: format %s, %+v", name, d.Format, sig.ONNX)
				}
				// The MLP was exported with a dynamic batch axis.
				in, out := sig.Inputs[0], sig.Outputs[0]
				if in.Name != ref["input_name"] || in.Datatype != "FP32" || !slices.Equal(in.Shape, []int64{-1, num(ref["num_features"])}) ||
					out.Name != ref["output_name"] || out.Datatype != "FP32" || !slices.Equal(out.Shape, []int64{-1, perRow}) {
					t.Errorf("%s: signature %+v", name, sig)
				}
			} else {
				x := sig.XGBoost
				if d.Format != "xgboost" || x == nil || x.Objective != ref["objective"] || int64(x.NumFeatures) != num(ref["num_features"]) ||
					int64(x.NumTrees) != num(ref["num_trees"]) || (perRow > 1 && int64(x.NumClasses) != perRow) || (perRow == 1 && x.NumClasses != 0) {
					t.Errorf("%s: format %s, xgboost %+v, reference %v/%v/%v", name, d.Format, x, ref["objective"], ref["num_features"], ref["num_trees"])
				}
				if !slices.Equal(sig.Inputs[0].Shape, []int64{-1, num(ref["num_features"])}) || !slices.Equal(sig.Outputs[0].Shape, wantOut) {
					t.Errorf("%s: tensors %+v -> %+v", name, sig.Inputs, sig.Outputs)
				}
			}
			t.Logf("%s: format %s, inputs %+v, outputs %+v, onnx %+v, xgboost %+v", name, d.Format, sig.Inputs, sig.Outputs, sig.ONNX, sig.XGBoost)

			dir := t.TempDir()
			if _, err := e.client.DownloadModel(ctx, "fixtures", d.ModelVersion.Version, dir); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(got, fixture(t, name)) {
				t.Fatalf("%s: downloaded file differs (%v)", name, err)
			}
		}
		// A file that claims no served format is "other", with no signature.
		d, err := e.client.UploadModelVersion(ctx, "fixtures", []string{filepath.Join(fixtures, "generate.py")}, api.UploadOptions{})
		if err != nil || d.Format != "other" || d.Signature != nil || d.ModelVersion.Version != "5" {
			t.Fatalf("other: %+v, %v", d, err)
		}
	})
}

// A corrupt or truncated model file is refused with 400 and nothing is
// stored: no model, no version number used, no blob.
func TestCorruptModelsRefused(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		dir := t.TempDir()
		onnxBytes, xgbBytes := fixture(t, "mlp.onnx"), fixture(t, "xgb_binary.json")
		cases := []struct {
			file, format string
			content      []byte
		}{
			{"truncated.onnx", "", onnxBytes[:len(onnxBytes)/2]},
			{"garbage.onnx", "", []byte("this is not a protobuf \xff\xff\xff\xff")},
			{"truncated.json", "", xgbBytes[:len(xgbBytes)/2]},
			{"notxgb.json", "xgboost", []byte(`{"hello": "world"}`)},
			{"model.bin", "onnx", []byte("not onnx either")},
		}
		for _, tc := range cases {
			p := filepath.Join(dir, tc.file)
			if err := os.WriteFile(p, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := e.client.UploadModelVersion(ctx, "bad", []string{p}, api.UploadOptions{Format: tc.format})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "INVALID_PARAMETER_VALUE" || !strings.Contains(ae.Message, tc.file) {
				t.Fatalf("%s: got %v, want 400 naming the file", tc.file, err)
			}
			t.Logf("%s: %s", tc.file, ae.Message)
		}
		e.refused("GET", "/api/2.0/mlflow/registered-models/get?name=bad", nil, 404, "RESOURCE_DOES_NOT_EXIST")
		if blobs, err := e.blobs.List(ctx, ""); err != nil || len(blobs) != 0 {
			t.Fatalf("blobs after refused uploads: %v, %v", blobs, err)
		}
		// An existing model keeps its numbering: the refused upload used none.
		e.must("POST", "/api/2.0/mlflow/registered-models/create", map[string]any{"name": "bad"})
		p := filepath.Join(dir, "truncated.onnx")
		if _, err := e.client.UploadModelVersion(ctx, "bad", []string{p}, api.UploadOptions{}); err == nil {
			t.Fatal("truncated upload to an existing model accepted")
		}
		d, err := e.client.UploadModelVersion(ctx, "bad", []string{filepath.Join(fixtures, "mlp.onnx")}, api.UploadOptions{})
		if err != nil || d.ModelVersion.Version != "1" {
			t.Fatalf("good upload after refused ones: %+v, %v", d.ModelVersion, err)
		}
		// Through MLflow's create, from a run whose artifact is corrupt.
		e.runs.add(t, "run1", "model/model.onnx", onnxBytes[:100])
		msg := e.refused("POST", "/api/2.0/mlflow/model-versions/create", map[string]any{"name": "bad", "source": "runs:/run1/model"}, 400, "INVALID_PARAMETER_VALUE")
		if !strings.Contains(msg, "model.onnx: not a valid ONNX model") {
			t.Errorf("message %q", msg)
		}
		out := e.must("GET", "/api/2.0/mlflow/model-versions/search?filter="+url.QueryEscape("name = 'bad'"), nil)
		if vs := out["model_versions"].([]any); len(vs) != 1 {
			t.Fatalf("versions after refused create: %v", vs)
		}
	})
}

// The MLflow model-registry API end to end, with raw requests and MLflow's
// field names and error codes.
func TestMLflowRegistryAPI(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		const p = "/api/2.0/mlflow/"
		e.runs.add(t, "r1", "model/model.onnx", fixture(t, "mlp.onnx"))
		e.runs.add(t, "r1", "model/MLmodel", []byte("flavors: {}\n"))
		e.runs.add(t, "r2", "xgb/model.json", fixture(t, "xgb_multiclass.json"))

		out := e.must("POST", p+"registered-models/create", map[string]any{
			"name": "iris", "description": "an MLP", "tags": []map[string]string{{"key": "team", "value": "a"}},
		})
		rm := out["registered_model"].(map[string]any)
		if rm["name"] != "iris" || rm["description"] != "an MLP" || num(rm["creation_timestamp"]) == 0 || num(rm["last_updated_timestamp"]) == 0 {
			t.Fatalf("create: %v", rm)
		}
		e.refused("POST", p+"registered-models/create", map[string]any{"name": "iris"}, 400, "RESOURCE_ALREADY_EXISTS")
		e.refused("POST", p+"registered-models/create", map[string]any{"name": ""}, 400, "INVALID_PARAMETER_VALUE")
		e.refused("GET", p+"registered-models/get?name=nope", nil, 404, "RESOURCE_DOES_NOT_EXIST")

		// Version 1 from runs:/, version 2 from an mlflow-artifacts URI.
		out = e.must("POST", p+"model-versions/create", map[string]any{"name": "iris", "source": "runs:/r1/model", "run_id": "r1",
			"tags": []map[string]string{{"key": "k", "value": "v"}}})
		mv := out["model_version"].(map[string]any)
		if mv["version"] != "1" || mv["current_stage"] != "None" || mv["status"] != "READY" || mv["run_id"] != "r1" || mv["source"] != "runs:/r1/model" {
			t.Fatalf("create version: %v", mv)
		}
		out = e.must("POST", p+"model-versions/create", map[string]any{"name": "iris", "source": "mlflow-artifacts:/0/r2/artifacts/xgb"})
		if mv := out["model_version"].(map[string]any); mv["version"] != "2" || mv["run_id"] != "r2" {
			t.Fatalf("create version 2: %v", mv)
		}
		e.refused("POST", p+"model-versions/create", map[string]any{"name": "nope", "source": "runs:/r1/model"}, 404, "RESOURCE_DOES_NOT_EXIST")
		e.refused("POST", p+"model-versions/create", map[string]any{"name": "iris", "source": "runs:/r1/elsewhere"}, 400, "INVALID_PARAMETER_VALUE")

		d, err := e.client.GetModelVersionDetail(context.Background(), "iris", "1")
		if err != nil {
			t.Fatal(err)
		}
		if d.Format != "onnx" || d.ModelFile != "model.onnx" || len(d.Files) != 2 || d.Lineage.RunID != "r1" {
			t.Fatalf("detail of version 1: %+v", d)
		}
		// The version keeps its files when the run's artifacts go away.
		e.runs.deleteRun("r1")
		if _, err := e.client.DownloadModel(context.Background(), "iris", "1", t.TempDir()); err != nil {
			t.Fatalf("download after the run's artifacts were deleted: %v", err)
		}

		// Aliases.
		e.must("POST", p+"registered-models/alias", map[string]any{"name": "iris", "alias": "champion", "version": "1"})
		e.refused("POST", p+"registered-models/alias", map[string]any{"name": "iris", "alias": "champion", "version": "9"}, 400, "INVALID_PARAMETER_VALUE")
		e.refused("POST", p+"registered-models/alias", map[string]any{"name": "iris", "alias": "v2", "version": "2"}, 400, "INVALID_PARAMETER_VALUE")
		e.refused("POST", p+"registered-models/alias", map[string]any{"name": "nope", "alias": "a", "version": "1"}, 404, "RESOURCE_DOES_NOT_EXIST")
		out = e.must("GET", p+"registered-models/alias?name=iris&alias=champion", nil)
		if mv := out["model_version"].(map[string]any); mv["version"] != "1" || !slices.Equal(toStrings(mv["aliases"]), []string{"champion"}) {
			t.Fatalf("get alias: %v", mv)
		}
		e.refused("GET", p+"registered-models/alias?name=iris&alias=nobody", nil, 404, "RESOURCE_DOES_NOT_EXIST")
		// Version 2 is an XGBoost model, with other tensors than the ONNX
		// version 1: the move must be forced (TestAliasSignatureChange).
		e.refused("POST", p+"registered-models/alias", map[string]any{"name": "iris", "alias": "champion", "version": 2}, 409, "RESOURCE_CONFLICT")
		e.must("POST", p+"registered-models/alias", map[string]any{"name": "iris", "alias": "champion", "version": 2, "force": true})
		out = e.must("GET", p+"registered-models/get?name=iris", nil)
		rm = out["registered_model"].(map[string]any)
		if al := rm["aliases"].([]any); len(al) != 1 || al[0].(map[string]any)["version"] != "2" {
			t.Fatalf("aliases after move: %v", rm["aliases"])
		}

		// Versions: get, update, tags, stages.
		e.refused("GET", p+"model-versions/get?name=iris&version=7", nil, 404, "RESOURCE_DOES_NOT_EXIST")
		e.refused("GET", p+"model-versions/get?name=iris&version=x", nil, 400, "INVALID_PARAMETER_VALUE")
		out = e.must("PATCH", p+"model-versions/update", map[string]any{"name": "iris", "version": "1", "description": "first"})
		if mv := out["model_version"].(map[string]any); mv["description"] != "first" {
			t.Fatalf("update: %v", mv)
		}
		e.must("POST", p+"model-versions/set-tag", map[string]any{"name": "iris", "version": "2", "key": "k", "value": "w"})
		e.must("DELETE", p+"model-versions/delete-tag", map[string]any{"name": "iris", "version": "1", "key": "k"})
		e.refused("DELETE", p+"model-versions/delete-tag", map[string]any{"name": "iris", "version": "1", "key": "k"}, 404, "RESOURCE_DOES_NOT_EXIST")
		e.must("POST", p+"model-versions/transition-stage", map[string]any{"name": "iris", "version": "1", "stage": "production"})
		out = e.must("POST", p+"model-versions/transition-stage", map[string]any{"name": "iris", "version": "2", "stage": "Production", "archive_existing_versions": true})
		if mv := out["model_version"].(map[string]any); mv["current_stage"] != "Production" {
			t.Fatalf("transition: %v", mv)
		}
		e.refused("POST", p+"model-versions/transition-stage", map[string]any{"name": "iris", "version": "1", "stage": "Gone"}, 400, "INVALID_PARAMETER_VALUE")
		out = e.must("GET", p+"model-versions/get?name=iris&version=1", nil)
		if mv := out["model_version"].(map[string]any); mv["current_stage"] != "Archived" || mv["description"] != "first" || mv["tags"] != nil {
			t.Fatalf("version 1 after archive: %v", mv)
		}
		out = e.must("POST", p+"registered-models/get-latest-versions", map[string]any{"name": "iris", "stages": []string{"Production"}})
		if vs := out["model_versions"].([]any); len(vs) != 1 || vs[0].(map[string]any)["version"] != "2" {
			t.Fatalf("latest production: %v", vs)
		}
		out = e.must("GET", p+"registered-models/get-latest-versions?name=iris", nil)
		if vs := out["model_versions"].([]any); len(vs) != 2 {
			t.Fatalf("latest per stage: %v", vs)
		}
		out = e.must("GET", p+"model-versions/get-download-uri?name=iris&version=2", nil)
		if out["artifact_uri"] != "mlflow-artifacts:/0/r2/artifacts/xgb" {
			t.Fatalf("download uri: %v", out)
		}

		// Search, with filters compiled to SQL, and paging.
		for _, n := range []string{"iris-b", "Iris-c", "other"} {
			e.must("POST", p+"registered-models/create", map[string]any{"name": n})
		}
		e.must("POST", p+"registered-models/set-tag", map[string]any{"name": "other", "key": "team", "value": "b"})
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{"", []string{"Iris-c", "iris", "iris-b", "other"}},
			{"name = 'iris'", []string{"iris"}},
			{"name LIKE 'iris%'", []string{"iris", "iris-b"}},
			{"name ILIKE 'iris%'", []string{"Iris-c", "iris", "iris-b"}},
			{"name != 'iris' AND name LIKE '%s%'", []string{"Iris-c", "iris-b"}},
			{"tags.team = 'b'", []string{"other"}},
			{"tags.team LIKE '%'", []string{"iris", "other"}},
		} {
			out := e.must("GET", p+"registered-models/search?filter="+url.QueryEscape(tc.filter), nil)
			var got []string
			for _, m := range out["registered_models"].([]any) {
				got = append(got, m.(map[string]any)["name"].(string))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("search %q: got %v, want %v", tc.filter, got, tc.want)
			}
		}
		e.refused("GET", p+"registered-models/search?filter="+url.QueryEscape("name = iris"), nil, 400, "INVALID_PARAMETER_VALUE")
		e.refused("GET", p+"registered-models/search?max_results=5000", nil, 400, "INVALID_PARAMETER_VALUE")
		var paged []string
		tok := ""
		for pages := 0; ; pages++ {
			q := url.Values{"max_results": {"3"}, "order_by": {"name DESC"}}
			if tok != "" {
				q.Set("page_token", tok)
			}
			out := e.must("GET", p+"registered-models/search?"+q.Encode(), nil)
			for _, m := range out["registered_models"].([]any) {
				paged = append(paged, m.(map[string]any)["name"].(string))
			}
			tok, _ = out["next_page_token"].(string)
			if tok == "" {
				break
			}
		}
		if !slices.Equal(paged, []string{"other", "iris-b", "iris", "Iris-c"}) {
			t.Errorf("paged search: %v", paged)
		}
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{"name = 'iris'", []string{"2", "1"}},
			{"run_id = 'r1'", []string{"1"}},
			{"run_id IN ('r1', 'r2')", []string{"2", "1"}},
			{"tags.k = 'w'", []string{"2"}},
			{"version_number > 1", []string{"2"}},
			{"source_path LIKE 'runs:/%'", []string{"1"}},
		} {
			out := e.must("GET", p+"model-versions/search?filter="+url.QueryEscape(tc.filter), nil)
			if got := versionsOf(out); !slices.Equal(got, tc.want) {
				t.Errorf("version search %q: got %v, want %v", tc.filter, got, tc.want)
			}
		}

		// Rename, delete a version (its alias goes too), delete the model.
		out = e.must("POST", p+"registered-models/rename", map[string]any{"name": "iris", "new_name": "flowers"})
		if rm := out["registered_model"].(map[string]any); rm["name"] != "flowers" {
			t.Fatalf("rename: %v", rm)
		}
		e.refused("POST", p+"registered-models/rename", map[string]any{"name": "flowers", "new_name": "other"}, 400, "RESOURCE_ALREADY_EXISTS")
		e.refused("GET", p+"model-versions/get?name=iris&version=1", nil, 404, "RESOURCE_DOES_NOT_EXIST")
		e.must("GET", p+"model-versions/get?name=flowers&version=1", nil)
		e.must("DELETE", p+"model-versions/delete", map[string]any{"name": "flowers", "version": "2"})
		e.refused("GET", p+"registered-models/alias?name=flowers&alias=champion", nil, 404, "RESOURCE_DOES_NOT_EXIST")
		e.must("PATCH", p+"registered-models/update", map[string]any{"name": "flowers", "description": "renamed"})
		e.must("DELETE", p+"registered-models/delete-tag", map[string]any{"name": "flowers", "key": "team"})
		out = e.must("GET", p+"registered-models/get?name=flowers", nil)
		if rm := out["registered_model"].(map[string]any); rm["description"] != "renamed" || rm["tags"] != nil || rm["aliases"] != nil {
			t.Fatalf("after update: %v", rm)
		}
		// MLflow clients may send DELETE parameters in the query string.
		e.must("DELETE", p+"registered-models/delete?name=flowers", nil)
		e.refused("GET", p+"registered-models/get?name=flowers", nil, 404, "RESOURCE_DOES_NOT_EXIST")
		e.refused("DELETE", p+"registered-models/delete", map[string]any{"name": "flowers"}, 404, "RESOURCE_DOES_NOT_EXIST")
		// A new model of the old name starts again at version 1.
		out = e.must("POST", p+"registered-models/create", map[string]any{"name": "flowers"})
		e.runs.add(t, "r3", "m.onnx", fixture(t, "mlp.onnx"))
		out = e.must("POST", p+"model-versions/create", map[string]any{"name": "flowers", "source": "runs:/r3/m.onnx"})
		if mv := out["model_version"].(map[string]any); mv["version"] != "1" {
			t.Fatalf("recreated model: %v", mv)
		}
	})
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func versionsOf(out map[string]any) []string {
	var got []string
	for _, v := range out["model_versions"].([]any) {
		got = append(got, v.(map[string]any)["version"].(string))
	}
	return got
}
