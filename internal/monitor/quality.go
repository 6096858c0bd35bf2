package monitor

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/drift"
)

func parquetOf(files []string) string { return drift.Parquet(files...) }

func (m *Monitor) quality(r *http.Request) (any, error) {
	w, err := ParseWindow(r.URL.Query().Get("window"))
	if err != nil {
		return nil, err
	}
	return m.Quality(r.Context(), r.PathValue("name"), w)
}

// Quality joins the predictions deployment name logged in w with the
// labels sent for them and scores each model version: accuracy (and AUC
// for two classes with scores) for classes, RMSE and MAE for values. A
// float prediction is a class score when every label is 0 or 1 (a class
// is a score of at least 0.5), a value otherwise.
func (m *Monitor) Quality(ctx context.Context, name string, w Window) (api.QualityReport, error) {
	d, err := m.Deployments.Get(ctx, name)
	if err != nil {
		return api.QualityReport{}, err
	}
	dataset, perDeploy := m.payloadDataset(d)
	files, err := m.windowFiles(ctx, dataset, w)
	if err != nil {
		return api.QualityReport{}, err
	}
	if len(files) == 0 {
		return api.QualityReport{}, forge.Errorf(forge.NotFound, "deployment %s has no logged predictions in the last %s (dataset %s; deploy it with --log-payloads)", name, w, dataset)
	}
	out := api.QualityReport{Deployment: d.Name, Window: w.String(), Versions: []api.VersionQuality{}}
	db, err := m.Engine.Open(ctx)
	if err != nil {
		return api.QualityReport{}, err
	}
	defer db.Close()
	rel := parquetOf(files)
	cols, err := describe(ctx, db, rel)
	if err != nil {
		return api.QualityReport{}, fmt.Errorf("read payloads %s: %w", dataset, err)
	}
	pred, err := predictionOf(cols)
	if err != nil {
		return api.QualityReport{}, err
	}
	if err := m.loadLabels(ctx, db, d.Name, w); err != nil {
		return api.QualityReport{}, err
	}
	where, rowExpr, limit := "TRUE", "0", ""
	if perDeploy {
		where, rowExpr = "deployment = "+quoteString(d.Name), "row"
	}
	if w.Rows > 0 {
		limit = fmt.Sprintf(" ORDER BY CAST(timestamp AS TIMESTAMP) DESC LIMIT %d", w.Rows)
	} else {
		where += " AND " + m.since(w)
	}
	score := "NULL::DOUBLE"
	if pred.score != "" {
		score = "CAST(" + pred.score + " AS DOUBLE)"
	}
	view := fmt.Sprintf(`CREATE TEMP VIEW j AS WITH p AS (SELECT model, version, request_id, %s AS row, %s AS pred, %s AS score
		FROM %s WHERE %s%s)
	SELECT p.*, l.label, TRY_CAST(l.label AS DOUBLE) AS lab FROM p LEFT JOIN labels l ON l.request_id = p.request_id AND l.row = p.row`,
		rowExpr, pred.expr, score, rel, where, limit)
	if _, err := db.ExecContext(ctx, view); err != nil {
		return api.QualityReport{}, fmt.Errorf("join the labels: %w", err)
	}
	task, hit := "classification", "(pred = lab)"
	switch pred.kind {
	case "text":
		hit = "(pred = label)"
	case "float":
		var binary bool
		if err := db.QueryRowContext(ctx, "SELECT coalesce(bool_and(lab IN (0, 1)), true) FROM j WHERE label IS NOT NULL").Scan(&binary); err != nil {
			return api.QualityReport{}, err
		}
		if binary {
			hit = "((pred >= 0.5)::INT = lab)"
		} else {
			task = "regression"
		}
	}
	q := `SELECT model, version, count(*), count(label), avg(` + hit + `::DOUBLE) FILTER (WHERE label IS NOT NULL),
		sqrt(avg((pred - lab) ^ 2) FILTER (WHERE label IS NOT NULL)), avg(abs(pred - lab)) FILTER (WHERE label IS NOT NULL)
		FROM j GROUP BY ALL ORDER BY model, version`
	if pred.kind == "text" {
		q = `SELECT model, version, count(*), count(label), avg(` + hit + `::DOUBLE) FILTER (WHERE label IS NOT NULL), NULL::DOUBLE, NULL::DOUBLE
		FROM j GROUP BY ALL ORDER BY model, version`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return api.QualityReport{}, fmt.Errorf("score the predictions: %w", err)
	}
	roles := m.roles(ctx, d.Model, d.Ref, d.CanaryModel, d.CanaryRef)
	for rows.Next() {
		var vq api.VersionQuality
		var acc, rmse, mae *float64
		if err := rows.Scan(&vq.Model, &vq.Version, &vq.Rows, &vq.Labeled, &acc, &rmse, &mae); err != nil {
			rows.Close()
			return api.QualityReport{}, err
		}
		vq.Role = roles[vq.Model+"@"+vq.Version]
		if vq.Role == "" {
			vq.Role = "previous"
		}
		if vq.Labeled > 0 {
			vq.Task = task
			if task == "regression" {
				vq.RMSE, vq.MAE = rmse, mae
			} else {
				vq.Accuracy = acc
			}
		}
		out.Versions = append(out.Versions, vq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return api.QualityReport{}, err
	}
	if task == "classification" && pred.score != "" {
		if err := m.auc(ctx, db, out.Versions); err != nil {
			return api.QualityReport{}, err
		}
	}
	m.observeQuality(out)
	return out, nil
}

// auc sets the AUC of each version with labels of both classes 0 and 1:
// the Mann-Whitney statistic over the scores, ties taking their mean rank.
func (m *Monitor) auc(ctx context.Context, db *sql.DB, vs []api.VersionQuality) error {
	rows, err := db.QueryContext(ctx, `WITH s AS (SELECT model, version, score, lab FROM j WHERE label IS NOT NULL AND score IS NOT NULL),
	r AS (SELECT model, version, lab, rank() OVER (PARTITION BY model, version ORDER BY score)
		+ (count(*) OVER (PARTITION BY model, version, score) - 1) / 2.0 AS rk FROM s)
	SELECT model, version, coalesce(sum(rk) FILTER (WHERE lab = 1), 0)::DOUBLE, count(*) FILTER (WHERE lab = 1), count(*) FILTER (WHERE lab = 0)
	FROM r GROUP BY ALL`)
	if err != nil {
		return fmt.Errorf("auc: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var model, version string
		var ranks float64
		var pos, neg int64
		if err := rows.Scan(&model, &version, &ranks, &pos, &neg); err != nil {
			return err
		}
		if pos == 0 || neg == 0 {
			continue
		}
		a := (ranks - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg))
		for i := range vs {
			if vs[i].Model == model && vs[i].Version == version {
				vs[i].AUC = &a
			}
		}
	}
	return rows.Err()
}

// loadLabels puts deployment name's labels that can be for predictions of
// w into the DuckDB table labels(request_id, row, label).
func (m *Monitor) loadLabels(ctx context.Context, db *sql.DB, name string, w Window) error {
	dir, err := os.MkdirTemp(m.TempDir, "forge-labels-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "labels.csv")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	cw.Write([]string{"request_id", "row", "label"})
	q := "SELECT request_id, row_index, label FROM deployment_feedback WHERE deployment = ?"
	args := []any{name}
	if w.Rows == 0 {
		// A label comes after its prediction, within the horizon.
		q += " AND created_at >= ?"
		args = append(args, m.now().Add(-w.Duration).UnixMilli())
	}
	rows, err := m.DB.Query(ctx, q, args...)
	if err != nil {
		f.Close()
		return fmt.Errorf("read feedback: %w", err)
	}
	for rows.Next() {
		var id, label string
		var row int
		if err := rows.Scan(&id, &row, &label); err != nil {
			rows.Close()
			f.Close()
			return err
		}
		cw.Write([]string{id, strconv.Itoa(row), label})
	}
	rows.Close()
	cw.Flush()
	err = cw.Error()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return fmt.Errorf("read feedback: %w", err)
	}
	_, err = db.ExecContext(ctx, `CREATE TEMP TABLE labels AS SELECT * FROM read_csv(`+quoteString(path)+`, header = true,
		columns = {'request_id': 'VARCHAR', 'row': 'INTEGER', 'label': 'VARCHAR'})`)
	return err
}

// roles names what each version is to the deployment now: model@version
// -> stable or canary.
func (m *Monitor) roles(ctx context.Context, model, ref, canaryModel, canaryRef string) map[string]string {
	out := map[string]string{}
	if canaryModel != "" {
		if v, err := m.Registry.Resolve(ctx, canaryModel, canaryRef); err == nil {
			out[v.Name+"@"+strconv.FormatInt(v.Version, 10)] = "canary"
		}
	}
	if v, err := m.Registry.Resolve(ctx, model, ref); err == nil {
		out[v.Name+"@"+strconv.FormatInt(v.Version, 10)] = "stable"
	}
	return out
}

// observeQuality sets forge_deployment_quality to r.
func (m *Monitor) observeQuality(r api.QualityReport) {
	if m.qualityGauge == nil {
		return
	}
	m.qualityGauge.DeletePartialMatch(prometheus.Labels{"deployment": r.Deployment})
	for _, v := range r.Versions {
		for metric, x := range map[string]*float64{"accuracy": v.Accuracy, "auc": v.AUC, "rmse": v.RMSE, "mae": v.MAE} {
			if x != nil {
				m.qualityGauge.WithLabelValues(r.Deployment, v.Version, metric).Set(*x)
			}
		}
	}
}
