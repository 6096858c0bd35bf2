package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// metricDef is a metric defined in Forge's code: a prometheus *Opts Name
// or the serve package's counter helper.
var metricDef = regexp.MustCompile(`(?:Name:\s*|counter\()"((?:nv|forge)_[a-z0-9_]+)"`)

// exportedMetrics greps the non-test Go files of the module for the
// metrics they define, with a histogram's series (_bucket, _sum, _count).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range []string{"../internal", "../cmd"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range metricDef.FindAllSubmatch(b, -1) {
				n := string(m[1])
				names[n] = true
				if strings.HasSuffix(n, "_seconds") {
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						names[n+s] = true
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// promQL is what an expression names besides metrics.
var promQL = map[string]bool{
	"sum": true, "max": true, "min": true, "avg": true, "count": true, "rate": true, "increase": true,
	"histogram_quantile": true, "label_values": true, "by": true, "without": true,
}

var (
	stripped = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|"[^"]*"|\b(?:by|without)\s*\([^)]*\)`)
	ident    = regexp.MustCompile(`[a-zA-Z_][a-zA-Z0-9_]*`)
	// label_values(METRIC, LABEL), a variable's query.
	labelValues = regexp.MustCompile(`^label_values\(([^,]+),\s*[a-z_]+\)$`)
)

// metricsIn is the metric names of a PromQL expression (simple ones: no
// offsets, no string literals outside label matchers).
func metricsIn(expr string) []string {
	var out []string
	for _, id := range ident.FindAllString(stripped.ReplaceAllString(expr, " "), -1) {
		if !promQL[id] {
			out = append(out, id)
		}
	}
	return out
}

// TestDashboardMetrics parses the Grafana dashboard and checks that every
// query names only metrics Forge's code exports, and that every exported
// nv_* metric has a panel.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/forge.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/forge.json: %v", err)
	}
	exported := exportedMetrics(t)
	if !exported["nv_inference_request_success"] || !exported["forge_http_requests_total"] {
		t.Fatalf("the grep found %d metrics, not the known ones: %v", len(exported), exported)
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		ms := metricsIn(expr)
		if len(ms) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, m := range ms {
			if !exported[m] {
				t.Errorf("%s: %q names %s, which Forge does not export", where, expr, m)
			}
			used[m] = true
		}
	}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			check("panel "+p.Title, q.Expr)
			queries++
		}
	}
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			check("variable "+v.Name, m[1])
		} else if v.Definition != "" {
			t.Errorf("variable %s: %q is not label_values(METRIC, LABEL)", v.Name, v.Definition)
		}
	}
	if queries < 10 || dash.UID == "" {
		t.Fatalf("%d queries, uid %q: the dashboard did not parse as expected", queries, dash.UID)
	}
	var missing []string
	for m := range exported {
		if strings.HasPrefix(m, "nv_") && !used[m] {
			missing = append(missing, m)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("exported metrics with no panel: %v", missing)
	}
}

func TestMetricsIn(t *testing.T) {
	got := metricsIn(`histogram_quantile(0.99, sum by (le, route) (rate(forge_http_request_duration_seconds_bucket{route=~"a|b"}[5m]))) / nope_total`)
	if !slices.Equal(got, []string{"forge_http_request_duration_seconds_bucket", "nope_total"}) {
		t.Errorf("metricsIn = %q", got)
	}
}
