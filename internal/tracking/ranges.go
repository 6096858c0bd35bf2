package tracking

import (
	"context"
	"fmt"
	"net/http"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// MetricRange is, for one metric key, the lowest and highest value each
// active run of an experiment ever logged (NaN points left out), as
// columns: RunIDs[i] went from Min[i] to Max[i]. MLflow's runs/search
// gives a metric's last value only; a runs table also shows its min and
// max (the best loss, the peak memory) and sorts by them.
type MetricRange struct {
	Key    string    `json:"key"`
	RunIDs []string  `json:"run_ids"`
	Min    []float64 `json:"min"`
	Max    []float64 `json:"max"`
}

// maxRangeKeys bounds the keys of one request.
const maxRangeKeys = 100

// MetricRanges answers a MetricRange for each key asked (every key logged
// in the experiment when none is), in key order; a key no run logged
// answers empty columns.
func (s *Store) MetricRanges(ctx context.Context, experimentID string, keys []string) ([]MetricRange, error) {
	if len(keys) > maxRangeKeys {
		return nil, forge.Errorf(forge.Invalid, "give at most %d key parameters, got %d", maxRangeKeys, len(keys))
	}
	if _, err := s.GetExperiment(ctx, experimentID); err != nil {
		return nil, err
	}
	n, _ := parseExperimentID(experimentID) // GetExperiment has checked it
	q := `SELECT m.key, m.run_uuid, min(m.value), max(m.value) FROM runs r JOIN metrics m ON m.run_uuid = r.run_uuid
		WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' AND NOT m.is_nan`
	args := []any{n}
	if len(keys) > 0 {
		q += " AND m.key IN (" + sqlstore.Placeholders(len(keys)) + ")"
		for _, k := range keys {
			args = append(args, k)
		}
	}
	rows, err := s.db.Query(ctx, q+" GROUP BY m.key, m.run_uuid ORDER BY m.key, m.run_uuid", args...)
	if err != nil {
		return nil, fmt.Errorf("metric ranges: %w", err)
	}
	defer rows.Close()
	var out []MetricRange
	for rows.Next() {
		var key, run string
		var lo, hi float64
		if err := rows.Scan(&key, &run, &lo, &hi); err != nil {
			return nil, fmt.Errorf("metric ranges: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Key != key {
			out = append(out, MetricRange{Key: key})
		}
		r := &out[len(out)-1]
		r.RunIDs, r.Min, r.Max = append(r.RunIDs, run), append(r.Min, finite(lo)), append(r.Max, finite(hi))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metric ranges: %w", err)
	}
	if len(keys) == 0 {
		return out, nil
	}
	byKey := map[string]*MetricRange{}
	for i := range out {
		byKey[out[i].Key] = &out[i]
	}
	all := make([]MetricRange, 0, len(keys))
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if r := byKey[k]; r != nil {
			all = append(all, *r)
		} else {
			all = append(all, MetricRange{Key: k, RunIDs: []string{}, Min: []float64{}, Max: []float64{}})
		}
	}
	return all, nil
}

func (a *API) rangeRoutes() []httpapi.Route {
	return []httpapi.Route{{Pattern: "GET /api/forge/v1/metrics/ranges", Access: httpapi.Read,
		Summary: "each active run's min and max of each metric `key` (all keys if none) in `experiment_id`, as columns (gzip when accepted)",
		Handler: http.HandlerFunc(a.serveRanges)}}
}

func (a *API) serveRanges(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("experiment_id")
	if err := httpapi.Required("experiment_id", id); err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	ranges, err := a.store.MetricRanges(r.Context(), id, q["key"])
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	if ranges == nil {
		ranges = []MetricRange{}
	}
	writeGzipJSON(w, r, a, map[string][]MetricRange{"ranges": ranges})
}
