// Package executortest is the conformance suite of forge.Executor. Every
// executor (local processes, Slurm, Kubernetes) runs the same tests against
// its real backend: exit codes and reasons, cancel, timeout, logs streamed
// while a job runs, the distributed environment contract, and re-attaching
// after a server restart. An executor is done when it passes them.
package executortest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
)

// Backend is an executor under test.
type Backend struct {
	// New returns an executor that keeps what it needs under state. Called
	// twice with the same state, it returns two instances over the same
	// attempts, as a server and the same server restarted see them.
	New func(t *testing.T, state string) forge.Executor
	// Nodes is the most nodes a job may ask for (1 on a one-node cluster).
	Nodes int
	// Lose makes a started attempt's processes vanish without a trace and
	// returns the handle a restarted server holds for it.
	Lose func(t *testing.T, e forge.Executor, h forge.Handle) forge.Handle
	// Timeout bounds how long one attempt may take to end; default 60s.
	Timeout time.Duration
	// Stage, when set, is called with every launch before it starts. A
	// backend whose processes run elsewhere (Kubernetes pods) makes the
	// launch's code folder reachable from there, e.g. uploads it and sets
	// Launch.Code, as the server does with a job's code bundle, and serves
	// its Inputs as the server serves dataset versions.
	Stage func(t *testing.T, l *forge.Launch)
}

// Run runs the suite. Its subtests run in parallel.
func Run(t *testing.T, b Backend) {
	if b.Timeout <= 0 {
		b.Timeout = 60 * time.Second
	}
	if b.Nodes <= 0 {
		b.Nodes = 1
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"ExitAndLogs", testExitAndLogs},
		{"ExitCode", testExitCode},
		{"Cancel", testCancel},
		{"CancelAfterSuccess", testCancelAfterSuccess},
		{"Timeout", testTimeout},
		{"LogsStream", testLogsStream},
		{"DistributedEnv", testDistributedEnv},
		{"OneRankFails", testOneRankFails},
		{"ManyWaiters", testManyWaiters},
		{"Restart", testRestart},
		{"Inputs", testInputs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &suite{b: b, state: t.TempDir(), gates: t.TempDir()}
			s.e = b.New(t, s.state)
			tc.fn(t, s)
		})
	}
}

type suite struct {
	b     Backend
	e     forge.Executor
	state string
	gates string // files the jobs wait for, to pace them
}

var seq atomic.Int64

// launch makes a launch of a shell script, in a code folder holding
// data.txt, with a value in its env that needs quoting.
func (s *suite) launch(t *testing.T, ppn int, script string) *forge.Launch {
	t.Helper()
	l := s.unstaged(t, ppn, script)
	if s.b.Stage != nil {
		s.b.Stage(t, l)
	}
	return l
}

func (s *suite) unstaged(t *testing.T, ppn int, script string) *forge.Launch {
	t.Helper()
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "data.txt"), []byte("staged-code\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("ct%d-%d", os.Getpid(), seq.Add(1))
	l := &forge.Launch{
		JobID: id, Attempt: 1, Dir: code,
		Command:   []string{"sh", "-c", script},
		Env:       map[string]string{"FORGE_JOB_ID": id, "FORGE_TEST_VALUE": `a b 'c' "d" $HOME`},
		Resources: forge.Resources{CPUs: 1}, Nodes: 1, ProcsPerNode: ppn,
	}
	return l
}

func (s *suite) start(t *testing.T, l *forge.Launch) forge.Handle {
	t.Helper()
	h, err := s.e.Start(context.Background(), l)
	if err != nil {
		t.Fatalf("start %s: %v", l.JobID, err)
	}
	return h
}

func (s *suite) wait(t *testing.T, e forge.Executor, h forge.Handle) forge.Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.b.Timeout)
	defer cancel()
	ex, err := e.Wait(ctx, h)
	if err != nil {
		t.Fatalf("wait: %v (log so far:\n%s)", err, s.logs(t, e, h, 0))
	}
	return ex
}

func (s *suite) logs(t *testing.T, e forge.Executor, h forge.Handle, off int64) string {
	t.Helper()
	r, err := e.Logs(context.Background(), h, off)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read logs: %v", err)
	}
	return string(b)
}

// waitLog polls the log until re matches and returns the submatches.
func (s *suite) waitLog(t *testing.T, h forge.Handle, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(s.b.Timeout)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(s.logs(t, s.e, h, 0)); m != nil {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("log never matched %q:\n%s", re, s.logs(t, s.e, h, 0))
	return nil
}

// gate is a file a job waits for: `while [ ! -e GATE ]; do sleep 0.1; done`.
func (s *suite) gate(name string) (path, wait string) {
	path = filepath.Join(s.gates, name)
	return path, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.1; done", path)
}

func open(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineRx is one log line of the contract: "RFC3339-timestamp [rank] text".
var lineRx = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \[(\d+)\] (.*)$`)

func testExitAndLogs(t *testing.T, s *suite) {
	h := s.start(t, s.launch(t, 1, `echo hello; echo oops >&2; cat data.txt; echo "value $FORGE_TEST_VALUE"; exit 0`))
	if ex := s.wait(t, s.e, h); ex.Failed() || ex.Code != 0 || ex.Reason != forge.ReasonExited {
		t.Fatalf("exit = %+v, want 0/exited", ex)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(s.logs(t, s.e, h, 0), "\n"), "\n") {
		if m := lineRx.FindStringSubmatch(line); m != nil && m[2] == "0" {
			got[m[3]] = true
		}
	}
	for _, want := range []string{"hello", "oops", "staged-code", `value a b 'c' "d" $HOME`} {
		if !got[want] {
			t.Errorf("no log line %q from rank 0; lines: %v", want, got)
		}
	}
}

func testExitCode(t *testing.T, s *suite) {
	h := s.start(t, s.launch(t, 1, "echo failing; exit 3"))
	if ex := s.wait(t, s.e, h); ex.Code != 3 || ex.Reason != forge.ReasonExited || !ex.Failed() {
		t.Fatalf("exit = %+v, want 3/exited", ex)
	}
	// Cancelling an attempt that has ended is not an error, and does not
	// change how it ended: not for this server, nor for a restarted one.
	for _, reason := range []forge.Reason{forge.ReasonCancelled, forge.ReasonTimeout} {
		if err := s.e.Cancel(context.Background(), h, reason); err != nil {
			t.Fatalf("cancel (%s) an ended attempt: %v", reason, err)
		}
	}
	if ex := s.wait(t, s.e, h); ex.Code != 3 || ex.Reason != forge.ReasonExited {
		t.Fatalf("exit after a late cancel = %+v, want 3/exited", ex)
	}
	if ex := s.wait(t, s.b.New(t, s.state), h); ex.Code != 3 || ex.Reason != forge.ReasonExited {
		t.Fatalf("exit after a late cancel, restarted = %+v, want 3/exited", ex)
	}
}

// testCancelAfterSuccess: a cancel that comes after a process ended well
// leaves the success as it was.
func testCancelAfterSuccess(t *testing.T, s *suite) {
	h := s.start(t, s.launch(t, 1, "echo done"))
	if ex := s.wait(t, s.e, h); ex.Failed() {
		t.Fatalf("exit = %+v, want 0/exited", ex)
	}
	if err := s.e.Cancel(context.Background(), h, forge.ReasonCancelled); err != nil {
		t.Fatalf("cancel an ended attempt: %v", err)
	}
	if ex := s.wait(t, s.e, h); ex.Failed() || ex.Code != 0 || ex.Reason != forge.ReasonExited {
		t.Fatalf("exit after a late cancel = %+v, want 0/exited", ex)
	}
}

func testCancel(t *testing.T, s *suite) {
	h := s.start(t, s.launch(t, 1, "echo ready; exec sleep 120"))
	s.waitLog(t, h, `\[0\] ready`)
	start := time.Now()
	if err := s.e.Cancel(context.Background(), h, forge.ReasonCancelled); err != nil {
		t.Fatal(err)
	}
	if ex := s.wait(t, s.e, h); ex.Reason != forge.ReasonCancelled || !ex.Failed() {
		t.Fatalf("exit = %+v, want cancelled", ex)
	}
	t.Logf("cancel to end: %v", time.Since(start))
}

// testTimeout is Forge's own timeout: the supervisor stops the attempt with
// reason timeout, and a cancel after it does not change the reason.
func testTimeout(t *testing.T, s *suite) {
	h := s.start(t, s.launch(t, 1, "echo ready; exec sleep 120"))
	s.waitLog(t, h, `\[0\] ready`)
	if err := s.e.Cancel(context.Background(), h, forge.ReasonTimeout); err != nil {
		t.Fatal(err)
	}
	s.e.Cancel(context.Background(), h, forge.ReasonCancelled)
	if ex := s.wait(t, s.e, h); ex.Reason != forge.ReasonTimeout {
		t.Fatalf("exit = %+v, want timeout", ex)
	}
}

func testLogsStream(t *testing.T, s *suite) {
	path, wait := s.gate("more")
	h := s.start(t, s.launch(t, 1, "echo first; "+wait+"; echo second"))
	s.waitLog(t, h, `\[0\] first`)
	before := s.logs(t, s.e, h, 0)
	if strings.Contains(before, "second") {
		t.Fatalf("second line before the gate opened: %s", before)
	}
	open(t, path)
	if ex := s.wait(t, s.e, h); ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	// Following from the offset read so far gives only what came after.
	rest := s.logs(t, s.e, h, int64(len(before)))
	if !lineRx.MatchString(strings.TrimSpace(rest)) || !strings.HasSuffix(strings.TrimSpace(rest), "[0] second") {
		t.Fatalf("log after offset %d = %q, want the second line only", len(before), rest)
	}
}

func testDistributedEnv(t *testing.T, s *suite) {
	nodes, ppn := s.b.Nodes, 2
	l := s.launch(t, ppn, `echo "env $RANK $LOCAL_RANK $WORLD_SIZE $NODE_RANK $NNODES $NPROC_PER_NODE $MASTER_ADDR $MASTER_PORT $PET_RANK $PET_WORLD_SIZE $PET_MASTER_ADDR $FORGE_JOB_ID"`)
	l.Nodes = nodes
	h := s.start(t, l)
	if ex := s.wait(t, s.e, h); ex.Failed() {
		t.Fatalf("exit = %+v\n%s", ex, s.logs(t, s.e, h, 0))
	}
	out := s.logs(t, s.e, h, 0)
	rx := regexp.MustCompile(`\[(\d+)\] env (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\S+) (\d+) (\d+) (\d+) (\S+) (\S+)`)
	ms := rx.FindAllStringSubmatch(out, -1)
	world := nodes * ppn
	if len(ms) != world {
		t.Fatalf("want %d processes, log:\n%s", world, out)
	}
	ranks, addrs, ports := map[int]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range ms {
		rank, _ := strconv.Atoi(m[2])
		ranks[rank] = true
		want := []string{m[1], strconv.Itoa(rank % ppn), strconv.Itoa(world), strconv.Itoa(rank / ppn), strconv.Itoa(nodes), strconv.Itoa(ppn)}
		got := []string{m[2], m[3], m[4], m[5], m[6], m[7]}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("rank %d: RANK LOCAL_RANK WORLD_SIZE NODE_RANK NNODES NPROC_PER_NODE = %v, want %v", rank, got, want)
		}
		if m[10] != m[2] || m[11] != m[4] || m[12] != m[8] {
			t.Errorf("rank %d: PET_ forms %s %s %s differ from %s %s %s", rank, m[10], m[11], m[12], m[2], m[4], m[8])
		}
		if m[13] != l.JobID {
			t.Errorf("rank %d: FORGE_JOB_ID = %s, want %s (the launch's env)", rank, m[13], l.JobID)
		}
		addrs[m[8]], ports[m[9]] = true, true
	}
	if len(ranks) != world {
		t.Errorf("ranks = %v, want 0..%d once each", ranks, world-1)
	}
	if len(addrs) != 1 || len(ports) != 1 {
		t.Errorf("ranks disagree on MASTER_ADDR %v or MASTER_PORT %v", addrs, ports)
	}
}

// testOneRankFails: when one process fails, the others are stopped and the
// attempt ends with the failed process's exit.
func testOneRankFails(t *testing.T, s *suite) {
	h := s.start(t, s.launch(t, 2, `if [ "$RANK" = 1 ]; then sleep 0.5; exit 4; fi; echo waiting; exec sleep 120`))
	start := time.Now()
	ex := s.wait(t, s.e, h)
	if ex.Code != 4 || ex.Reason != forge.ReasonExited || !strings.Contains(ex.Message, "rank 1") {
		t.Fatalf("exit = %+v, want rank 1's exit 4", ex)
	}
	if d := time.Since(start); d > s.b.Timeout/2 {
		t.Fatalf("took %v: rank 0 was not stopped", d)
	}
}

// testManyWaiters waits for several attempts at once: each gets its own exit.
func testManyWaiters(t *testing.T, s *suite) {
	const n = 5
	var wg sync.WaitGroup
	exits := make([]forge.Exit, n)
	for i := range n {
		h := s.start(t, s.launch(t, 1, fmt.Sprintf("sleep 0.%d; exit %d", i, 10+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.b.Timeout)
			defer cancel()
			exits[i], _ = s.e.Wait(ctx, h)
		}()
	}
	wg.Wait()
	for i, ex := range exits {
		if ex.Code != 10+i || ex.Reason != forge.ReasonExited {
			t.Errorf("attempt %d: exit = %+v, want %d/exited", i, ex, 10+i)
		}
	}
}

// testRestart: a new executor over the same state (a restarted server)
// re-attaches by handle, reads output written after the restart, collects
// the exit code, and reports an attempt whose processes vanished as lost.
func testRestart(t *testing.T, s *suite) {
	path, wait := s.gate("finish")
	hDone := s.start(t, s.launch(t, 1, "echo up; "+wait+"; echo finished; exit 7"))
	hGone := s.start(t, s.launch(t, 1, "echo up; exec sleep 120"))
	s.waitLog(t, hDone, `\[0\] up`)
	s.waitLog(t, hGone, `\[0\] up`)

	// A waiter of the first server gives up as the server stops.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if _, err := s.e.Wait(ctx, hDone); err == nil {
		t.Fatal("wait returned before the job ended")
	}
	cancel()

	e2 := s.b.New(t, s.state)
	for _, h := range []forge.Handle{hDone, hGone} {
		if a, ok := e2.(forge.Attacher); ok {
			if err := a.Attach(context.Background(), h); err != nil {
				t.Fatalf("attach: %v", err)
			}
		}
	}
	gone := s.b.Lose(t, e2, hGone)
	open(t, path)
	if ex := s.wait(t, e2, hDone); ex.Code != 7 || ex.Reason != forge.ReasonExited {
		t.Fatalf("re-attached exit = %+v, want 7/exited", ex)
	}
	if out := s.logs(t, e2, hDone, 0); !strings.Contains(out, "[0] finished") {
		t.Fatalf("output written after the restart is missing:\n%s", out)
	}
	if ex := s.wait(t, e2, gone); ex.Reason != forge.ReasonLost || !ex.Failed() {
		t.Fatalf("vanished attempt: exit = %+v, want lost", ex)
	}
}

// testInputs: dataset inputs written under the code folder reach the
// processes where they run, at an absolute path in FORGE_INPUT_<NAME> that
// stays valid after the process changes directory.
func testInputs(t *testing.T, s *suite) {
	l := s.unstaged(t, 1, `case "$FORGE_INPUT_TRAIN" in /*) ;; *) echo "relative: $FORGE_INPUT_TRAIN"; exit 3;; esac
cd / && while IFS= read -r line; do echo "train: $line"; done <"$FORGE_INPUT_TRAIN"
while IFS= read -r line; do echo "rows: $line"; done <"$FORGE_INPUT_ROWS"`)
	files := []struct{ name, ref, format, body string }{
		{"train", "sales@3", "parquet", "PAR1 not really parquet\nsecond line\n"},
		{"rows", "sales@3", "csv", "region,units\nnorth,7\n"},
	}
	for _, f := range files {
		in := forge.Input{Name: f.name, Ref: f.ref, Format: f.format, Path: ".forge/inputs/" + f.name + "." + f.format, Digest: sha256Hex(f.body)}
		p := filepath.Join(l.Dir, filepath.FromSlash(in.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
		l.Inputs = append(l.Inputs, in)
	}
	if s.b.Stage != nil {
		s.b.Stage(t, l)
	}
	h := s.start(t, l)
	if ex := s.wait(t, s.e, h); ex.Failed() {
		t.Fatalf("exit %+v\n%s", ex, s.logs(t, s.e, h, 0))
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(s.logs(t, s.e, h, 0)), "\n") {
		if m := lineRx.FindStringSubmatch(line); m != nil {
			got = append(got, m[3])
		}
	}
	want := []string{"train: PAR1 not really parquet", "train: second line", "rows: region,units", "rows: north,7"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("processes read\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
