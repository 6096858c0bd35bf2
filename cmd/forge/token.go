package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Token commands work on the server's database directly, not through the
// API: the first token has to come from somewhere when --auth is on. They
// are for whoever administers the data dir or the PostgreSQL database.
func cmdToken(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "token", args, map[string]func(context.Context, *cli, []string) error{
		"create": tokenCreate,
		"ls":     tokenList,
		"revoke": tokenRevoke,
	})
}

type storeFlags struct {
	cfg    config.Server
	output string
}

func addStoreFlags(fs *flag.FlagSet, c *cli) (*storeFlags, error) {
	f := &storeFlags{cfg: config.Default()}
	if err := f.cfg.LoadEnv(c.env); err != nil {
		return nil, err
	}
	fs.StringVar(&f.cfg.DataDir, "data-dir", f.cfg.DataDir, "the server's data dir")
	fs.StringVar(&f.cfg.DB, "db", f.cfg.DB, "the server's database (postgres://...), if not SQLite in the data dir")
	fs.StringVar(&f.output, "o", "table", "output format: table or json")
	return f, nil
}

func (f *storeFlags) open(ctx context.Context) (*auth.Tokens, func(), error) {
	if f.cfg.DB == "" {
		if err := sqlstore.EnsureDir(f.cfg.DataDir); err != nil {
			return nil, nil, err
		}
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: f.cfg.DB, DataDir: f.cfg.DataDir})
	if err != nil {
		return nil, nil, err
	}
	return auth.New(db), func() { db.Close() }, nil
}

func tokenCreate(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "token create")
	sf, err := addStoreFlags(fs, c)
	if err != nil {
		return err
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge token create NAME"}
	}
	tokens, done, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	secret, err := tokens.Create(ctx, pos[0])
	if err != nil {
		return err
	}
	if sf.output == "json" {
		return printJSON(c.stdout, map[string]string{"name": pos[0], "token": secret})
	}
	fmt.Fprintln(c.stdout, secret)
	fmt.Fprintf(c.stderr, "token %q created; it is shown only once. Use it with --token or FORGE_TOKEN (or MLFLOW_TRACKING_TOKEN).\n", pos[0])
	return nil
}

func tokenList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "token ls")
	sf, err := addStoreFlags(fs, c)
	if err != nil {
		return err
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	tokens, done, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	list, err := tokens.List(ctx)
	if err != nil {
		return err
	}
	if sf.output == "json" {
		if list == nil {
			list = []auth.Token{}
		}
		return printJSON(c.stdout, list)
	}
	var rows [][]string
	for _, t := range list {
		state := "active"
		if t.RevokedAt != 0 {
			state = "revoked " + time.UnixMilli(t.RevokedAt).Format(time.RFC3339)
		}
		rows = append(rows, []string{t.Name, time.UnixMilli(t.CreatedAt).Format(time.RFC3339), state})
	}
	return table(c.stdout, []string{"NAME", "CREATED", "STATE"}, rows)
}

func tokenRevoke(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "token revoke")
	sf, err := addStoreFlags(fs, c)
	if err != nil {
		return err
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge token revoke NAME"}
	}
	tokens, done, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := tokens.Revoke(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "token %q revoked\n", pos[0])
	return nil
}
