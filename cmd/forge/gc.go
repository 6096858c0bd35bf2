package main

import (
	"context"
	"fmt"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("gc", "remove stored blobs that nothing refers to any more (--dry-run to see first)", cmdGC)
}

// cmdGC asks the server to sweep its blob store: the server does it, as it
// is the one process that stores blobs and can order a sweep with them.
func cmdGC(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "gc")
	cf := addClientFlags(fs, c)
	dry := fs.Bool("dry-run", false, "report what would be removed, remove nothing")
	grace := fs.String("grace", "24h", "keep unreferenced blobs stored more recently than this (at least 1m)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	rep, err := cf.client().CollectGarbage(ctx, api.GCRequest{DryRun: *dry, Grace: *grace})
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, rep)
	}
	verb := "removed"
	n, size := rep.Removed, rep.RemovedBytes
	if rep.DryRun {
		verb, n, size = "would remove", rep.Garbage, rep.GarbageBytes
	}
	fmt.Fprintf(c.stdout, "%d blobs (%s): %d referenced, %d unreferenced but stored within %s (kept)\n",
		rep.Blobs, humanBytes(rep.Bytes), rep.Referenced, rep.Young, rep.Grace)
	fmt.Fprintf(c.stdout, "%s %d unreferenced blobs (%s)\n", verb, n, humanBytes(size))
	fmt.Fprintf(c.stdout, "%s %d temporary files untouched for an hour (%s)\n", verb, rep.Temp, humanBytes(rep.TempBytes))
	return nil
}
