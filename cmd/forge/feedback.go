package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("feedback", "send labels (ground truth) for a deployment's logged predictions", cmdFeedback)
}

func cmdFeedback(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "feedback")
	cf := addClientFlags(fs, c)
	file := fs.String("file", "", `JSON lines of labels, {"request_id": "...", "label": ...} (or "labels": [...] for a request of several rows); - for stdin`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	usage := usageError{"usage: forge feedback DEPLOYMENT REQUEST_ID LABEL | forge feedback DEPLOYMENT --file labels.jsonl"}
	var fb []api.Feedback
	switch {
	case *file != "" && len(pos) == 1:
		if fb, err = readFeedback(*file); err != nil {
			return err
		}
	case *file == "" && len(pos) == 3:
		fb = []api.Feedback{{RequestID: pos[1], Label: parseLabel(pos[2])}}
	default:
		return usage
	}
	res, err := cf.client().SendFeedback(ctx, pos[0], fb)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, res)
	}
	_, err = fmt.Fprintf(c.stdout, "stored %d labels for deployment %s\n", res.Labels, pos[0])
	return err
}

// parseLabel reads a label as JSON (a number, true, false, "text"), or as
// text when it is not JSON.
func parseLabel(s string) any {
	var v any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&v); err == nil && !d.More() {
		switch v.(type) {
		case json.Number, bool, string:
			return v
		}
	}
	return s
}

func readFeedback(path string) ([]api.Feedback, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var out []api.Feedback
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var fb api.Feedback
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&fb); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, fb)
	}
	return out, sc.Err()
}
