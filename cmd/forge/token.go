package main

import (
	"context"
	"fmt"

	"github.com/forge-mlops/forge/api"
)

// Token commands talk to the server like every other command; managing
// tokens needs an admin token. The first one is the server's own
// (--admin-token-file or FORGE_ADMIN_TOKEN).
func cmdToken(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "token", args, map[string]func(context.Context, *cli, []string) error{
		"create": tokenCreate,
		"ls":     tokenList,
		"revoke": tokenRevoke,
	})
}

func tokenCreate(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "token create")
	cf := addClientFlags(fs, c)
	role := fs.String("role", "read", "what the token may do: read, write or admin")
	expires := fs.String("expires", "", "how long the token lives, e.g. 90d or 12h (default: for ever)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge token create NAME [--role read|write|admin] [--expires 90d]"}
	}
	tk, err := cf.client().CreateToken(ctx, api.CreateTokenRequest{Name: pos[0], Role: *role, Expires: *expires})
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, tk)
	}
	fmt.Fprintln(c.stdout, tk.Secret)
	fmt.Fprintf(c.stderr, "token %q (%s) created; it is shown only once. Use it with --token or FORGE_TOKEN (or MLFLOW_TRACKING_TOKEN).\n", tk.Name, tk.Role)
	return nil
}

func tokenList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "token ls")
	cf := addClientFlags(fs, c)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	list, err := cf.client().Tokens(ctx)
	if err != nil {
		return err
	}
	if cf.json() {
		if list == nil {
			list = []api.Token{}
		}
		return printJSON(c.stdout, list)
	}
	var rows [][]string
	for _, t := range list {
		state, expires := "active", "never"
		if t.ExpiresAt != 0 {
			expires = cf.when(t.ExpiresAt)
			if cf.now().UnixMilli() >= t.ExpiresAt {
				state = "expired"
			}
		}
		if t.RevokedAt != 0 {
			state = "revoked " + cf.when(t.RevokedAt)
		}
		role := t.Role
		if t.RunID != "" {
			role += " (run " + t.RunID + " only)" // a running job's token
		}
		rows = append(rows, []string{t.Name, role, cf.when(t.CreatedAt), expires, state})
	}
	return table(c.stdout, []string{"NAME", "ROLE", "CREATED", "EXPIRES", "STATE"}, rows)
}

func tokenRevoke(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "token revoke")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge token revoke NAME"}
	}
	if err := cf.client().RevokeToken(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "token %q revoked\n", pos[0])
	return nil
}
