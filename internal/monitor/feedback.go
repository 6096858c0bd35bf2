package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// FeedbackHorizon is how long after its prediction a label may arrive:
// the payload log of that long is searched for the request ids.
const FeedbackHorizon = 7 * 24 * time.Hour

// maxFeedback bounds the labels of one request.
const maxFeedback = 10000

func (m *Monitor) feedback(r *http.Request) (any, error) {
	var req api.FeedbackRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return nil, err
	}
	n, err := m.Feedback(r.Context(), r.PathValue("name"), req.Feedback)
	if err != nil {
		return nil, err
	}
	return api.FeedbackResult{Labels: n}, nil
}

// payloadDataset is the dataset d's predictions are logged to.
func (m *Monitor) payloadDataset(d deploy.Deployment) (name string, perDeploy bool) {
	if d.PayloadRate > 0 {
		return deploy.PayloadDataset(d.Name), true
	}
	return m.PayloadPrefix + badDatasetChars.ReplaceAllString(d.Model, "_"), false
}

// prediction says how to read a logged row's prediction.
type prediction struct {
	kind  string // float (a score or a value), int, text, or class (argmax of scores)
	expr  string // the prediction, SQL
	score string // for class with two columns: the second class's score
}

// predictionOf finds the first output in the logged columns: one column
// out_NAME, or out_NAME_0.. (scores per class, whose argmax is the class).
func predictionOf(cols []typedColumn) (prediction, error) {
	for i, c := range cols {
		if !strings.HasPrefix(c.name, "out_") {
			continue
		}
		if base, ok := strings.CutSuffix(c.name, "_0"); ok {
			var parts []string
			for _, o := range cols[i:] {
				if o.name == base+"_"+strconv.Itoa(len(parts)) {
					parts = append(parts, quoteIdent(o.name))
				}
			}
			if len(parts) > 1 {
				p := prediction{kind: "class", expr: "list_position([" + strings.Join(parts, ", ") + "], greatest(" + strings.Join(parts, ", ") + ")) - 1"}
				if len(parts) == 2 {
					p.score = parts[1]
				}
				return p, nil
			}
		}
		t := strings.ToUpper(c.typ)
		switch {
		case t == "FLOAT" || t == "DOUBLE" || strings.HasPrefix(t, "DECIMAL"):
			return prediction{kind: "float", expr: quoteIdent(c.name), score: quoteIdent(c.name)}, nil
		case t == "BOOLEAN" || strings.Contains(t, "INT"):
			return prediction{kind: "int", expr: "CAST(" + quoteIdent(c.name) + " AS DOUBLE)"}, nil
		default:
			return prediction{kind: "text", expr: "CAST(" + quoteIdent(c.name) + " AS VARCHAR)"}, nil
		}
	}
	return prediction{}, forge.Errorf(forge.Invalid, "the payload log has no output column (out_*) to compare labels with")
}

type typedColumn struct{ name, typ string }

func describe(ctx context.Context, db *sql.DB, rel string) ([]typedColumn, error) {
	rows, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+rel+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []typedColumn
	for rows.Next() {
		var c typedColumn
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// labelText checks a label against the kind of prediction it is for and
// gives its stored form: a number's shortest text, 1/0 for true/false.
func labelText(v any, kind string) (string, error) {
	var num *float64
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return "", fmt.Errorf("%s is not a number", x)
		}
		num = &f
	case float64:
		num = &x
	case bool:
		f := 0.0
		if x {
			f = 1
		}
		num = &f
	case string:
		if kind != "text" {
			return "", fmt.Errorf("label %q is text, but the model predicts numbers", x)
		}
		return x, nil
	case nil:
		return "", fmt.Errorf("no label")
	default:
		return "", fmt.Errorf("label %v is not a number, a string or a bool", x)
	}
	switch kind {
	case "text":
		return "", fmt.Errorf("label %v is a number, but the model predicts text", *num)
	case "int", "class":
		if *num != math.Trunc(*num) || math.IsInf(*num, 0) {
			return "", fmt.Errorf("label %v is not a class: the model predicts whole numbers", *num)
		}
	}
	if math.IsNaN(*num) || math.IsInf(*num, 0) {
		return "", fmt.Errorf("label %v is not finite", *num)
	}
	return strconv.FormatFloat(*num, 'g', -1, 64), nil
}

// Feedback stores labels for logged predictions of deployment name. Every
// request id must be in the payload log of the last FeedbackHorizon, with
// a label per logged row of a type the model predicts; otherwise nothing
// is stored. A label sent again replaces the first.
func (m *Monitor) Feedback(ctx context.Context, name string, fb []api.Feedback) (int, error) {
	if len(fb) == 0 {
		return 0, forge.Errorf(forge.Invalid, `no feedback: send {"feedback": [{"request_id": "...", "label": ...}]}`)
	}
	if len(fb) > maxFeedback {
		return 0, forge.Errorf(forge.Invalid, "%d labels in one request: send at most %d", len(fb), maxFeedback)
	}
	d, err := m.Deployments.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	dataset, perDeploy := m.payloadDataset(d)
	files, err := m.windowFiles(ctx, dataset, Window{Duration: FeedbackHorizon})
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, forge.Errorf(forge.NotFound, "deployment %s has logged no predictions in the last %s (dataset %s): only logged requests take feedback", name, FeedbackHorizon, dataset)
	}
	seen := map[string]bool{}
	ids := make([]string, 0, len(fb))
	for i, f := range fb {
		if f.RequestID == "" {
			return 0, forge.Errorf(forge.Invalid, "feedback %d has no request_id", i+1)
		}
		if seen[f.RequestID] {
			return 0, forge.Errorf(forge.Invalid, "request id %q has two labels in one request", f.RequestID)
		}
		seen[f.RequestID] = true
		ids = append(ids, quoteString(f.RequestID))
	}
	db, err := m.Engine.Open(ctx)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rel := parquetOf(files)
	cols, err := describe(ctx, db, rel)
	if err != nil {
		return 0, fmt.Errorf("read payloads %s: %w", dataset, err)
	}
	pred, err := predictionOf(cols)
	if err != nil {
		return 0, err
	}
	where := "request_id IN (" + strings.Join(ids, ", ") + ") AND " + m.since(Window{Duration: FeedbackHorizon})
	if perDeploy {
		where += " AND deployment = " + quoteString(d.Name)
	}
	logged := map[string]int{}
	rows, err := db.QueryContext(ctx, "SELECT request_id, count(*) FROM "+rel+" WHERE "+where+" GROUP BY request_id")
	if err != nil {
		return 0, fmt.Errorf("find the requests: %w", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return 0, err
		}
		logged[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	type label struct {
		id   string
		row  int
		text string
	}
	var labels []label
	for _, f := range fb {
		n, ok := logged[f.RequestID]
		if !ok {
			return 0, forge.Errorf(forge.NotFound, "unknown request id %q: deployment %s logged no prediction of that id in the last %s (only logged requests take feedback)", f.RequestID, name, FeedbackHorizon)
		}
		vals := f.Labels
		if vals == nil {
			vals = []any{f.Label}
		}
		if len(vals) != n {
			return 0, forge.Errorf(forge.Invalid, "request %q logged %d rows but has %d labels: send one label per row (labels: [...])", f.RequestID, n, len(vals))
		}
		if n > 1 && !perDeploy {
			return 0, forge.Errorf(forge.Invalid, "request %q logged %d rows: labels per row need the deployment's own payload log (forge deploy --log-payloads)", f.RequestID, n)
		}
		for row, v := range vals {
			text, err := labelText(v, pred.kind)
			if err != nil {
				return 0, forge.Errorf(forge.Invalid, "request %q row %d: %v", f.RequestID, row, err)
			}
			labels = append(labels, label{f.RequestID, row, text})
		}
	}
	now := sqlstore.Now()
	err = m.DB.Tx(ctx, func(tx *sqlstore.Tx) error {
		for _, l := range labels {
			if _, err := tx.Exec(ctx, `INSERT INTO deployment_feedback (deployment, request_id, row_index, label, created_at)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (deployment, request_id, row_index)
				DO UPDATE SET label = excluded.label, created_at = excluded.created_at`, d.Name, l.id, l.row, l.text, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store feedback of deployment %s: %w", name, err)
	}
	return len(labels), nil
}
