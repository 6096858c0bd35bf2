package monitor

import (
	"context"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/drift"
	"github.com/forge-mlops/forge/internal/registry"
)

// The logged row's own columns; a reference column may not take one.
var reserved = map[string]bool{"timestamp": true, "model": true, "version": true, "request_id": true, "deployment": true, "row": true}

// PayloadColumns finds a deployment's reference (ref, or when "" the
// dataset the stable version's run used as input) and checks that its
// columns can name the inputs of every version served: at least as many
// columns as a row has input elements, numbers for numeric inputs. It
// returns the names of the inputs, in order; none when ref is "" and
// lineage gives no reference (the log then names them in_NAME_J).
func (m *Monitor) PayloadColumns(ctx context.Context, ref string, versions []deploy.Resolved) ([]string, error) {
	if len(versions) == 0 {
		return nil, nil
	}
	given := ref != ""
	if !given {
		v, err := m.Registry.Resolve(ctx, versions[0].Model, versions[0].Version)
		if err != nil {
			return nil, err
		}
		if ref, err = m.lineage(ctx, v); err != nil {
			return nil, nil
		}
	}
	refV, path, err := m.Datasets.File(ctx, ref)
	if err != nil {
		if forge.KindOf(err) == forge.NotFound {
			return nil, forge.Errorf(forge.Invalid, "reference %s: %s", ref, forge.Message(err))
		}
		return nil, fmt.Errorf("reference %s: %w", ref, err)
	}
	db, err := m.Engine.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	cols, err := drift.Columns(ctx, db, drift.Parquet(path))
	if err != nil {
		return nil, fmt.Errorf("read reference %s: %w", refV.Ref(), err)
	}
	width := -1
	for _, rv := range versions {
		if rv.Signature == nil {
			continue // format other: its inputs are known once it runs
		}
		w, kinds := inputWidth(rv.Signature.Inputs)
		if w < 0 {
			continue
		}
		if len(cols) < w {
			return nil, forge.Errorf(forge.Invalid, "reference %s has %d columns but model %s version %s takes %d inputs per row (%s): the reference's columns must name the inputs, in order",
				refV.Ref(), len(cols), rv.Model, rv.Version, w, describeInputs(rv.Signature.Inputs))
		}
		for i, k := range kinds {
			if k == drift.Numeric && cols[i].Kind != drift.Numeric {
				return nil, forge.Errorf(forge.Invalid, "reference %s column %q (input %d of model %s version %s) is not a number, but the model's input is numeric",
					refV.Ref(), cols[i].Name, i+1, rv.Model, rv.Version)
			}
		}
		width = max(width, w)
	}
	if width < 0 {
		width = len(cols)
	}
	out := make([]string, width)
	for i := range out {
		c := cols[i].Name
		if reserved[c] || strings.HasPrefix(c, "out_") {
			return nil, forge.Errorf(forge.Invalid, "reference %s column %q would clash with the payload log's own column %q: rename it", refV.Ref(), c, c)
		}
		out[i] = c
	}
	return out, nil
}

// inputWidth is how many elements a row of the inputs has, and the kind
// of each; -1 when a dimension past the batch is not fixed.
func inputWidth(ins []forge.TensorSpec) (int, []string) {
	var kinds []string
	for _, t := range ins {
		per := 1
		for _, d := range t.Shape[min(1, len(t.Shape)):] {
			if d < 0 {
				return -1, nil
			}
			per *= int(d)
		}
		k := drift.Numeric
		if t.Datatype == "BYTES" {
			k = drift.Categorical
		}
		for range per {
			kinds = append(kinds, k)
		}
	}
	return len(kinds), kinds
}

func describeInputs(ins []forge.TensorSpec) string {
	var parts []string
	for _, t := range ins {
		parts = append(parts, fmt.Sprintf("%s %s %v", t.Name, t.Datatype, t.Shape))
	}
	return strings.Join(parts, ", ")
}

// lineage finds the dataset version the run of v used as input.
func (m *Monitor) lineage(ctx context.Context, v registry.Version) (string, error) {
	noRef := func(why string) error {
		return forge.Errorf(forge.Invalid, "model %s version %d has no reference dataset: %s; pass one with reference=DATASET@VERSION", v.Name, v.Version, why)
	}
	if v.RunID == "" {
		return "", noRef("it was not registered from a run")
	}
	run, err := m.Runs.GetRun(ctx, v.RunID)
	if err != nil {
		return "", fmt.Errorf("run %s of model %s version %d: %w", v.RunID, v.Name, v.Version, err)
	}
	for _, in := range run.Inputs {
		if ref, ok := strings.CutPrefix(in.Source, "forge:"); ok {
			if _, _, err := m.Datasets.File(ctx, ref); err == nil {
				return ref, nil
			}
		}
		// An MLflow log-inputs entry: a dataset of that name with that digest.
		vs, err := m.Datasets.Versions(ctx, in.Name)
		if err != nil {
			continue
		}
		digest := strings.TrimPrefix(in.Digest, "sha256:")
		for _, dv := range vs {
			if dv.Digest == digest {
				return dv.Ref(), nil
			}
		}
	}
	return "", noRef(fmt.Sprintf("its run %s logged no Forge dataset as input", v.RunID))
}
