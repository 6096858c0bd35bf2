package slurm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
)

// Wait implements forge.Waiter. All waiters share one poll: a pass asks
// squeue once about every job being waited for, however many there are.
// It works on handles of an earlier server process, and reports a job that
// Slurm has no record of as lost.
func (e *Executor) Wait(ctx context.Context, fh forge.Handle) (forge.Exit, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return forge.Exit{}, err
	}
	ch := e.w.add(h)
	select {
	case ex := <-ch:
		return ex, nil
	case <-ctx.Done():
		e.w.remove(h.Job, ch)
		return forge.Exit{}, ctx.Err()
	}
}

// watcher polls Slurm while anyone waits.
type watcher struct {
	e       *Executor
	mu      sync.Mutex
	waiting map[string]*watch // by Slurm job id
	running bool
}

type watch struct {
	h     *handle
	chans []chan forge.Exit
}

func (w *watcher) add(h *handle) chan forge.Exit {
	ch := make(chan forge.Exit, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting == nil {
		w.waiting = map[string]*watch{}
	}
	wt := w.waiting[h.Job]
	if wt == nil {
		wt = &watch{h: h}
		w.waiting[h.Job] = wt
	}
	wt.chans = append(wt.chans, ch)
	if !w.running {
		w.running = true
		go w.loop()
	}
	return ch
}

func (w *watcher) remove(job string, ch chan forge.Exit) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt := w.waiting[job]
	if wt == nil {
		return
	}
	for i, c := range wt.chans {
		if c == ch {
			wt.chans = append(wt.chans[:i], wt.chans[i+1:]...)
			break
		}
	}
	if len(wt.chans) == 0 {
		delete(w.waiting, job)
	}
}

// loop runs passes until nobody waits. It is not tied to any caller's
// context: a waiter that gives up leaves the others waiting.
func (w *watcher) loop() {
	t := time.NewTicker(w.e.cfg.Poll)
	defer t.Stop()
	for {
		w.mu.Lock()
		if len(w.waiting) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		jobs := make(map[string]*handle, len(w.waiting))
		for id, wt := range w.waiting {
			jobs[id] = wt.h
		}
		w.mu.Unlock()

		ended, err := w.e.pass(context.Background(), jobs)
		if err != nil {
			w.e.log.Warn("slurm status pass failed", "err", err)
		}
		w.mu.Lock()
		for id, ex := range ended {
			// The staged copy of the code is not needed any more; the log
			// and exit files stay for readers and later waits.
			os.RemoveAll(filepath.Join(jobs[id].Dir, "code"))
			if wt := w.waiting[id]; wt != nil {
				for _, ch := range wt.chans {
					ch <- ex
				}
				delete(w.waiting, id)
			}
		}
		w.mu.Unlock()
		<-t.C
	}
}

// terminal says which Slurm job states are final.
var terminal = map[string]bool{
	"COMPLETED": true, "FAILED": true, "CANCELLED": true, "TIMEOUT": true, "DEADLINE": true,
	"NODE_FAIL": true, "PREEMPTED": true, "OUT_OF_MEMORY": true, "BOOT_FAIL": true,
	"REVOKED": true, "SPECIAL_EXIT": true,
}

// pass looks at jobs with one squeue call and returns the exits of those
// that ended. Only a job that squeue no longer lists (older than the
// cluster's MinJobAge) costs more calls, once, at its end.
func (e *Executor) pass(ctx context.Context, jobs map[string]*handle) (map[string]forge.Exit, error) {
	// exit_code is the batch script's raw wait status.
	out, err := e.cfg.Run(ctx, "squeue", "--me", "--noheader", "--states=all", "--Format=JobID:|,State:|,exit_code:|")
	if err != nil {
		return nil, fmt.Errorf("squeue: %w", err)
	}
	type row struct {
		state string
		raw   int
	}
	seen := make(map[string]row, len(jobs))
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), "|")
		if len(f) < 3 {
			continue
		}
		if _, ok := jobs[f[0]]; !ok {
			continue // not ours, or not waited for: left alone
		}
		raw, _ := strconv.Atoi(f[2])
		seen[f[0]] = row{f[1], raw}
	}
	ended := map[string]forge.Exit{}
	for id, h := range jobs {
		r, ok := seen[id]
		switch {
		case !ok:
			ended[id] = e.vanished(ctx, h)
		case terminal[r.state]:
			ended[id] = verdict(h, r.state, r.raw>>8&0xff, r.raw&0x7f)
		}
	}
	return ended, nil
}

// vanished finds how a job that squeue no longer lists ended: from
// scontrol, then accounting (sacct, or sacct -c on the job completion file
// where accounting is off), then the file the batch script writes at its
// end. A job with none of these is lost.
func (e *Executor) vanished(ctx context.Context, h *handle) forge.Exit {
	if out, err := e.cfg.Run(ctx, "scontrol", "show", "job", "-o", h.Job); err == nil {
		kv := fields(string(out))
		if st := kv["JobState"]; terminal[st] {
			code, sig := splitExitCode(kv["ExitCode"])
			return verdict(h, st, code, sig)
		}
	}
	for _, args := range [][]string{
		{"-j", h.Job, "-X", "-n", "-P", "-o", "State,ExitCode"},
		{"-c", "-j", h.Job, "-n", "-P", "-o", "State,ExitCode"},
	} {
		out, err := e.cfg.Run(ctx, "sacct", args...)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		st, ec, ok := strings.Cut(line, "|")
		st, _, _ = strings.Cut(st, " ") // "CANCELLED by 0"
		if ok && terminal[st] {
			code, sig := splitExitCode(ec)
			return verdict(h, st, code, sig)
		}
	}
	if b, err := os.ReadFile(filepath.Join(h.Dir, "exit")); err == nil {
		code, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil {
			st := "COMPLETED"
			if code != 0 {
				st = "FAILED"
			}
			return verdict(h, st, code, 0)
		}
	}
	return forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: "slurm has no record of job " + h.Job}
}

// fields parses scontrol's one-line KEY=VALUE output.
func fields(s string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// splitExitCode parses Slurm's "code:signal".
func splitExitCode(s string) (code, sig int) {
	a, b, _ := strings.Cut(s, ":")
	code, _ = strconv.Atoi(a)
	sig, _ = strconv.Atoi(b)
	return code, sig
}

type rankExit struct {
	rank, code int
	at         float64 // unix seconds
	node       string  // the node's name (exit files before it was written: "")
}

// rankExits reads the exit files the tasks wrote, the failed first.
func rankExits(dir string) []rankExit {
	paths, _ := filepath.Glob(filepath.Join(dir, "exit.*"))
	var rs []rankExit
	for _, p := range paths {
		rank, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "exit."))
		if err != nil {
			continue // exit.tmp
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		code, _ := strconv.Atoi(f[0])
		at, _ := strconv.ParseFloat(f[1], 64)
		r := rankExit{rank: rank, code: code, at: at}
		if len(f) > 2 {
			r.node = f[2]
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if (a.code != 0) != (b.code != 0) {
			return a.code != 0
		}
		return a.at < b.at || a.at == b.at && a.rank < b.rank
	})
	return rs
}

// verdict makes the attempt's exit from Slurm's final state and exit code
// (of the batch script) and what the tasks recorded. The first task that
// failed gives the code, as on the local executor; Slurm's state gives the
// reason when Slurm stopped the job.
func verdict(h *handle, state string, code, sig int) forge.Exit {
	ex := forge.Exit{Code: code, Reason: forge.ReasonExited}
	if sig != 0 {
		ex = forge.Exit{Code: 128 + sig, Reason: forge.ReasonSignal, Message: fmt.Sprintf("killed by signal %d", sig)}
	}
	ranks := rankExits(h.Dir)
	if len(ranks) > 0 && ranks[0].code != 0 {
		r := ranks[0]
		ex = forge.Exit{Code: r.code, Reason: forge.ReasonExited, Message: fmt.Sprintf("rank %d exited with %d", r.rank, r.code)}
		if r.code > 128 {
			// bash reports a process killed by signal N as 128+N.
			ex.Reason, ex.Message = forge.ReasonSignal, fmt.Sprintf("rank %d killed by signal %d", r.rank, r.code-128)
		}
	}
	switch state {
	case "COMPLETED":
	case "FAILED":
		if !ex.Failed() {
			ex.Code, ex.Message = -1, "slurm: the batch script failed"
		}
	case "CANCELLED":
		ex.Reason, ex.Message = forge.ReasonSignal, "cancelled in Slurm, not by Forge"
	case "TIMEOUT", "DEADLINE":
		ex.Reason, ex.Message = forge.ReasonTimeout, "slurm: time limit reached"
	case "OUT_OF_MEMORY":
		ex.Reason, ex.Message = forge.ReasonOOM, "slurm: out of memory"
	default: // NODE_FAIL, PREEMPTED, BOOT_FAIL, REVOKED, SPECIAL_EXIT
		ex.Reason, ex.Message = forge.ReasonLost, "slurm: "+strings.ToLower(state)
	}
	if ex.Failed() && ex.Code == 0 {
		ex.Code = -1
	}
	if b, err := os.ReadFile(filepath.Join(h.Dir, "stop-reason")); err == nil && ex.Failed() {
		// Forge stopped it: that is why it failed, whatever the signal.
		ex.Reason, ex.Message = forge.Reason(b), "stopped by forge ("+string(b)+")"
	}
	if why := slurmError(h.Dir); why != "" && ex.Failed() {
		ex.Message += ": " + why
	}
	return ex
}

// slurmError returns the last error slurmstepd wrote for the job ("***
// JOB 12 ON node1 CANCELLED AT ... DUE TO TIME LIMIT ***").
func slurmError(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "slurm.out"))
	if err != nil {
		return ""
	}
	var last string
	for _, line := range strings.Split(string(b), "\n") {
		if _, msg, ok := strings.Cut(line, "error: "); ok {
			last = strings.TrimSpace(msg)
		}
	}
	return last
}
