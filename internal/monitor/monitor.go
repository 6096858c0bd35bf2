// Package monitor watches deployed models: it compares the payloads a
// deployment logged (the dataset payloads.MODEL that serving writes) with
// the data its model was trained on, found through lineage (the served
// version's run and the dataset versions that run used as inputs).
package monitor

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/drift"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/tracking"
)

// What the monitor reads of other components; each is satisfied by the
// component's own type.
type (
	Deployments interface {
		Get(ctx context.Context, name string) (deploy.Deployment, error)
		List(ctx context.Context) ([]deploy.Deployment, error)
	}
	Registry interface {
		Resolve(ctx context.Context, name, ref string) (registry.Version, error)
	}
	Runs interface {
		GetRun(ctx context.Context, id string) (tracking.Run, error)
	}
	Datasets interface {
		File(ctx context.Context, ref string) (datasets.Version, string, error)
		Versions(ctx context.Context, name string) ([]datasets.Version, error)
	}
)

// Monitor computes drift reports of deployments. Build it with New.
type Monitor struct {
	Deployments Deployments
	Registry    Registry
	Runs        Runs
	Datasets    Datasets
	Engine      *duckq.Engine
	// PayloadPrefix is serving's payload dataset prefix ("payloads.").
	PayloadPrefix string
	// DB holds the feedback (labels) sent for logged predictions.
	DB      *sqlstore.DB
	TempDir string
	// Flush, when set, writes the payloads logged so far (the inference
	// server's buffer), so that a report asked for now sees them.
	Flush func()
	Log   *slog.Logger
	Now   func() time.Time // time.Now when nil
	// Score, when set, runs a deployment's model on its reference, whose
	// outputs the logged outputs are compared with (outputs.go).
	Score Scorer
	Watch Watch

	ws *watchState // set by New

	driftGauge, outputGauge, datasetGauge, qualityGauge *prometheus.GaugeVec
}

// New returns m with its gauges registered on reg: the latest report's
// statistic per feature (forge_feature_drift) and share of drifted
// features (forge_deployment_drift_share), so an alerting stack can
// alert on them.
func New(m Monitor, reg prometheus.Registerer) *Monitor {
	m.ws = &watchState{doneCh: make(chan struct{}), latest: map[string]api.MonitorReport{},
		kick: make(chan struct{}, 1), firing: map[alertKey]bool{}, outputs: &refOutputs{},
		observed: map[string]map[string]api.DriftReport{}}
	m.driftGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "forge_feature_drift",
		Help: "Drift statistic of a deployment's input feature in its latest drift report (a p-value for ks and chisquare, a distance for wasserstein and jensenshannon)."},
		[]string{"deployment", "version", "feature", "method"})
	m.outputGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "forge_output_drift",
		Help: "Drift statistic of a deployment's logged output against the model's outputs on its reference in its latest drift report (a p-value for ks and chisquare, a distance for wasserstein and jensenshannon)."},
		[]string{"deployment", "version", "output", "method"})
	m.datasetGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "forge_deployment_drift_share",
		Help: "Share of a deployment's input features drifted in its latest drift report."},
		[]string{"deployment", "version"})
	m.qualityGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "forge_deployment_quality",
		Help: "Live quality of a deployment's model version in its latest quality report, from the labels sent as feedback (metric: accuracy, auc, rmse, mae)."},
		[]string{"deployment", "version", "metric"})
	if reg != nil {
		reg.MustRegister(m.driftGauge, m.outputGauge, m.datasetGauge, m.qualityGauge)
	}
	return &m
}

// observe sets the gauges to r, beside the deployment's latest report
// of the other role (stable or canary) while it has one.
func (m *Monitor) observe(r api.DriftReport) {
	if m.driftGauge == nil {
		return
	}
	m.ws.mu.Lock()
	defer m.ws.mu.Unlock()
	byRole := m.ws.observed[r.Deployment]
	if byRole == nil {
		byRole = map[string]api.DriftReport{}
		m.ws.observed[r.Deployment] = byRole
	}
	byRole[r.Role] = r
	m.setGauges(r.Deployment, byRole)
}

// forgetCanary drops a deployment's canary drift from the gauges once it
// has no canary.
func (m *Monitor) forgetCanary(deployment string) {
	if m.driftGauge == nil {
		return
	}
	m.ws.mu.Lock()
	defer m.ws.mu.Unlock()
	if byRole := m.ws.observed[deployment]; byRole != nil {
		if _, ok := byRole["canary"]; ok {
			delete(byRole, "canary")
			m.setGauges(deployment, byRole)
		}
	}
}

func (m *Monitor) setGauges(deployment string, byRole map[string]api.DriftReport) {
	// A feature or method of an older report is not this one's.
	m.driftGauge.DeletePartialMatch(prometheus.Labels{"deployment": deployment})
	m.outputGauge.DeletePartialMatch(prometheus.Labels{"deployment": deployment})
	m.datasetGauge.DeletePartialMatch(prometheus.Labels{"deployment": deployment})
	for _, r := range byRole {
		v := strconv.FormatInt(r.Version, 10)
		for _, f := range r.Features {
			m.driftGauge.WithLabelValues(r.Deployment, v, f.Name, f.Method).Set(f.Statistic)
		}
		for _, f := range r.Outputs {
			m.outputGauge.WithLabelValues(r.Deployment, v, f.Name, f.Method).Set(f.Statistic)
		}
		m.datasetGauge.WithLabelValues(r.Deployment, v).Set(r.Share)
	}
}

// Routes are the monitoring API.
func (m *Monitor) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /api/forge/v1/deployments/{name}/drift", Handler: httpapi.JSON(m.Log, m.drift), Access: httpapi.Read,
			Summary: "Drift of a deployment's logged inputs against its reference (its model's training data)"},
		{Pattern: "POST /api/forge/v1/deployments/{name}/feedback", Handler: httpapi.JSON(m.Log, m.feedback), Access: httpapi.Write,
			Summary: "Labels (ground truth) for a deployment's logged predictions, by request id"},
		{Pattern: "GET /api/forge/v1/deployments/{name}/monitor", Handler: httpapi.JSON(m.Log, m.report), Access: httpapi.Read,
			Summary: "A deployment's drift and quality report, computed now (the gauges then show it)"},
		{Pattern: "GET /api/forge/v1/monitor", Handler: httpapi.JSON(m.Log, m.latest), Access: httpapi.Read,
			Summary: "The latest reports of the watched deployments, refreshed every monitor.interval"},
		{Pattern: "POST /api/forge/v1/monitor/refresh", Handler: httpapi.JSON(m.Log, m.refreshNow), Access: httpapi.Write,
			Summary: "Refresh every watched deployment's report now, alerting as the interval does"},
		{Pattern: "GET /api/forge/v1/deployments/{name}/quality", Handler: httpapi.JSON(m.Log, m.quality), Access: httpapi.Read,
			Summary: "Live quality (accuracy, AUC, RMSE) of a deployment's versions from the labels sent as feedback"},
	}
}

func (m *Monitor) drift(r *http.Request) (any, error) {
	q := r.URL.Query()
	w, err := ParseWindow(q.Get("window"))
	if err != nil {
		return nil, err
	}
	var canary bool
	switch role := q.Get("role"); role {
	case "", "stable":
	case "canary":
		canary = true
	default:
		return nil, forge.Errorf(forge.Invalid, "invalid role %q: want stable or canary", role)
	}
	m.flush()
	return m.DriftOf(r.Context(), r.PathValue("name"), w, q.Get("reference"), canary)
}

func (m *Monitor) report(r *http.Request) (any, error) {
	w, err := ParseWindow(r.URL.Query().Get("window"))
	if err != nil {
		return nil, err
	}
	m.flush()
	return m.Report(r.Context(), r.PathValue("name"), w)
}

func (m *Monitor) latest(r *http.Request) (any, error) {
	return api.MonitorReports{Reports: m.Latest()}, nil
}

func (m *Monitor) refreshNow(r *http.Request) (any, error) {
	if err := m.Sync(r.Context()); err != nil {
		return nil, err
	}
	return api.MonitorReports{Reports: m.Latest()}, nil
}

// Window is the part of the logged payloads a report looks at: the last
// Duration, or the last Rows rows.
type Window struct {
	Duration time.Duration
	Rows     int64
}

func (w Window) String() string {
	if w.Rows > 0 {
		return strconv.FormatInt(w.Rows, 10) + "rows"
	}
	// 1h, 1h30m, 30m rather than Go's 1h0m0s.
	s := w.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var rowsRe = regexp.MustCompile(`^([0-9]+)\s*rows?$`)

// ParseWindow reads "1h", "30m" (any Go duration) or "10000rows";
// "" is the last hour.
func ParseWindow(s string) (Window, error) {
	if s == "" {
		return Window{Duration: time.Hour}, nil
	}
	if m := rowsRe.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err == nil && n > 0 {
			return Window{Rows: n}, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return Window{Duration: d}, nil
	}
	return Window{}, forge.Errorf(forge.Invalid, "invalid window %q: want a duration such as 1h or a row count such as 10000rows", s)
}

var badDatasetChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// source is where a deployment's logged inputs are and what names them.
type source struct {
	d         deploy.Deployment
	v         registry.Version // the stable version, or the canary's
	model     string           // v's model
	dataset   string           // the payload dataset
	files     []string         // its Parquet files that can hold rows of the window
	where     string           // the window's rows, as a SQL condition
	limit     string           // " ORDER BY ... LIMIT n" for a row window
	perDeploy bool             // the deployment's own log (columns named after the reference)
}

// open finds the deployment, its stable version (its canary's, with
// canary) and the payload files of w.
func (m *Monitor) open(ctx context.Context, name string, w Window, canary bool) (source, error) {
	d, err := m.Deployments.Get(ctx, name)
	if err != nil {
		return source{}, err
	}
	model, ref := d.Model, d.Ref
	if canary {
		if d.CanaryModel == "" {
			return source{}, forge.Errorf(forge.NotFound, "deployment %s has no canary", name)
		}
		model, ref = d.CanaryModel, d.CanaryRef
	}
	v, err := m.Registry.Resolve(ctx, model, ref)
	if err != nil {
		return source{}, err
	}
	src := source{d: d, v: v, model: model}
	if d.PayloadRate > 0 {
		src.dataset, src.perDeploy = deploy.PayloadDataset(d.Name), true
	} else {
		src.dataset = m.PayloadPrefix + badDatasetChars.ReplaceAllString(model, "_")
	}
	if src.files, err = m.windowFiles(ctx, src.dataset, w); err != nil {
		return source{}, err
	}
	if len(src.files) == 0 {
		return source{}, forge.Errorf(forge.NotFound, "deployment %s has no logged payloads in the last %s (dataset %s; deploy it with --log-payloads)", name, w, src.dataset)
	}
	src.where = "model = " + quoteString(model) + " AND version = " + quoteString(strconv.FormatInt(v.Version, 10))
	if src.perDeploy {
		src.where += " AND deployment = " + quoteString(d.Name)
	}
	if w.Rows > 0 {
		src.limit = fmt.Sprintf(" ORDER BY CAST(timestamp AS TIMESTAMP) DESC LIMIT %d", w.Rows)
	} else {
		src.where += " AND " + m.since(w)
	}
	return src, nil
}

// since is the condition on a logged row's time that w began.
func (m *Monitor) since(w Window) string {
	t := m.now().Add(-w.Duration).UTC().Format("2006-01-02 15:04:05.999999")
	return "CAST(timestamp AS TIMESTAMP) >= TIMESTAMP " + quoteString(t)
}

// Drift compares the deployment's stable model's logged inputs in w with
// reference ("" for the deployment's own, else the one lineage gives: the
// dataset input of the served version's run).
func (m *Monitor) Drift(ctx context.Context, name string, w Window, reference string) (api.DriftReport, error) {
	return m.DriftOf(ctx, name, w, reference, false)
}

// DriftOf is Drift of the deployment's canary version, with canary.
func (m *Monitor) DriftOf(ctx context.Context, name string, w Window, reference string, canary bool) (api.DriftReport, error) {
	src, err := m.open(ctx, name, w, canary)
	if err != nil {
		return api.DriftReport{}, err
	}
	role := "stable"
	if canary {
		role = "canary"
	}
	d, v := src.d, src.v
	if reference == "" {
		reference = d.Reference
	}
	if reference == "" {
		if reference, err = m.lineage(ctx, v); err != nil {
			return api.DriftReport{}, err
		}
	}
	refV, refPath, err := m.Datasets.File(ctx, reference)
	if err != nil {
		return api.DriftReport{}, fmt.Errorf("reference %s: %w", reference, err)
	}
	out := api.DriftReport{Deployment: d.Name, Model: src.model, Version: v.Version, Role: role, Reference: refV.Ref(), Window: w.String(),
		Features: []api.FeatureDrift{}}
	db, err := m.Engine.Open(ctx)
	if err != nil {
		return api.DriftReport{}, err
	}
	defer db.Close()
	refCols, err := drift.Columns(ctx, db, drift.Parquet(refPath))
	if err != nil {
		return api.DriftReport{}, fmt.Errorf("read reference %s: %w", refV.Ref(), err)
	}
	// The model's inputs are the logged in_* columns, in order, named by
	// the reference's columns, in order; in a deployment's own log, the
	// columns are named after the reference's already. Trailing reference
	// columns beyond the inputs (the label, usually) are left out.
	var inputs []string
	if src.perDeploy {
		inputs = d.PayloadColumns
	} else {
		curCols, err := drift.Columns(ctx, db, drift.Parquet(src.files...))
		if err != nil {
			return api.DriftReport{}, fmt.Errorf("read payloads %s: %w", src.dataset, err)
		}
		for _, c := range curCols {
			if strings.HasPrefix(c.Name, "in_") {
				inputs = append(inputs, c.Name)
			}
		}
	}
	if len(refCols) < len(inputs) {
		return api.DriftReport{}, forge.Errorf(forge.Invalid, "reference %s has %d columns but model %s version %d takes %d inputs: the reference's columns must name the inputs, in order",
			refV.Ref(), len(refCols), src.model, v.Version, len(inputs))
	}
	rep, err := CompareParquet(ctx, db, refPath, refCols, src.files, src.where+src.limit, inputs)
	if err != nil {
		return api.DriftReport{}, err
	}
	if rep.CurrentRows == 0 {
		return api.DriftReport{}, forge.Errorf(forge.NotFound, "deployment %s has no logged payloads of %s version %d in the last %s", name, src.model, v.Version, w)
	}
	out.ReferenceRows, out.CurrentRows = rep.ReferenceRows, rep.CurrentRows
	out.Drifted, out.Share, out.ShareThreshold, out.DatasetDrift = rep.Drifted, rep.Share, rep.ShareLimit, rep.DatasetDrift
	out.Features = features(rep, inputs)
	if out.Outputs, err = m.outputDrift(ctx, db, src, refV.Ref(), refPath, refCols, len(inputs), src.where+src.limit); err != nil {
		if ctx.Err() != nil {
			return api.DriftReport{}, ctx.Err()
		}
		out.Outputs, out.OutputsError = []api.FeatureDrift{}, forge.Message(err)
	}
	m.observe(out)
	return out, nil
}

// windowFiles returns the Parquet files of the payload dataset's versions
// that can hold rows of w: every version written since the window began,
// or the newest versions holding at least w.Rows rows.
func (m *Monitor) windowFiles(ctx context.Context, name string, w Window) ([]string, error) {
	vs, err := m.Datasets.Versions(ctx, name) // newest first
	if forge.KindOf(err) == forge.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	since := m.now().Add(-w.Duration).UnixMilli()
	var files []string
	var rows int64
	for _, v := range vs {
		if w.Rows > 0 && rows >= w.Rows*2 {
			break // other versions' rows may be of other model versions: keep some margin
		}
		if w.Rows == 0 && v.CreatedAt < since {
			break // written before the window began: its rows are older still
		}
		_, p, err := m.Datasets.File(ctx, v.Ref())
		if err != nil {
			return nil, err
		}
		files = append(files, p)
		rows += v.Rows
	}
	slices.Reverse(files)
	return files, nil
}

func (m *Monitor) flush() {
	if m.Flush != nil {
		m.Flush()
	}
}

func (m *Monitor) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// CompareParquet is the drift of inputs, columns of the Parquet files cur
// in the rows that filter keeps (a condition, with an optional ORDER BY
// ... LIMIT), named by the first columns of the reference's Parquet file
// (refCols, in order). The window is read once, into a temporary table;
// the reference is read where it lies.
func CompareParquet(ctx context.Context, db *sql.DB, ref string, refCols []drift.Column, cur []string, filter string, inputs []string) (drift.Report, error) {
	refSel, curSel := make([]string, len(inputs)), make([]string, len(inputs))
	cols := make([]drift.Column, len(inputs))
	for i, in := range inputs {
		cols[i] = refCols[i]
		refSel[i] = quoteIdent(refCols[i].Name)
		curSel[i] = quoteIdent(in) + " AS " + quoteIdent(refCols[i].Name)
	}
	stmts := []string{
		// No statistic depends on the rows' order (a row window orders
		// itself), and copying the window in parallel, unordered, takes
		// half the time. The setting is this connection's own database's.
		"SET preserve_insertion_order = false",
		"CREATE OR REPLACE TEMP VIEW ref AS SELECT " + strings.Join(refSel, ", ") + " FROM " + drift.Parquet(ref),
		"CREATE OR REPLACE TEMP TABLE cur AS SELECT " + strings.Join(curSel, ", ") + " FROM " + drift.Parquet(cur...) + " WHERE " + filter,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return drift.Report{}, fmt.Errorf("select the window: %w", err)
		}
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS cur")
	return drift.Compare(ctx, db, "ref", "cur", cols, drift.Options{ReferenceKey: fileKey(ref)})
}

// fileKey names the content of the file at path, for drift's reference
// cache: a dataset version's file is never rewritten, and a file that was
// would have another size or time.
func fileKey(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano())
}
