package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

func init() {
	register("jobs", "list, inspect, follow or cancel training jobs (ls|show|logs|cancel)", cmdJobs)
}

func cmdJobs(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "jobs", args, map[string]func(context.Context, *cli, []string) error{
		"ls":     jobsList,
		"show":   jobsShow,
		"logs":   jobsLogs,
		"cancel": jobsCancel,
	})
}

func jobsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "jobs ls")
	cf := addClientFlags(fs, c)
	state := fs.String("state", "", "only jobs in this state: queued, running, succeeded, failed, cancelled")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	list, err := cf.client().Jobs(ctx, *state)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, list)
	}
	var rows [][]string
	for _, j := range list {
		exit := ""
		if j.ExitCode != nil {
			exit = strconv.Itoa(*j.ExitCode)
		}
		rows = append(rows, []string{j.ID, j.Name, j.State, j.Executor, exit, j.Reason, strconv.Itoa(j.Attempt), cf.when(j.SubmittedAt)})
	}
	return table(c.stdout, []string{"ID", "NAME", "STATE", "EXECUTOR", "EXIT", "REASON", "ATTEMPTS", "SUBMITTED"}, rows)
}

func oneID(fs interface{ Name() string }, pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Sprintf("usage: %s JOB_ID", fs.Name())}
	}
	return pos[0], nil
}

func jobsShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "jobs show")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(fs, pos)
	if err != nil {
		return err
	}
	j, err := cf.client().Job(ctx, id)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, j)
	}
	w := c.stdout
	fmt.Fprintf(w, "id:          %s\nname:        %s\nstate:       %s\nexecutor:    %s\n", j.ID, j.Name, j.State, j.Executor)
	if j.ExitCode != nil {
		fmt.Fprintf(w, "exit:        %d (%s) %s\n", *j.ExitCode, j.Reason, j.Message)
	}
	fmt.Fprintf(w, "command:     %s\n", strings.Join(j.Spec.Command, " "))
	if j.Spec.Image != "" {
		fmt.Fprintf(w, "image:       %s\n", j.Spec.Image)
	}
	fmt.Fprintf(w, "resources:   nodes=%d procs_per_node=%d cpus=%g memory=%s gpus=%d\n",
		j.Spec.Nodes, j.Spec.ProcsPerNode, j.Spec.CPUs, j.Spec.Memory, j.Spec.GPUs)
	if j.RunID != "" {
		fmt.Fprintf(w, "run:         %s (experiment %s)\n", j.RunID, j.ExperimentID)
	}
	fmt.Fprintf(w, "submitted:   %s\n", cf.whenLong(j.SubmittedAt))
	var rows [][]string
	for _, a := range j.Attempts {
		exit, took := "", ""
		if a.ExitCode != nil {
			exit = strconv.Itoa(*a.ExitCode)
		}
		if a.FinishedAt != 0 {
			took = (time.Duration(a.FinishedAt-a.StartedAt) * time.Millisecond).String()
		}
		rows = append(rows, []string{strconv.Itoa(a.Attempt), cf.when(a.StartedAt), took, exit, a.Reason, a.Message})
	}
	if len(rows) > 0 {
		fmt.Fprintln(w)
		return table(w, []string{"ATTEMPT", "STARTED", "TOOK", "EXIT", "REASON", "MESSAGE"}, rows)
	}
	return nil
}

func jobsLogs(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "jobs logs")
	cf := addClientFlags(fs, c)
	follow := fs.Bool("f", false, "follow the log until the job ends")
	attempt := fs.Int("attempt", 0, "attempt number (default: the latest)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(fs, pos)
	if err != nil {
		return err
	}
	rc, err := cf.client().JobLogs(ctx, id, *attempt, *follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	if cf.json() {
		err = logLinesJSON(c.stdout, rc)
	} else {
		_, err = io.Copy(c.stdout, rc)
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	if !*follow || ctx.Err() != nil {
		return nil
	}
	// Followed to its end, the log ends with how the job ended.
	j, err := cf.client().Job(ctx, id)
	if err != nil || !j.Final() {
		return err
	}
	if cf.json() {
		return json.NewEncoder(c.stdout).Encode(map[string]any{"job_id": j.ID, "state": j.State, "exit_code": j.ExitCode, "reason": j.Reason, "message": j.Message})
	}
	code := "-"
	if j.ExitCode != nil {
		code = strconv.Itoa(*j.ExitCode)
	}
	fmt.Fprintf(c.stderr, "job %s %s (exit %s", j.ID, j.State, code)
	if j.Reason != "" {
		fmt.Fprintf(c.stderr, ", %s", j.Reason)
	}
	if j.Message != "" {
		fmt.Fprintf(c.stderr, ": %s", j.Message)
	}
	fmt.Fprintln(c.stderr, ")")
	return nil
}

func jobsCancel(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "jobs cancel")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(fs, pos)
	if err != nil {
		return err
	}
	j, err := cf.client().CancelJob(ctx, id)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, j)
	}
	fmt.Fprintf(c.stdout, "job %s: %s\n", j.ID, map[bool]string{true: "cancelled", false: "stopping"}[j.State == "cancelled"])
	return nil
}

// logLine is one line of a job's log as -o json prints it: when it was
// written and the rank that wrote it (the log's "TIME [RANK] " prefix), and
// the text.
type logLine struct {
	Time string `json:"time,omitempty"`
	Rank *int   `json:"rank,omitempty"`
	Line string `json:"line"`
}

// logLinesJSON prints a log as JSON lines, one object a line.
func logLinesJSON(w io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		l := logLine{Line: sc.Text()}
		rest := l.Line
		if ts, after, ok := strings.Cut(rest, " "); ok {
			if _, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				l.Time, rest = ts, after
			}
		}
		if r, ok := strings.CutPrefix(rest, "["); ok {
			if n, text, ok := strings.Cut(r, "] "); ok {
				if rank, err := strconv.Atoi(n); err == nil {
					l.Rank, rest = &rank, text
				}
			}
		}
		if l.Time != "" || l.Rank != nil {
			l.Line = rest
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return sc.Err()
}
