package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
)

// waitSpare waits until e has a spare shim and returns its pid.
func waitSpare(t *testing.T, e *Executor) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		e.spares.mu.Lock()
		sp := e.spares.spare
		e.spares.mu.Unlock()
		if sp != nil {
			return sp.cmd.Process.Pid
		}
	}
	t.Fatal("no spare shim after 30s")
	return 0
}

func handlePIDs(t *testing.T, h forge.Handle) []int {
	t.Helper()
	var v handle
	if err := json.Unmarshal([]byte(h), &v); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range v.Procs {
		pids = append(pids, p.PID)
	}
	return pids
}

// A start hands the job to the shim started ahead: the job's process runs
// under that shim, in the job's folder with the job's environment only
// (not the spare's), its output in the log; the next spare is made.
func TestStartHandsTheJobToTheSpare(t *testing.T) {
	e := newExec(t)
	t.Cleanup(func() { e.Close() })
	spare := waitSpare(t, e)
	l := launch(t, 1, `echo "dir=$PWD job=$FORGE_JOB_ID"; echo err >&2`)
	l.Env["A"] = "1"
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if pids := handlePIDs(t, h); len(pids) != 1 || pids[0] != spare {
		t.Errorf("job's shim is %v, want the spare %d", pids, spare)
	}
	if ex := wait(t, e, h); ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	out := logs(t, e, h)
	for _, want := range []string{"[0] dir=" + l.Dir + " job=x\n", "[0] err"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if next := waitSpare(t, e); next == spare {
		t.Error("the spare was not replaced")
	}

	// A second job, with a variable of its own, gets none of the first's.
	l2 := launch(t, 1, `echo "a=${A:-unset} b=${B:-unset}"`)
	l2.Env["B"] = "2"
	h2, err := e.Start(context.Background(), l2)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, e, h2)
	if out := logs(t, e, h2); !strings.Contains(out, "[0] a=unset b=2") {
		t.Errorf("second job's log: %s", out)
	}
}

// A spare that was killed while it waited is passed over: the job starts
// on a shim of its own.
func TestKilledSparePassedOver(t *testing.T) {
	e := newExec(t)
	t.Cleanup(func() { e.Close() })
	spare := waitSpare(t, e)
	syscall.Kill(spare, syscall.SIGKILL)
	// Our child: it stays a zombie until the executor collects it. Its
	// leader turns zombie while its other threads are still exiting, with
	// its files (the pipe's read end) still open: wait for them all to go.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", spare))
		if f, ok := statFields(spare); ok && f[0] == "Z" && len(tasks) <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed spare never ended")
		}
	}
	h, err := e.Start(context.Background(), launch(t, 1, "echo ran"))
	if err != nil {
		t.Fatal(err)
	}
	if pids := handlePIDs(t, h); pids[0] == spare {
		t.Error("the job was handed to the dead spare")
	}
	if ex := wait(t, e, h); ex.Failed() || !strings.Contains(logs(t, e, h), "[0] ran") {
		t.Fatalf("exit = %+v, log %q", ex, logs(t, e, h))
	}
}

// Close ends the spare, which runs nothing; a start after it still works
// with a shim of its own.
func TestCloseEndsTheSpare(t *testing.T) {
	e := newExec(t)
	spare := waitSpare(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for it: the pid is gone, not even a zombie.
	if err := syscall.Kill(spare, 0); err != syscall.ESRCH {
		t.Errorf("spare %d after Close: kill 0 = %v, want ESRCH", spare, err)
	}
	h, err := e.Start(context.Background(), launch(t, 1, "echo after"))
	if err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, e, h); ex.Failed() || !strings.Contains(logs(t, e, h), "[0] after") {
		t.Fatalf("exit = %+v", ex)
	}
	e.spares.mu.Lock()
	defer e.spares.mu.Unlock()
	if e.spares.spare != nil || e.spares.making {
		t.Error("a spare was made after Close")
	}
}
