package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/queue"
)

// queueFlags are the flags of `forge data add` for kafka:// and nats://
// sources, which the server reads.
type queueFlags struct {
	from, until string
	cont        bool
}

func addQueueFlags(fs *flag.FlagSet) *queueFlags {
	q := &queueFlags{}
	fs.StringVar(&q.from, "from", "", "queue sources: earliest (default), latest, OFFSET, PARTITION:OFFSET,... or a time")
	fs.StringVar(&q.until, "until", "", "queue sources: now (default), OFFSET, PARTITION:OFFSET,... or a time")
	fs.BoolVar(&q.cont, "continue", false, "queue sources: read what came after the latest version, no overlap")
	return q
}

func dataIngest(ctx context.Context, c *cli, cf *clientFlags, qf *queueFlags, pos []string, schema, desc string) error {
	if len(pos) < 1 || len(pos) > 2 || (len(pos) == 1 && !qf.cont) {
		return usageError{"usage: forge data add NAME kafka://BROKER/TOPIC|nats://HOST:PORT/STREAM [--from ...] [--until ...], or forge data add NAME --continue"}
	}
	if err := cf.check(); err != nil {
		return err
	}
	name := pos[0]
	if err := datasets.CheckName(name); err != nil {
		return err
	}
	req := api.IngestRequest{From: qf.from, Until: qf.until, Continue: qf.cont, Description: desc}
	if len(pos) == 2 {
		if _, err := queue.ParseURL(pos[1]); err != nil {
			return err
		}
		req.Source = pos[1]
	}
	cols, err := datasets.ParseSchema(schema)
	if err != nil {
		return err
	}
	for _, col := range cols {
		req.Schema = append(req.Schema, api.Column{Name: col.Name, Type: col.Type})
	}
	start := time.Now()
	from := req.Source
	if from == "" {
		from = "the source of " + name
	}
	read := c.phase("the server is reading " + from)
	res, err := cf.client().IngestDataset(ctx, name, req)
	read.stop()
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, res)
	}
	switch {
	case res.Version == nil:
		fmt.Fprintf(c.stdout, "no new messages in %s (%s); no new version\n", res.Queue.Source, describeRanges(res.Queue.Ranges))
		return nil
	case res.Created:
		v := res.Version
		fmt.Fprintf(c.stdout, "added %s: %d rows, %d columns, %s (sha256 %s) from %s\n", v.Ref(), v.Rows, len(v.Columns), humanBytes(v.Bytes), v.Digest[:12], res.Queue.Source)
	default:
		fmt.Fprintf(c.stdout, "unchanged: these messages are already %s; no new version\n", res.Version.Ref())
	}
	fmt.Fprintf(c.stdout, "offsets: %s\n", describeRanges(res.Queue.Ranges))
	if res.Queue.DeadLetters > 0 {
		fmt.Fprintf(c.stdout, "%d messages were not JSON objects of the schema: see forge data dead-letters %s\n", res.Queue.DeadLetters, res.Version.Ref())
	}
	fmt.Fprintf(c.stderr, "read and stored in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// describeRanges is "p0 0..99, p1 0..87" (first..last offsets read).
func describeRanges(rs []api.QueueRange) string {
	var parts []string
	for _, r := range rs {
		if r.Messages == 0 {
			parts = append(parts, fmt.Sprintf("p%d none (next %d)", r.Partition, r.Next))
			continue
		}
		parts = append(parts, fmt.Sprintf("p%d %d..%d", r.Partition, r.First, r.Last))
	}
	if len(parts) == 0 {
		return "no partitions"
	}
	return strings.Join(parts, ", ")
}

func dataFollow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data follow")
	cf := addClientFlags(fs, c)
	every := fs.String("every", "", "cut a version this often (10m) or once this many messages wait (100000rows)")
	schema := fs.String("schema", "", "types of message fields: col:type,col:type (DuckDB types)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || *every == "" {
		return usageError{"usage: forge data follow NAME kafka://BROKER/TOPIC|nats://HOST:PORT/STREAM --every 10m|100000rows"}
	}
	if _, _, err := datasets.ParseEvery(*every); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	f, err := cf.client().FollowDataset(ctx, pos[0], pos[1], *every, *schema)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, f)
	}
	fmt.Fprintf(c.stdout, "following %s into %s, %s\n", f.Source, f.Name, followEvery(f))
	return nil
}

func followEvery(f api.DatasetFollow) string {
	if f.EveryRows > 0 {
		return "every " + strconv.FormatInt(f.EveryRows, 10) + " messages"
	}
	return "every " + (time.Duration(f.EveryMS) * time.Millisecond).String()
}

func dataFollows(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data follows")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	cl := cf.client()
	switch {
	case len(pos) == 0 || (len(pos) == 1 && pos[0] == "ls"):
		fl, err := cl.DatasetFollows(ctx)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(c.stdout, fl)
		}
		var rows [][]string
		for _, f := range fl {
			rows = append(rows, []string{f.Name, f.Source, strings.TrimPrefix(followEvery(f), "every "), cf.when(f.LastRunAt), orDash(f.LastError)})
		}
		return table(c.stdout, []string{"DATASET", "SOURCE", "EVERY", "LAST RUN", "LAST ERROR"}, rows)
	case len(pos) == 2 && pos[0] == "rm":
		if err := cl.UnfollowDataset(ctx, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "stopped following into %s; its versions stay\n", pos[1])
		return nil
	}
	return usageError{"usage: forge data follows [ls] | rm NAME"}
}

func dataDeadLetters(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data dead-letters")
	cf := addServerFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneRef(pos, "usage: forge data dead-letters NAME[@VERSION]")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	rc, err := cf.client().DatasetDeadLetters(ctx, ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(c.stdout, rc)
	return err
}

// queueRows are the lines `forge data show` adds for a version read from a queue.
func queueRows(q *api.DatasetQueue) [][]string {
	if q == nil {
		return nil
	}
	rows := [][]string{{"offsets", describeRanges(q.Ranges)}}
	if q.From != "" {
		rows = append(rows, []string{"range", "from " + q.From + " until " + q.Until})
	}
	return append(rows, []string{"dead letters", strconv.FormatInt(q.DeadLetters, 10)})
}
