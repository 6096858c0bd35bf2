package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	server, token, output string
	now                   func() time.Time // what tables' times are relative to
}

func addClientFlags(fs *flag.FlagSet, c *cli) *clientFlags {
	def := config.LoadClient(c.env)
	f := &clientFlags{now: c.now}
	fs.StringVar(&f.server, "server", def.Server, "Forge server `URL` (env FORGE_SERVER)")
	fs.StringVar(&f.token, "token", def.Token, "access `TOKEN` (env FORGE_TOKEN)")
	fs.StringVar(&f.output, "o", "table", "output `FORMAT`: table, wide (times as RFC 3339, UTC) or json")
	return f
}

func (f *clientFlags) client() *api.Client { return api.NewClient(f.server, f.token) }

func (f *clientFlags) json() bool { return f.output == "json" }

func (f *clientFlags) check() error {
	if f.output != "table" && f.output != "wide" && f.output != "json" {
		return usageError{fmt.Sprintf("-o %q: want table, wide or json", f.output)}
	}
	if err := api.CheckServerURL(f.server); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// newFlags makes a FlagSet whose errors come back to run() instead of
// exiting, and whose -h and --help print the command's help (docs.go).
func newFlags(c *cli, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("forge "+name, flag.ContinueOnError)
	hookHelp(c, name, fs)
	return fs
}

// parse parses flags, allowing flags after positional arguments
// ("forge runs show ID -o json") as people type them.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usageError{fmt.Sprintf("%v (run `%s -h`)", err, fs.Name())}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printJSON writes v as indented JSON, each millisecond time followed by
// the same as KEY_rfc3339 (UTC).
func printJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	out, err := addRFC3339(buf.Bytes())
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// table prints rows aligned under a header.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
