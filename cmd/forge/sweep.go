package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("sweep", "start a hyperparameter sweep: forge sweep -f sweep.yaml [--wait]", cmdSweep)
	register("sweeps", "list, show, stop or resume hyperparameter sweeps (ls|show|stop|resume)", cmdSweeps)
}

func cmdSweep(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "sweep")
	cf := addClientFlags(fs, c)
	file := fs.String("f", "", "sweep spec file (YAML or JSON)")
	dir := fs.String("C", ".", "the code folder to bundle")
	noCode := fs.Bool("no-code", false, "do not upload the code folder")
	wait := fs.Bool("wait", false, "wait for the sweep to end, then show it")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if *file == "" || len(pos) > 0 {
		return usageError{"usage: forge sweep -f sweep.yaml [--wait]"}
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var spec api.SweepSpec
	if err := yaml.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("sweep spec %s: %w", *file, err)
	}
	if spec.Name == "" {
		spec.Name = strings.TrimSuffix(filepath.Base(*file), filepath.Ext(*file))
	}
	client := cf.client()
	if !*noCode && spec.Code == "" {
		if spec.Code, err = uploadCode(ctx, c, client, *dir); err != nil {
			return err
		}
	}
	sw, err := client.CreateSweep(ctx, spec)
	if err != nil {
		return err
	}
	if !*wait {
		if cf.json() {
			return printJSON(c.stdout, sw)
		}
		fmt.Fprintf(c.stdout, "sweep %s: %s, %d trials (%s), parent run %s\n", sw.Name, sw.State, sw.Spec.MaxTrials, sw.Spec.Algorithm, sw.ParentRunID)
		return nil
	}
	for sw.State == "running" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if sw, err = client.Sweep(ctx, sw.Name); err != nil {
			return err
		}
	}
	if err := showSweep(c, cf, sw); err != nil {
		return err
	}
	if sw.State != "finished" {
		return exitError{1}
	}
	return nil
}

func cmdSweeps(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "sweeps", args, map[string]func(context.Context, *cli, []string) error{
		"ls":     sweepsList,
		"show":   sweepsShow,
		"stop":   func(ctx context.Context, c *cli, args []string) error { return sweepsChange(ctx, c, "stop", args) },
		"resume": func(ctx context.Context, c *cli, args []string) error { return sweepsChange(ctx, c, "resume", args) },
	})
}

func sweepsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "sweeps ls")
	cf := addClientFlags(fs, c)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	list, err := cf.client().Sweeps(ctx)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, list)
	}
	var rows [][]string
	for _, s := range list {
		rows = append(rows, []string{s.Name, s.State, s.Spec.Algorithm, strconv.Itoa(s.Spec.MaxTrials), s.Spec.Objective.Metric + " (" + s.Spec.Objective.Goal + ")", cf.when(s.CreatedAt)})
	}
	return table(c.stdout, []string{"NAME", "STATE", "ALGORITHM", "TRIALS", "OBJECTIVE", "CREATED"}, rows)
}

func oneSweep(fs interface{ Name() string }, pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Sprintf("usage: forge %s NAME", fs.Name())}
	}
	return pos[0], nil
}

func sweepsShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "sweeps show")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneSweep(fs, pos)
	if err != nil {
		return err
	}
	sw, err := cf.client().Sweep(ctx, name)
	if err != nil {
		return err
	}
	return showSweep(c, cf, sw)
}

func sweepsChange(ctx context.Context, c *cli, verb string, args []string) error {
	fs := newFlags(c, "sweeps "+verb)
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneSweep(fs, pos)
	if err != nil {
		return err
	}
	client := cf.client()
	var sw api.Sweep
	if verb == "stop" {
		sw, err = client.StopSweep(ctx, name)
	} else {
		sw, err = client.ResumeSweep(ctx, name)
	}
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, sw)
	}
	fmt.Fprintf(c.stdout, "sweep %s: %s\n", sw.Name, sw.State)
	return nil
}

// showSweep prints the sweep, its best trial, and its trials best first.
func showSweep(c *cli, cf *clientFlags, sw api.Sweep) error {
	if cf.json() {
		return printJSON(c.stdout, sw)
	}
	w := c.stdout
	fmt.Fprintf(w, "sweep:       %s\nstate:       %s %s\nalgorithm:   %s, %d trials, %d in parallel\nobjective:   %s (%s)\nparent run:  %s (experiment %s)\n",
		sw.Name, sw.State, sw.Message, sw.Spec.Algorithm, sw.Spec.MaxTrials, sw.Spec.Parallel, sw.Spec.Objective.Metric,
		sw.Spec.Objective.Goal, sw.ParentRunID, sw.ExperimentID)
	if es := sw.Spec.EarlyStopping; es != nil && es.Type != "" && es.Type != "none" {
		pruned := 0
		for _, t := range sw.Trials {
			if t.State == "pruned" {
				pruned++
			}
		}
		how := fmt.Sprintf("min_steps %d, reduction_factor %d", es.MinSteps, es.ReductionFactor)
		if es.Type == "median" && es.StartupTrials != nil {
			how = fmt.Sprintf("startup_trials %d, warmup_steps %d", *es.StartupTrials, es.WarmupSteps)
		}
		fmt.Fprintf(w, "early stop:  %s on %s by %s (%s), %d trials pruned\n", es.Type, es.Metric, es.MetricStep, how, pruned)
	}
	names := make([]string, 0, len(sw.Spec.Parameters))
	for n := range sw.Spec.Parameters {
		names = append(names, n)
	}
	slices.Sort(names)
	if b := sw.Best; b != nil {
		var ps []string
		for _, n := range names {
			ps = append(ps, n+"="+b.Params[n])
		}
		fmt.Fprintf(w, "best:        trial %d, %s = %s, run %s\n             %s\n", b.Number, sw.Spec.Objective.Metric,
			strconv.FormatFloat(*b.Value, 'g', 6, 64), b.RunID, strings.Join(ps, " "))
	}
	if len(sw.Trials) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	header := append([]string{"TRIAL", "STATE", strings.ToUpper(sw.Spec.Objective.Metric)}, names...)
	header = append(header, "RUN")
	var rows [][]string
	for _, t := range sw.Trials {
		v := ""
		if t.Value != nil {
			v = strconv.FormatFloat(*t.Value, 'g', 6, 64)
		}
		row := []string{strconv.Itoa(t.Number), t.State, v}
		for _, n := range names {
			row = append(row, t.Params[n])
		}
		rows = append(rows, append(row, t.RunID))
	}
	return table(w, header, rows)
}
