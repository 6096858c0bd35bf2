package main

import (
	"context"
	"fmt"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/version"
)

func cmdVersion(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "version")
	cf := addClientFlags(fs, c)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	out := struct {
		Client string       `json:"client"`
		Commit string       `json:"commit,omitempty"`
		Server *api.Version `json:"server,omitempty"`
	}{Client: version.Version, Commit: version.Commit()}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if v, err := cf.client().Version(ctx); err == nil {
		out.Server = &v
	}
	if cf.json() {
		return printJSON(c.stdout, out)
	}
	fmt.Fprintf(c.stdout, "forge %s", out.Client)
	if out.Commit != "" {
		fmt.Fprintf(c.stdout, " (%s)", out.Commit)
	}
	fmt.Fprintln(c.stdout)
	if out.Server != nil {
		fmt.Fprintf(c.stdout, "server %s at %s (database %s)\n", out.Server.Version, cf.server, out.Server.Database)
	}
	return nil
}
