package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func dataGet(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data get")
	cf := addClientFlags(fs, c)
	out := fs.String("out", "", "the `FILE` to write: Parquet, or CSV when it ends in .csv")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := outFromFormat(c, cf, out, "data get", "FILE"); err != nil {
		return err
	}
	ref, err := oneRef(pos, "usage: forge data get NAME[@VERSION] --out FILE")
	if err != nil {
		return err
	}
	if *out == "" {
		return usageError{"forge data get needs --out FILE (.parquet, or .csv)"}
	}
	// The version first, for its size; then its bytes by number, which
	// cannot move as an alias or "latest" can.
	cl := cf.client()
	s, err := cl.ShowDataset(ctx, ref)
	if err != nil {
		return err
	}
	ref = s.Version.Ref()
	// Download beside the target and rename, so FILE is complete and
	// verified or absent.
	tmp := *out + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	down := c.newBar("downloading "+ref, s.Version.Bytes)
	resolved, digest, err := cl.GetDataset(ctx, ref, down.writer(f))
	down.close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if strings.EqualFold(filepath.Ext(*out), ".csv") {
		eng, err := localEngine()
		if err != nil {
			return err
		}
		defer eng.Close()
		conv := c.phase("writing " + *out)
		err = eng.ExportCSV(ctx, tmp, *out)
		conv.stop()
		if err != nil {
			return err
		}
	} else if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, map[string]string{"dataset": resolved, "file": *out, "sha256": digest})
	}
	fmt.Fprintf(c.stdout, "%s -> %s (sha256 %s verified)\n", resolved, *out, digest[:12])
	return nil
}

// outFromFormat keeps the old "-o FILE" of data get and model download
// working for a while: -o is a format everywhere, so a value that is not one
// is taken as --out, with a note on stderr.
func outFromFormat(c *cli, cf *clientFlags, out *string, cmd, what string) error {
	if cf.output == "table" || cf.output == "wide" || cf.output == "json" {
		return nil
	}
	if *out != "" {
		return usageError{fmt.Sprintf("-o %q: want table, wide or json (the %s goes to --out)", cf.output, strings.ToLower(what))}
	}
	fmt.Fprintf(c.stderr, "forge: %s -o %s is deprecated: -o is the output format; use --out %s\n", cmd, what, cf.output)
	*out, cf.output = cf.output, "table"
	return nil
}
