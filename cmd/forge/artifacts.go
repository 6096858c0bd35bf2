package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("artifacts", "list or download a run's artifacts (ls|get)", cmdArtifacts)
}

func cmdArtifacts(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "artifacts", args, map[string]func(context.Context, *cli, []string) error{
		"ls":  artifactsList,
		"get": artifactsGet,
	})
}

func artifactsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "artifacts ls")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{"usage: forge artifacts ls RUN_ID [PATH]"}
	}
	dir := ""
	if len(pos) == 2 {
		dir = strings.Trim(pos[1], "/")
	}
	list, err := cf.client().ListArtifacts(ctx, pos[0], dir)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, list)
	}
	var rows [][]string
	for _, f := range list.Files {
		size := strconv.FormatInt(f.FileSize, 10)
		p := f.Path
		if f.IsDir {
			size, p = "-", p+"/"
		}
		rows = append(rows, []string{p, size})
	}
	return table(c.stdout, []string{"PATH", "SIZE"}, rows)
}

// artifactsGet downloads one file, or a folder and everything under it.
func artifactsGet(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "artifacts get")
	cf := addClientFlags(fs, c)
	out := fs.String("out", "", "where to write: a `FILE` for a file, a folder for a folder (default: the artifact's base name here)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"usage: forge artifacts get RUN_ID PATH [--out FILE|DIR]"}
	}
	run, p := pos[0], strings.Trim(pos[1], "/")
	if p == "" {
		return usageError{"forge artifacts get needs a PATH (see forge artifacts ls " + run + ")"}
	}
	cl := cf.client()
	// The parent's listing says whether p is a file or a folder.
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	list, err := cl.ListArtifacts(ctx, run, parent)
	if err != nil {
		return err
	}
	var found *api.FileInfo
	for i, f := range list.Files {
		if f.Path == p {
			found = &list.Files[i]
		}
	}
	if found == nil {
		return fmt.Errorf("run %s has no artifact %s (see forge artifacts ls %s %s)", run, p, run, parent)
	}
	dst := *out
	if dst == "" {
		dst = path.Base(p)
	}
	// List everything first, so the progress has a total.
	type file struct {
		api.FileInfo
		dst string
	}
	var files []file
	var dirs []string
	var total int64
	var walk func(f api.FileInfo, dst string) error
	walk = func(f api.FileInfo, dst string) error {
		if !f.IsDir {
			files = append(files, file{f, dst})
			total += f.FileSize
			return nil
		}
		dirs = append(dirs, dst)
		sub, err := cl.ListArtifacts(ctx, run, f.Path)
		if err != nil {
			return err
		}
		for _, g := range sub.Files {
			if err := walk(g, filepath.Join(dst, path.Base(g.Path))); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(*found, dst); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	down := c.newBar(fmt.Sprintf("downloading %s (%d files)", p, len(files)), total)
	defer down.close()
	n, bytes := 0, int64(0)
	for _, f := range files {
		size, err := fetchArtifact(ctx, cl, list.RootURI, f.Path, f.dst, down)
		n, bytes = n+1, bytes+size
		if err != nil {
			return err
		}
	}
	down.close()
	if cf.json() {
		return printJSON(c.stdout, map[string]any{"run_id": run, "path": p, "out": dst, "files": n, "bytes": bytes})
	}
	fmt.Fprintf(c.stdout, "%s/%s -> %s (%d files, %d bytes)\n", run, p, dst, n, bytes)
	return nil
}

// fetchArtifact writes one artifact to dst, whole or not at all.
func fetchArtifact(ctx context.Context, cl *api.Client, root, p, dst string, down *bar) (int64, error) {
	rc, err := cl.OpenArtifact(ctx, root, p)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", p, err)
	}
	defer rc.Close()
	if dir := filepath.Dir(dst); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
	}
	tmp := dst + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	n, err := io.Copy(down.writer(f), rc)
	err = errors.Join(err, f.Close())
	if err != nil {
		return n, fmt.Errorf("download %s: %w", p, err)
	}
	return n, os.Rename(tmp, dst)
}
