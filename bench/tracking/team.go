package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/forge-mlops/forge/bench/forgeproc"
)

// teamSideBySide starts a second `forge server` whose state is in a
// PostgreSQL and an S3 server started here (a team's setup), and runs
// scenarios a-d on it and on local (SQLite and the local blob folder)
// alternately, -rounds times, printing each round's ratio of times.
func teamSideBySide(ctx context.Context, local *client, o options, has func(string) bool, out io.Writer) error {
	st, err := forgeproc.StartTeamState(ctx, o.asyncCommit)
	if err != nil {
		return err
	}
	defer st.Stop()
	p, err := forgeproc.StartEnv(ctx, o.forge, st.Env(), st.ServerArgs()...)
	if err != nil {
		return err
	}
	defer p.Stop()
	team := newClient(p.URL)
	commit := "each commit waits for its WAL fsync"
	if o.asyncCommit {
		commit = "synchronous_commit=off"
	}
	fmt.Fprintf(out, "started %s server on %s with PostgreSQL (%s) at %s and versitygw at %s\n", o.forge, p.URL, commit, strings.Split(st.DB, "?")[0], st.Endpoint)
	tag := "team"
	var lr, tr [][]row
	for round := range o.rounds {
		order := []*client{local, team}
		if round%2 == 1 {
			order = []*client{team, local}
		}
		for _, c := range order {
			fmt.Fprintf(out, "round %d on %s...\n", round+1, c.base)
			rows, err := runABCD(ctx, c, fmt.Sprintf("%s-r%d", tag, round), has)
			if err != nil {
				return err
			}
			if c == local {
				lr = append(lr, rows)
			} else {
				tr = append(tr, rows)
			}
		}
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tSQLite + local s\tPostgreSQL + S3 s\tPostgreSQL+S3 / SQLite+local\t")
	for i := range lr[0] {
		var ls, ts, ratios []string
		for r := range lr {
			l, t := lr[r][i].d.Seconds(), tr[r][i].d.Seconds()
			ls, ts = append(ls, fmt.Sprintf("%.4f", l)), append(ts, fmt.Sprintf("%.4f", t))
			ratios = append(ratios, fmt.Sprintf("%.2fx", t/l))
		}
		fmt.Fprintf(tw, "%s) %s\t%s\t%s\t%s\t\n", lr[0][i].id, lr[0][i].name, strings.Join(ls, " / "), strings.Join(ts, " / "), strings.Join(ratios, " / "))
	}
	return tw.Flush()
}
