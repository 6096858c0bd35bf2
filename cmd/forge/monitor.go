package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("monitor", "watch deployed models: drift against their training data, live quality from feedback", cmdMonitor)
}

func cmdMonitor(ctx context.Context, c *cli, args []string) error {
	verbs := map[string]func(context.Context, *cli, []string) error{
		"drift": monitorDrift,
		"show":  monitorShow,
	}
	// forge monitor DEPLOYMENT is forge monitor show DEPLOYMENT.
	if len(args) > 0 && verbs[args[0]] == nil && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
		args = append([]string{"show"}, args...)
	}
	return subcommand(ctx, c, "monitor", args, verbs)
}

func monitorShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "monitor show")
	cf := addClientFlags(fs, c)
	window := fs.String("window", "1h", "the logged predictions to report on: a duration (1h, 30m) or a row count (10000rows)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge monitor DEPLOYMENT [--window 1h|10000rows] [-o json]"}
	}
	r, err := cf.client().DeploymentMonitor(ctx, pos[0], *window)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, r)
	}
	fmt.Fprintf(c.stdout, "Drift\n")
	if r.Drift != nil {
		if err := printDrift(c, *r.Drift); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "  not computed: %s\n", r.DriftError)
	}
	if r.CanaryDrift != nil {
		fmt.Fprintf(c.stdout, "\nCanary drift\n")
		if err := printDrift(c, *r.CanaryDrift); err != nil {
			return err
		}
	} else if r.CanaryDriftError != "" {
		fmt.Fprintf(c.stdout, "\nCanary drift\n  not computed: %s\n", r.CanaryDriftError)
	}
	fmt.Fprintf(c.stdout, "\nQuality (window %s)\n", r.Window)
	if r.Quality == nil {
		_, err := fmt.Fprintf(c.stdout, "  not computed: %s\n", r.QualityError)
		return err
	}
	var rows [][]string
	opt := func(x *float64) string {
		if x == nil {
			return "-"
		}
		return fmtFloat(*x)
	}
	for _, v := range r.Quality.Versions {
		rows = append(rows, []string{v.Model, v.Version, v.Role, strconv.FormatInt(v.Rows, 10), strconv.FormatInt(v.Labeled, 10),
			cmpOr(v.Task, "-"), opt(v.Accuracy), opt(v.AUC), opt(v.RMSE), opt(v.MAE)})
	}
	return table(c.stdout, []string{"MODEL", "VERSION", "ROLE", "PREDICTIONS", "LABELED", "TASK", "ACCURACY", "AUC", "RMSE", "MAE"}, rows)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func monitorDrift(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "monitor drift")
	cf := addClientFlags(fs, c)
	window := fs.String("window", "1h", "the logged payloads to compare: a duration (1h, 30m) or a row count (10000rows)")
	reference := fs.String("reference", "", "DATASET@VERSION to compare with (default: the dataset the served version's run used as input)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge monitor drift DEPLOYMENT [--window 1h|10000rows] [--reference DATASET@VERSION] [-o json]"}
	}
	r, err := cf.client().DeploymentDrift(ctx, pos[0], *window, *reference)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, r)
	}
	return printDrift(c, r)
}

func printDrift(c *cli, r api.DriftReport) error {
	fmt.Fprintf(c.stdout, "deployment %s: %s version %d, window %s (%d rows) against %s (%d rows)\n",
		r.Deployment, r.Model, r.Version, r.Window, r.CurrentRows, r.Reference, r.ReferenceRows)
	if err := driftTable(c, "FEATURE", r.Features); err != nil {
		return err
	}
	verdict := "no dataset drift"
	if r.DatasetDrift {
		verdict = "DATASET DRIFT"
	}
	if _, err := fmt.Fprintf(c.stdout, "%d of %d features drifted (share %s, dataset drift at >= %s): %s\n",
		r.Drifted, len(r.Features), fmtFloat(r.Share), fmtFloat(r.ShareThreshold), verdict); err != nil {
		return err
	}
	if r.OutputsError != "" {
		_, err := fmt.Fprintf(c.stdout, "outputs not compared: %s\n", r.OutputsError)
		return err
	}
	if len(r.Outputs) == 0 {
		return nil
	}
	fmt.Fprintf(c.stdout, "outputs, against the model's outputs on the reference:\n")
	return driftTable(c, "OUTPUT", r.Outputs)
}

func driftTable(c *cli, first string, fs []api.FeatureDrift) error {
	var rows [][]string
	for _, f := range fs {
		drifted := "no"
		if f.Drifted {
			drifted = "yes"
		}
		psi := "-"
		if f.PSI != nil {
			psi = fmtFloat(*f.PSI)
		}
		rows = append(rows, []string{f.Name, f.Kind, f.Method, fmtFloat(f.Statistic), cmpSign(f.Method) + fmtFloat(f.Threshold), drifted, psi})
	}
	return table(c.stdout, []string{first, "KIND", "METHOD", "STATISTIC", "DRIFT IF", "DRIFTED", "PSI"}, rows)
}

// cmpSign says which side of the threshold is drift: p-values below it,
// distances above it.
func cmpSign(method string) string {
	if method == "ks" || method == "chisquare" {
		return "< "
	}
	return "> "
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }
