package main

import (
	"context"
	"fmt"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("executors", "list the server's executors, where jobs run (ls)", cmdExecutors)
}

func cmdExecutors(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "executors", args, map[string]func(context.Context, *cli, []string) error{
		"ls": executorsList,
	})
}

func executorsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "executors ls")
	cf := addClientFlags(fs, c)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	list, err := cf.client().Executors(ctx)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, list)
	}
	var rows [][]string
	for _, e := range list {
		name := e.Name
		if e.Default {
			name += " (default)"
		}
		reachable := "yes"
		if !e.Reachable {
			reachable = "no: " + e.Error
		}
		rows = append(rows, []string{name, e.Kind, reachable, capacity(e)})
	}
	return table(c.stdout, []string{"NAME", "KIND", "REACHABLE", "CAPACITY"}, rows)
}

// capacity shows what an executor has in all, and what is free where known;
// "-" for clusters that do not say.
func capacity(e api.Executor) string {
	if e.Total == nil {
		return "-"
	}
	s := resources(*e.Total)
	if e.Free != nil {
		s += " (free: " + resources(*e.Free) + ")"
	}
	return s
}

func resources(r api.Resources) string {
	return fmt.Sprintf("%g CPUs, %s, %d GPUs", r.CPUs, humanBytes(r.MemoryBytes), r.GPUs)
}
