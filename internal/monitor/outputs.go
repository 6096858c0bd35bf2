package monitor

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/drift"
	"github.com/forge-mlops/forge/internal/duckq"
)

// Output drift compares the outputs a deployment logged with the outputs
// its model gives on its reference: the served version run once on the
// reference's rows (its first columns, the inputs), the result kept as a
// Parquet file per deployment, model version and reference version. The
// reference's label is not what the model outputs (a probability is not a
// 0/1 label), so comparing with it would flag drift that is not there;
// the model's own outputs on its training data are what its outputs
// should look like while its inputs do.

// maxScoredRows bounds the reference rows the model is run on.
const maxScoredRows = 200_000

// Scorer runs a deployment's model version on rows of inputs laid out as
// the payload log lays them out, and returns the outputs as it names and
// lays them out (serve.Server.ScoreRows).
type Scorer func(ctx context.Context, deployment, version string, rows [][]float64) ([]string, [][]any, error)

// refOutputs caches the Parquet files of the model's outputs on a reference.
type refOutputs struct {
	mu    sync.Mutex
	files map[string]string
}

// outputDrift is the drift of the logged outputs of src in the window's
// rows (filter) against the model's outputs on the reference.
func (m *Monitor) outputDrift(ctx context.Context, db *sql.DB, src source, refRef, refPath string, refCols []drift.Column, inputs int, filter string) ([]api.FeatureDrift, error) {
	curCols, err := drift.Columns(ctx, db, drift.Parquet(src.files...))
	if err != nil {
		return nil, fmt.Errorf("read payloads %s: %w", src.dataset, err)
	}
	var logged []string
	for _, c := range curCols {
		if strings.HasPrefix(c.Name, "out_") {
			logged = append(logged, c.Name)
		}
	}
	if len(logged) == 0 {
		return nil, forge.Errorf(forge.NotFound, "the payload log holds no outputs")
	}
	ver := strconv.FormatInt(src.v.Version, 10)
	path, err := m.referenceOutputs(ctx, db, src.d.Name, src.d.Model, ver, refRef, refPath, refCols[:inputs])
	if err != nil {
		return nil, err
	}
	refOut, err := drift.Columns(ctx, db, drift.Parquet(path))
	if err != nil {
		return nil, err
	}
	have := map[string]drift.Column{}
	for _, c := range refOut {
		have[c.Name] = c
	}
	var cols []drift.Column
	var names, sel []string
	for _, name := range logged {
		if c, ok := have[name]; ok {
			cols = append(cols, c)
			names, sel = append(names, name), append(sel, quoteIdent(name))
		}
	}
	if len(cols) == 0 {
		return nil, forge.Errorf(forge.Invalid, "the logged outputs %s are none of the model's outputs on the reference", strings.Join(logged, ", "))
	}
	stmts := []string{
		"CREATE OR REPLACE TEMP VIEW refout AS SELECT " + strings.Join(sel, ", ") + " FROM " + drift.Parquet(path),
		"CREATE OR REPLACE TEMP TABLE curout AS SELECT " + strings.Join(sel, ", ") + " FROM " + drift.Parquet(src.files...) + " WHERE " + filter,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("select the window's outputs: %w", err)
		}
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS curout")
	rep, err := drift.Compare(ctx, db, "refout", "curout", cols, drift.Options{ReferenceKey: fileKey(path)})
	if err != nil {
		return nil, err
	}
	return features(rep, names), nil
}

// features are rep's features as the API has them; columns are the
// payload log's names of them, in order.
func features(rep drift.Report, columns []string) []api.FeatureDrift {
	out := make([]api.FeatureDrift, 0, len(rep.Features))
	for i, f := range rep.Features {
		out = append(out, api.FeatureDrift{Name: f.Name, Column: columns[i], Kind: f.Kind, Method: f.Method,
			Statistic: f.Statistic, Threshold: f.Threshold, Drifted: f.Drifted, PSI: f.PSI, KS: f.KS, KSPValue: f.KSPValue,
			Wasserstein: f.Wasserstein, ChiSquarePValue: f.ChiSquarePValue, JensenShannon: f.JensenShannon})
	}
	return out
}

// referenceOutputs returns the Parquet file of the outputs of the
// deployment's model version on the reference's rows, computing it the
// first time. Rows with a missing or non-finite input are left out (no
// model takes them); of a reference of more than maxScoredRows rows, a
// repeatable sample of that many is scored.
func (m *Monitor) referenceOutputs(ctx context.Context, db *sql.DB, deployment, model, ver, refRef, refPath string, cols []drift.Column) (string, error) {
	if m.Score == nil {
		return "", forge.Errorf(forge.Unavailable, "no model server to compute the model's outputs on the reference")
	}
	sum := sha256.Sum256([]byte(deployment + "\x00" + model + "\x00" + ver + "\x00" + refRef))
	key := hex.EncodeToString(sum[:12])
	c := m.ws.outputs
	c.mu.Lock()
	defer c.mu.Unlock() // one computation at a time; later reports wait for it
	if p, ok := c.files[key]; ok {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	exprs := make([]string, len(cols))
	conds := make([]string, len(cols))
	for i, col := range cols {
		if col.Kind != drift.Numeric {
			return "", forge.Errorf(forge.Invalid, "reference %s column %q is not a number: the model's outputs on it cannot be computed", refRef, col.Name)
		}
		exprs[i] = "TRY_CAST(" + quoteIdent(col.Name) + " AS DOUBLE)"
		conds[i] = "isfinite(" + exprs[i] + ")"
	}
	// A larger reference is sampled (repeatably): the outputs' histogram
	// needs no more, and the rows are held in memory to be scored.
	rs, err := db.QueryContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+drift.Parquet(refPath)+" WHERE "+strings.Join(conds, " AND ")+
		fmt.Sprintf(" USING SAMPLE reservoir(%d ROWS) REPEATABLE (42)", maxScoredRows))
	if err != nil {
		return "", fmt.Errorf("read reference %s: %w", refRef, err)
	}
	var rows [][]float64
	for rs.Next() {
		row := make([]float64, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			rs.Close()
			return "", err
		}
		rows = append(rows, row)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", forge.Errorf(forge.Invalid, "reference %s has no row of finite inputs", refRef)
	}
	names, outs, err := m.Score(ctx, deployment, ver, rows)
	if err != nil {
		return "", fmt.Errorf("model %s version %s on reference %s: %w", model, ver, refRef, err)
	}
	dir := m.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	src := filepath.Join(dir, "forge-refout-"+key+".jsonl")
	dst := filepath.Join(dir, "forge-refout-"+key+".parquet")
	defer os.Remove(src)
	if err := writeJSONL(src, names, outs); err != nil {
		return "", err
	}
	if _, err := m.Engine.Convert(ctx, duckq.Source{Path: src, Format: duckq.FormatJSONL}, dst, duckq.ConvertOptions{}); err != nil {
		return "", fmt.Errorf("the model's outputs on reference %s: %w", refRef, err)
	}
	if c.files == nil {
		c.files = map[string]string{}
	}
	c.files[key] = dst
	return dst, nil
}

func writeJSONL(path string, names []string, rows [][]any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	keys := make([][]byte, len(names))
	for i, n := range names {
		keys[i], _ = json.Marshal(n)
	}
	for _, row := range rows {
		w.WriteByte('{')
		for i, v := range row {
			if i > 0 {
				w.WriteByte(',')
			}
			w.Write(keys[i])
			w.WriteByte(':')
			b, err := json.Marshal(v)
			if err != nil { // NaN and infinities have no JSON form
				b = []byte("null")
			}
			w.Write(b)
		}
		w.WriteString("}\n")
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
