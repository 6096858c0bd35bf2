package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// clientRun times scenarios a-d as the real mlflow client drives them
// (mlflow_client.py, run with Debian's python3 and the peer's lib).
func clientRun(ctx context.Context, o options, uri, tag string) (map[string]float64, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", o.clientScript, uri, tag)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(o.mlflow, "lib"), "GIT_PYTHON_REFRESH=quiet")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mlflow client against %s: %v\n%s", uri, err, stderr.String())
	}
	var out map[string]float64
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("mlflow client against %s printed %q: %w", uri, b, err)
	}
	return out, nil
}

// clientSideBySide runs the real client against Forge, MLflow and the null
// server, rotating which goes first each round, and prints per round:
// seconds, Forge vs MLflow, and Forge's speed as a share of the null
// server's (the goal: 90% or more).
func clientSideBySide(ctx context.Context, o options, forgeURL, mlflowURL string, out io.Writer) error {
	null, err := startNull()
	if err != nil {
		return err
	}
	defer null.stop()
	targets := []struct{ name, url string }{{"forge", forgeURL}, {"null", null.URL}, {"mlflow", mlflowURL}}
	got := map[string][]map[string]float64{}
	for round := range o.rounds {
		for i := range targets {
			tg := targets[(i+round)%len(targets)]
			fmt.Fprintf(out, "client round %d on %s (%s)...\n", round+1, tg.name, tg.url)
			r, err := clientRun(ctx, o, tg.url, fmt.Sprintf("%s-%d-%s", tg.name, round, o.tag))
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "   a %.2f s, b %.2f s, c %.2f s, d %.2f s\n", r["a"], r["b"], r["c"], r["d"])
			got[tg.name] = append(got[tg.name], r)
		}
	}
	fmt.Fprintln(out, "\nthe real mlflow 2.12.2 client (seconds per round):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tMLflow s\tForge s\tnull s\tForge vs MLflow\tForge / null speed\tgoal 90%\t")
	for _, id := range []string{"a", "b", "c", "d"} {
		var ms, fs, ns, ratios, shares []string
		met := "met"
		for r := range o.rounds {
			m, f, n := got["mlflow"][r][id], got["forge"][r][id], got["null"][r][id]
			ms, fs, ns = append(ms, fmt.Sprintf("%.2f", m)), append(fs, fmt.Sprintf("%.2f", f)), append(ns, fmt.Sprintf("%.2f", n))
			ratios, shares = append(ratios, fmt.Sprintf("%.1fx", m/f)), append(shares, fmt.Sprintf("%.0f%%", 100*n/f))
			if n/f < 0.9 {
				met = "no"
			}
		}
		j := func(s []string) string { return strings.Join(s, " / ") }
		fmt.Fprintf(tw, "%s)\t%s\t%s\t%s\t%s\t%s\t%s\t\n", id, j(ms), j(fs), j(ns), j(ratios), j(shares), met)
	}
	return tw.Flush()
}
