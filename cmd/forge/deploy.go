package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("deploy", "serve a model version under a name: forge deploy NAME MODEL@ALIAS|MODEL@VERSION", cmdDeploy)
	register("deployments", "list, show and remove deployments (ls|show|rm)", cmdDeployments)
}

func cmdDeploy(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "deploy")
	cf := addClientFlags(fs, c)
	canary := fs.String("canary", "", "a second version, MODEL@VERSION or MODEL@ALIAS, taking --canary-percent of the requests")
	percent := fs.Int("canary-percent", 10, "share of the requests the canary takes, 1 to 99")
	maxBatch := fs.Int("max-batch-size", 0, "dynamic batching: most rows per model run (0 or 1: off)")
	delay := fs.Duration("max-queue-delay", 0, "dynamic batching: how long a batch waits for more requests")
	logPayloads := fs.Float64("log-payloads", 0, "share of requests (0 to 1) logged with their responses to the dataset payloads.NAME (0: the server's serve.payload_sample_rate)")
	reference := fs.String("reference", "", "DATASET@VERSION the traffic is compared with; its columns name the logged inputs (default: the dataset the served version's run used as input)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"usage: forge deploy NAME MODEL@ALIAS|MODEL@VERSION [--canary MODEL@V --canary-percent N] [--max-batch-size N --max-queue-delay D] [--log-payloads 0.1] [--reference DATASET@VERSION]"}
	}
	spec := api.DeploymentSpec{MaxBatchSize: *maxBatch, MaxQueueDelayMicroseconds: delay.Microseconds(),
		LogPayloads: *logPayloads, Reference: *reference}
	spec.Model, spec.Ref = splitModelRef(pos[1])
	if *canary != "" {
		spec.CanaryModel, spec.CanaryRef = splitModelRef(*canary)
		spec.CanaryPercent = *percent
	}
	d, err := cf.client().PutDeployment(ctx, pos[0], spec)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, d)
	}
	if err := printDeployment(c, cf, d); err != nil {
		return err
	}
	if d.Status != nil && d.Status.Error != "" {
		return fmt.Errorf("deployment %s is stored but does not serve its spec: %s", d.Name, d.Status.Error)
	}
	return nil
}

func cmdDeployments(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "deployments", args, map[string]func(context.Context, *cli, []string) error{
		"ls":   deploymentsList,
		"show": deploymentsShow,
		"rm":   deploymentsRemove,
	})
}

func deploymentsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "deployments ls")
	cf := addClientFlags(fs, c)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	l, err := cf.client().ListDeployments(ctx, "", 0)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, l.Deployments)
	}
	var rows [][]string
	for _, d := range l.Deployments {
		serving, ready, msg := "-", "no", ""
		if st := d.Status; st != nil {
			serving = deploymentTargets(st.Targets)
			if st.Ready {
				ready = "yes"
			}
			msg = st.Error
		}
		rows = append(rows, []string{d.Name, deploymentSpec(d.DeploymentSpec), serving, ready, msg})
	}
	return table(c.stdout, []string{"NAME", "SPEC", "SERVING", "READY", "ERROR"}, rows)
}

func deploymentsShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "deployments show")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge deployments show NAME"}
	}
	d, err := cf.client().GetDeployment(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, d)
	}
	return printDeployment(c, cf, d)
}

func deploymentsRemove(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "deployments rm")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge deployments rm NAME"}
	}
	if err := cf.client().DeleteDeployment(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed deployment %s\n", pos[0])
	return nil
}

func printDeployment(c *cli, cf *clientFlags, d api.Deployment) error {
	w := c.stdout
	fmt.Fprintf(w, "deployment:  %s\n", d.Name)
	fmt.Fprintf(w, "spec:        %s\n", deploymentSpec(d.DeploymentSpec))
	if d.MaxBatchSize > 1 {
		fmt.Fprintf(w, "batching:    up to %d rows, queue delay %dµs\n", d.MaxBatchSize, d.MaxQueueDelayMicroseconds)
	}
	if d.LogPayloads > 0 {
		ref := d.Reference
		if ref == "" {
			ref = "lineage"
		}
		fmt.Fprintf(w, "payloads:    %s of requests to dataset payloads.%s (reference %s; columns %s)\n",
			fmtFloat(d.LogPayloads), d.Name, ref, strings.Join(d.PayloadColumns, ", "))
	}
	fmt.Fprintf(w, "updated:     %s\n", cf.whenLong(d.UpdatedAt))
	st := d.Status
	if st == nil {
		fmt.Fprintln(w, "status:      not served by this server")
		return nil
	}
	ready := "no"
	if st.Ready {
		ready = "yes"
	}
	fmt.Fprintf(w, "ready:       %s\n", ready)
	if st.Error != "" {
		fmt.Fprintf(w, "error:       %s\n", st.Error)
	}
	fmt.Fprintf(w, "endpoint:    /v2/models/%s/infer\n", d.Name)
	var rows [][]string
	for _, t := range st.Targets {
		rows = append(rows, []string{"  " + t.Model, t.Version, fmt.Sprintf("%d%%", t.Weight), t.State})
	}
	return table(w, []string{"  MODEL", "VERSION", "WEIGHT", "STATE"}, rows)
}

// deploymentSpec writes a deployment's spec as the command line gives it.
func deploymentSpec(s api.DeploymentSpec) string {
	out := s.Model + "@" + s.Ref
	if s.CanaryModel != "" {
		out += fmt.Sprintf(" canary %s@%s %d%%", s.CanaryModel, s.CanaryRef, s.CanaryPercent)
	}
	return out
}

func deploymentTargets(ts []api.DeploymentTarget) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s/%s %d%%", t.Model, t.Version, t.Weight))
	}
	return dashIfEmpty(strings.Join(parts, ", "))
}
