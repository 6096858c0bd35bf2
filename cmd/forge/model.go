package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("model", "register, list, show, alias, download and watch models (register|ls|show|alias|download|watch)", cmdModel)
}

func cmdModel(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "model", args, map[string]func(context.Context, *cli, []string) error{
		"register": modelRegister,
		"ls":       modelList,
		"show":     modelShow,
		"alias":    modelAlias,
		"download": modelDownload,
		"watch":    modelWatch,
	})
}

// modelFileFlags collects a repeated flag.
type modelFileFlags []string

func (s *modelFileFlags) String() string     { return strings.Join(*s, ",") }
func (s *modelFileFlags) Set(v string) error { *s = append(*s, v); return nil }

// splitModelRef reads NAME[@REF]; no ref means the latest version.
func splitModelRef(s string) (name, ref string) {
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, "latest"
}

func modelRegister(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "model register")
	cf := addClientFlags(fs, c)
	var files modelFileFlags
	fs.Var(&files, "file", "a model file or folder to upload (repeatable)")
	run := fs.String("run", "", "register the artifacts of this run (with --path)")
	artPath := fs.String("path", "", "artifact path in the run, e.g. model")
	format := fs.String("format", "", "onnx, xgboost or other (default: detected from the files)")
	desc := fs.String("description", "", "description of the version")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	const usage = "usage: forge model register NAME (--file PATH | --run RUN_ID --path ARTIFACT_PATH) [--format onnx|xgboost] [--description D]"
	if len(pos) != 1 || (len(files) == 0) == (*run == "") {
		return usageError{usage}
	}
	var d api.ModelVersionDetail
	if *run != "" {
		d, err = cf.client().RegisterModelFromRun(ctx, pos[0], api.RegisterFromRunRequest{RunID: *run, Path: *artPath, Format: *format, Description: *desc})
	} else {
		up := c.newBar("uploading the files of "+pos[0], -1)
		up.then = "the server is checking the model"
		d, err = cf.client().UploadModelVersion(ctx, pos[0], files, api.UploadOptions{Format: *format, Description: *desc, Progress: up.set})
		up.close()
	}
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, d)
	}
	fmt.Fprintf(c.stdout, "registered %s version %s (format %s)\n", d.ModelVersion.Name, d.ModelVersion.Version, d.Format)
	printSignature(c.stdout, d.Signature)
	return nil
}

func modelList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "model ls")
	cf := addClientFlags(fs, c)
	filter := fs.String("filter", "", "MLflow search filter, e.g. \"name LIKE 'iris%'\"")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	switch {
	case len(pos) == 1 && *filter == "":
		return modelVersions(ctx, c, cf, pos[0])
	case len(pos) > 0:
		return usageError{"usage: forge model ls [--filter EXPR], or forge model ls NAME for its versions"}
	}
	models := []api.RegisteredModel{}
	for tok := ""; ; {
		page, err := cf.client().SearchRegisteredModels(ctx, *filter, 1000, tok)
		if err != nil {
			return err
		}
		models = append(models, page.RegisteredModels...)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if cf.json() {
		return printJSON(c.stdout, models)
	}
	var rows [][]string
	for _, m := range models {
		latest := "-"
		for _, v := range m.LatestVersions {
			if latest == "-" || len(v.Version) > len(latest) || len(v.Version) == len(latest) && v.Version > latest {
				latest = v.Version
			}
		}
		var aliases []string
		for _, a := range m.Aliases {
			aliases = append(aliases, a.Alias+"="+a.Version)
		}
		rows = append(rows, []string{m.Name, latest, dashIfEmpty(strings.Join(aliases, ",")), cf.when(m.LastUpdatedTimestamp), m.Description})
	}
	return table(c.stdout, []string{"NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"}, rows)
}

// modelVersions lists a registered model's versions, newest first.
func modelVersions(ctx context.Context, c *cli, cf *clientFlags, name string) error {
	cl := cf.client()
	if _, err := cl.GetRegisteredModel(ctx, name); err != nil {
		return err
	}
	filter := "name = '" + strings.ReplaceAll(name, "'", "''") + "'"
	vs := []api.ModelVersion{}
	for tok := ""; ; {
		page, err := cl.SearchModelVersions(ctx, filter, 1000, tok)
		if err != nil {
			return err
		}
		vs = append(vs, page.ModelVersions...)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	slices.SortFunc(vs, func(a, b api.ModelVersion) int {
		x, _ := strconv.Atoi(a.Version)
		y, _ := strconv.Atoi(b.Version)
		return y - x
	})
	if cf.json() {
		return printJSON(c.stdout, vs)
	}
	var rows [][]string
	for _, v := range vs {
		rows = append(rows, []string{v.Version, v.CurrentStage, dashIfEmpty(strings.Join(v.Aliases, ",")), v.Status,
			cf.when(v.CreationTimestamp), dashIfEmpty(v.RunID), dashIfEmpty(v.Description)})
	}
	return table(c.stdout, []string{"VERSION", "STAGE", "ALIASES", "STATUS", "CREATED", "RUN", "DESCRIPTION"}, rows)
}

func modelShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "model show")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge model show NAME[@VERSION|@ALIAS]"}
	}
	name, ref := splitModelRef(pos[0])
	d, err := cf.client().GetModelVersionDetail(ctx, name, ref)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, d)
	}
	w := c.stdout
	mv := d.ModelVersion
	fmt.Fprintf(w, "model:       %s\n", mv.Name)
	fmt.Fprintf(w, "version:     %s (stage %s, status %s)\n", mv.Version, mv.CurrentStage, mv.Status)
	fmt.Fprintf(w, "aliases:     %s\n", dashIfEmpty(strings.Join(mv.Aliases, ", ")))
	if d.ModelFile != "" {
		fmt.Fprintf(w, "format:      %s (%s)\n", d.Format, d.ModelFile)
	} else {
		fmt.Fprintf(w, "format:      %s\n", d.Format)
	}
	fmt.Fprintf(w, "created:     %s\n", cf.whenLong(mv.CreationTimestamp))
	if mv.Description != "" {
		fmt.Fprintf(w, "description: %s\n", mv.Description)
	}
	for _, t := range mv.Tags {
		fmt.Fprintf(w, "tag:         %s=%s\n", t.Key, t.Value)
	}
	fmt.Fprintln(w, "lineage:")
	fmt.Fprintf(w, "  run:       %s\n", dashIfEmpty(d.Lineage.RunID))
	fmt.Fprintf(w, "  source:    %s\n", d.Lineage.Source)
	if d.Lineage.RunID != "" {
		printRunLineage(ctx, w, cf.client(), d.Lineage.RunID)
	}
	printSignature(w, d.Signature)
	fmt.Fprintln(w, "files:")
	var rows [][]string
	for _, f := range d.Files {
		rows = append(rows, []string{"  " + f.Path, fmt.Sprint(f.Size), "sha256:" + f.Digest[:min(12, len(f.Digest))]})
	}
	return table(w, []string{"  PATH", "SIZE", "DIGEST"}, rows)
}

func printSignature(w io.Writer, s *api.ModelSignature) {
	if s == nil {
		return
	}
	fmt.Fprintln(w, "signature:")
	var rows [][]string
	for _, t := range s.Inputs {
		rows = append(rows, []string{"  input", t.Name, t.Datatype, fmt.Sprint(t.Shape)})
	}
	for _, t := range s.Outputs {
		rows = append(rows, []string{"  output", t.Name, t.Datatype, fmt.Sprint(t.Shape)})
	}
	table(w, []string{"  KIND", "NAME", "DATATYPE", "SHAPE"}, rows)
	if o := s.ONNX; o != nil {
		fmt.Fprintf(w, "  onnx: ir_version %d, opset %d, producer %s\n", o.IRVersion, o.Opset, dashIfEmpty(o.Producer))
	}
	if x := s.XGBoost; x != nil {
		fmt.Fprintf(w, "  xgboost: objective %s, %d features, %d classes, %d trees (saved by %s)\n", x.Objective, x.NumFeatures, x.NumClasses, x.NumTrees, dashIfEmpty(x.Version))
	}
}

func modelAlias(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "model alias")
	cf := addClientFlags(fs, c)
	del := fs.Bool("d", false, "delete the alias instead")
	force := fs.Bool("force", false, "move the alias even to a version with another signature")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if *del && len(pos) == 2 {
		if err := cf.client().DeleteModelAlias(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "deleted alias %s of %s\n", pos[1], pos[0])
		return nil
	}
	if len(pos) != 3 || *del {
		return usageError{"usage: forge model alias NAME ALIAS VERSION [--force], or forge model alias -d NAME ALIAS"}
	}
	set := cf.client().SetModelAlias
	if *force {
		set = cf.client().ForceModelAlias
	}
	if err := set(ctx, pos[0], pos[1], pos[2]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s@%s -> version %s\n", pos[0], pos[1], pos[2])
	return nil
}

func modelDownload(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "model download")
	cf := addClientFlags(fs, c)
	dir := fs.String("out", "", "the `DIR` to write the files to")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := outFromFormat(c, cf, dir, "model download", "DIR"); err != nil {
		return err
	}
	if len(pos) != 1 || *dir == "" {
		return usageError{"usage: forge model download NAME[@VERSION|@ALIAS] --out DIR"}
	}
	name, ref := splitModelRef(pos[0])
	down := c.newBar("downloading "+name+"@"+ref, -1)
	d, err := cf.client().DownloadModelProgress(ctx, name, ref, *dir, down.set)
	down.close()
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, d)
	}
	var total int64
	for _, f := range d.Files {
		total += f.Size
	}
	fmt.Fprintf(c.stdout, "downloaded %s version %s: %d files, %d bytes, to %s\n", name, d.ModelVersion.Version, len(d.Files), total, *dir)
	return nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var _ flag.Value = (*modelFileFlags)(nil)

// printRunLineage follows the version's run to the job that made it, the
// code bundle it ran, and the dataset versions it read. Each link is
// best-effort: a run logged from a laptop has no job.
func printRunLineage(ctx context.Context, w io.Writer, cl *api.Client, runID string) {
	run, err := cl.GetRun(ctx, runID)
	if err != nil {
		fmt.Fprintf(w, "  (run not readable: %v)\n", err)
		return
	}
	fmt.Fprintf(w, "  run name:  %s (experiment %s, %s)\n", run.Info.RunName, run.Info.ExperimentID, run.Info.Status)
	for _, t := range run.Data.Tags {
		if t.Key != "forge.job_id" {
			continue
		}
		fmt.Fprintf(w, "  job:       %s\n", t.Value)
		if j, err := cl.Job(ctx, t.Value); err == nil {
			fmt.Fprintf(w, "  command:   %s\n", strings.Join(j.Spec.Command, " "))
			if j.Spec.Code != "" {
				fmt.Fprintf(w, "  code:      sha256:%s\n", j.Spec.Code)
			}
		}
	}
	for _, in := range run.Inputs.DatasetInputs {
		fmt.Fprintf(w, "  dataset:   %s (%s, sha256:%s)\n", in.Dataset.Name, strings.TrimPrefix(in.Dataset.Source, "forge:"), in.Dataset.Digest[:min(12, len(in.Dataset.Digest))])
	}
}

// modelWatch prints registry events as they happen, a line each (or a JSON
// object each with -o json), from --since or from now, until interrupted or
// until --count events have been printed.
func modelWatch(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "model watch")
	cf := addClientFlags(fs, c)
	since := fs.Int64("since", -1, "print the events after this sequence number (default: from now)")
	count := fs.Int("count", 0, "stop after this many events (0: run until interrupted)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	client := cf.client()
	if *since < 0 {
		head, err := client.WatchModels(ctx, -1, 0)
		if err != nil {
			return err
		}
		*since = head.LastSeq
	}
	for printed := 0; *count == 0 || printed < *count; {
		page, err := client.WatchModels(ctx, *since, 30*time.Second)
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if *count > 0 && printed == *count {
				break
			}
			if cf.json() {
				if err := printJSON(c.stdout, e); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(c.stdout, eventLine(e))
			}
			printed++
			*since = e.Seq
		}
	}
	return nil
}

// eventLine is one event as `forge model watch` prints it.
func eventLine(e api.ModelEvent) string {
	at := absTime(e.Timestamp)
	what := e.Name
	if e.Version != "" {
		what += "@" + e.Version
	}
	switch {
	case e.Alias != "":
		what += " alias " + e.Alias
	case e.Stage != "":
		what += " stage " + e.Stage
	case e.OldName != "":
		what += " (was " + e.OldName + ")"
	}
	return fmt.Sprintf("%-6d %s  %-16s %s", e.Seq, at, e.Type, what)
}
