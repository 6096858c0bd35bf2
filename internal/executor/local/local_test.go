package local

import (
	"context"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
)

// The test binary doubles as the shim, as the forge binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ShimCommand {
		os.Exit(Shim(os.Args[2:]))
	}
	if len(os.Args) > 2 && os.Args[1] == "alloc" {
		allocate(os.Args[2])
		return
	}
	os.Exit(m.Run())
}

func newExec(t *testing.T) *Executor {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{
		Root: t.TempDir(), Shim: []string{self, ShimCommand},
		CPUs: 8, MemoryBytes: 8 << 30, GPUs: []int{}, Grace: 500 * time.Millisecond, Poll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var seq int

func launch(t *testing.T, ppn int, script string) *forge.Launch {
	seq++
	return &forge.Launch{
		JobID: "t" + strconv.Itoa(seq), Attempt: 1, Dir: t.TempDir(),
		Command: []string{"sh", "-c", script}, Env: map[string]string{"FORGE_JOB_ID": "x"},
		Resources: forge.Resources{CPUs: 1}, Nodes: 1, ProcsPerNode: ppn,
	}
}

func wait(t *testing.T, e *Executor, h forge.Handle) forge.Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := e.Wait(ctx, h)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return ex
}

func logs(t *testing.T, e *Executor, h forge.Handle) string {
	t.Helper()
	r, err := e.Logs(context.Background(), h, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// waitLog polls the log until re matches, returning the submatches.
func waitLog(t *testing.T, e *Executor, h forge.Handle, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for range 200 {
		if m := rx.FindStringSubmatch(logs(t, e, h)); m != nil {
			return m
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("log never matched %q: %s", re, logs(t, e, h))
	return nil
}

func TestExitCodeAndLogs(t *testing.T) {
	e := newExec(t)
	h, err := e.Start(context.Background(), launch(t, 1, "echo hello; echo oops >&2; exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	ex := wait(t, e, h)
	if ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	out := logs(t, e, h)
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \[0\] hello$`).MatchString(out) || !strings.Contains(out, "[0] oops") {
		t.Fatalf("log = %q", out)
	}
	h2, _ := e.Start(context.Background(), launch(t, 1, "exit 3"))
	if ex := wait(t, e, h2); ex.Code != 3 || ex.Reason != forge.ReasonExited {
		t.Fatalf("exit = %+v, want code 3", ex)
	}
	if _, free, _ := e.Capacity(context.Background()); free.CPUs != 8 {
		t.Fatalf("free cpus after the attempts = %v, want 8", free.CPUs)
	}
}

func TestKilledFromOutside(t *testing.T) {
	e := newExec(t)
	h, _ := e.Start(context.Background(), launch(t, 1, "echo pid $$; exec sleep 30"))
	m := waitLog(t, e, h, `pid (\d+)`)
	pid, _ := strconv.Atoi(m[1])
	syscall.Kill(pid, syscall.SIGKILL)
	if ex := wait(t, e, h); ex.Reason != forge.ReasonSignal || ex.Code != 137 {
		t.Fatalf("exit = %+v, want signal/137", ex)
	}
}

func TestCancelEscalates(t *testing.T) {
	e := newExec(t)
	// The process ignores SIGTERM: only the SIGKILL after the grace period stops it.
	h, _ := e.Start(context.Background(), launch(t, 1, "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
	waitLog(t, e, h, `ready`)
	start := time.Now()
	if err := e.Cancel(context.Background(), h, forge.ReasonCancelled); err != nil {
		t.Fatal(err)
	}
	ex := wait(t, e, h)
	if ex.Reason != forge.ReasonCancelled {
		t.Fatalf("exit = %+v, want cancelled", ex)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("stopped after %v, before the grace period", d)
	}
}

func TestOneRankFailsOthersStopped(t *testing.T) {
	e := newExec(t)
	h, _ := e.Start(context.Background(), launch(t, 2, `if [ "$RANK" = 1 ]; then sleep 0.3; exit 4; fi; echo waiting; exec sleep 30`))
	start := time.Now()
	ex := wait(t, e, h)
	if ex.Code != 4 || ex.Reason != forge.ReasonExited || !strings.Contains(ex.Message, "rank 1") {
		t.Fatalf("exit = %+v, want rank 1's exit 4", ex)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("rank 0 was not stopped")
	}
	rec, ok := readExit(exitPath(mustHandle(t, h).Dir, 0))
	if !ok || rec.Signal != int(syscall.SIGTERM) {
		t.Fatalf("rank 0 exit = %+v, want SIGTERM", rec)
	}
}

func TestDistributedEnv(t *testing.T) {
	e := newExec(t)
	l := launch(t, 3, `echo "env $RANK $LOCAL_RANK $WORLD_SIZE $NODE_RANK $NNODES $NPROC_PER_NODE $MASTER_ADDR $MASTER_PORT $PET_RANK $FORGE_JOB_ID"`)
	l.Nodes = 2
	h, _ := e.Start(context.Background(), l)
	if ex := wait(t, e, h); ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	out := logs(t, e, h)
	rx := regexp.MustCompile(`\[(\d)\] env (\d) (\d) (\d) (\d) (\d) (\d) (\S+) (\d+) (\d) (\S+)`)
	ms := rx.FindAllStringSubmatch(out, -1)
	if len(ms) != 6 {
		t.Fatalf("want 6 processes, log:\n%s", out)
	}
	ports := map[string]bool{}
	for _, m := range ms {
		rank, _ := strconv.Atoi(m[2])
		want := []string{m[1], m[1], strconv.Itoa(rank % 3), "6", strconv.Itoa(rank / 3), "2", "3", "127.0.0.1"}
		got := []string{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]}
		if strings.Join(got, " ") != strings.Join(want, " ") || m[10] != m[2] || m[11] != "x" {
			t.Errorf("rank %d env = %v, want %v (PET_RANK %s, job %s)", rank, got, want, m[10], m[11])
		}
		ports[m[9]] = true
	}
	if len(ports) != 1 {
		t.Errorf("MASTER_PORT differs between ranks: %v", ports)
	}
}

func TestGPUsPerProcess(t *testing.T) {
	e := newExec(t)
	e.cfg.GPUs = []int{0, 1, 2, 3}
	e.total.GPUs = 4
	l := launch(t, 2, `echo "gpu $RANK $CUDA_VISIBLE_DEVICES"`)
	l.Resources.GPUs = 4
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, e, h)
	out := logs(t, e, h)
	if !strings.Contains(out, "gpu 0 0,1") || !strings.Contains(out, "gpu 1 2,3") {
		t.Fatalf("log = %s", out)
	}
	if got := parseGPUs("0, 81559 MiB\n1, 81559 MiB\n"); len(got) != 2 || got[1] != 1 {
		t.Fatalf("parseGPUs = %v", got)
	}
}

func TestReattachAfterRestart(t *testing.T) {
	e := newExec(t)
	hDone, _ := e.Start(context.Background(), launch(t, 1, "sleep 0.5; echo finished; exit 7"))
	hLost, _ := e.Start(context.Background(), launch(t, 1, "echo up; exec sleep 30"))
	waitLog(t, e, hLost, "up")

	// A new executor (a restarted server) on the same folder.
	e2 := &Executor{cfg: e.cfg, total: e.total, log: e.log, attempts: map[string]*handle{}}
	for _, h := range []forge.Handle{hDone, hLost} {
		e2.Attach(context.Background(), h)
	}
	if _, free, _ := e2.Capacity(context.Background()); free.CPUs != 6 {
		t.Fatalf("free after attach = %v, want 6", free.CPUs)
	}
	// The shim of the second job dies with its process, leaving no exit file.
	syscall.Kill(-mustHandle(t, hLost).Procs[0].PID, syscall.SIGKILL)
	if ex := wait(t, e2, hDone); ex.Code != 7 || ex.Reason != forge.ReasonExited {
		t.Fatalf("re-attached exit = %+v, want 7", ex)
	}
	if !strings.Contains(logs(t, e2, hDone), "finished") {
		t.Fatal("log written after the restart is missing")
	}
	if ex := wait(t, e2, hLost); ex.Reason != forge.ReasonLost {
		t.Fatalf("exit = %+v, want lost", ex)
	}
}

func TestUsage(t *testing.T) {
	e := newExec(t)
	h, _ := e.Start(context.Background(), launch(t, 1, "echo go; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5"))
	waitLog(t, e, h, "go")
	time.Sleep(500 * time.Millisecond)
	u, err := e.Usage(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if u.MemoryBytes <= 0 || u.CPUSeconds <= 0 {
		t.Fatalf("usage = %+v", u)
	}
	e.Cancel(context.Background(), h, forge.ReasonCancelled)
	wait(t, e, h)
}

func mustHandle(t *testing.T, h forge.Handle) *handle {
	v, err := parseHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// allocate touches n MiB, then sleeps: a job that grows past its limit.
func allocate(mib string) {
	n, _ := strconv.Atoi(mib)
	var hold [][]byte
	for i := 0; i < n; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		hold = append(hold, b)
	}
	time.Sleep(2 * time.Second)
	_ = hold
}

// A job over its memory is killed and its exit says oom where the machine
// has cgroup v2 with the memory controller; elsewhere (cgroup v1, as on the
// CI machines) it runs unlimited and its log says the limit was not enforced.
func TestMemoryLimit(t *testing.T) {
	e := newExec(t)
	self, _ := os.Executable()
	l := launch(t, 1, "")
	l.Command = []string{self, "alloc", "256"}
	l.Resources.MemoryBytes = 64 << 20
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	ex := wait(t, e, h)
	out := logs(t, e, h)
	if _, err := memoryLimitAvailable(); err == nil {
		if ex.Reason != forge.ReasonOOM {
			t.Fatalf("a job over its memory limit ended %+v, want reason oom\n%s", ex, out)
		}
		t.Logf("over its limit: %+v", ex)
		return
	}
	if ex.Reason != forge.ReasonExited || ex.Code != 0 || !strings.Contains(out, "memory limit not enforced") {
		t.Fatalf("without cgroup v2: %+v, log:\n%s", ex, out)
	}
	t.Logf("no cgroup v2 memory controller here: %+v, log: %s", ex, out)
}

// memoryLimitAvailable says whether this machine can enforce memory limits.
func memoryLimitAvailable() (bool, error) {
	dir, err := memoryLimit(cgroupRoot, "probe-"+strconv.Itoa(os.Getpid()), 1<<30)
	if err != nil {
		return false, err
	}
	os.Remove(dir)
	return true, nil
}

// TestRunAs runs a job as the unprivileged user the server would (the test
// runs as root, as CI does): it is not root, owns its folder, and is refused
// the server's files beside it.
func TestRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("switching users needs root; this is uid %d", os.Geteuid())
	}
	ju, err := lookupJobUser("forge-job")
	if err != nil {
		t.Fatalf("%v (scripts/setup.sh test creates the user)", err)
	}
	// A data dir as the server leaves it: passable (0711), not readable,
	// the database private, the job's folder inside.
	data, err := os.MkdirTemp("", "forge-runas-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	os.Chmod(data, 0o711)
	secret := data + "/forge.db"
	os.WriteFile(secret, []byte("token hashes"), 0o600)
	code := data + "/jobs/j/1/code"
	os.MkdirAll(code+"/sub", 0o755)
	os.WriteFile(code+"/train.sh", []byte("echo trained\n"), 0o644)

	self, _ := os.Executable()
	e, err := New(context.Background(), Config{Root: t.TempDir(), Shim: []string{self, ShimCommand},
		CPUs: 8, MemoryBytes: 8 << 30, GPUs: []int{}, Grace: 500 * time.Millisecond, Poll: 20 * time.Millisecond, RunAs: "forge-job"})
	if err != nil {
		t.Fatal(err)
	}
	// Once on the spare shim started ahead, once (after Close) on a shim
	// started for the job: both switch the job's process to the user.
	for _, warm := range []bool{true, false} {
		os.Remove(code + "/sub/out.txt") // each run writes its own
		spare := 0
		if warm {
			spare = waitSpare(t, e)
		} else {
			e.Close()
		}
		l := launch(t, 1, `echo uid=$(id -u) groups=$(id -G) home=$HOME; cat `+secret+` || echo SECRET-REFUSED; ls `+data+` || echo DATA-REFUSED; sh train.sh; echo out > sub/out.txt && echo WROTE`)
		l.Dir = code
		h, err := e.Start(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		if pids := handlePIDs(t, h); warm && pids[0] != spare || !warm && pids[0] == spare {
			t.Errorf("warm %v: the job's shim is %v, the spare was %d", warm, pids, spare)
		}
		if ex := wait(t, e, h); ex.Code != 0 {
			t.Fatalf("exit %+v\n%s", ex, logs(t, e, h))
		}
		out := logs(t, e, h)
		want := []string{
			"uid=" + strconv.Itoa(int(ju.uid)) + " groups=" + strconv.Itoa(int(ju.gid)), "home=" + code,
			"Permission denied", "SECRET-REFUSED", "DATA-REFUSED", "trained", "WROTE",
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("log lacks %q:\n%s", w, out)
			}
		}
		if strings.Contains(out, "token hashes") {
			t.Errorf("the job read the server's database:\n%s", out)
		}
		fi, err := os.Stat(code + "/sub/out.txt")
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != ju.uid {
			t.Errorf("the job's file is owned by uid %d, want %d", st.Uid, ju.uid)
		}
	}
}

// TestRunAsRefused: a run_as naming no user refuses every job, saying which
// setting to fix; a job folder the user cannot reach is refused before
// anything starts.
func TestRunAsRefused(t *testing.T) {
	self, _ := os.Executable()
	e, err := New(context.Background(), Config{Root: t.TempDir(), Shim: []string{self, ShimCommand}, CPUs: 8, GPUs: []int{}, RunAs: "forge-no-such-user"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Start(context.Background(), launch(t, 1, "true"))
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "run_as") || !strings.Contains(err.Error(), "forge-no-such-user") {
		t.Fatalf("start: %v; want Invalid naming run_as and the user", err)
	}
	if _, free, _ := e.Capacity(context.Background()); free.CPUs != 8 {
		t.Errorf("capacity after a refused start: %+v", free)
	}

	if os.Geteuid() != 0 {
		t.Fatalf("switching users needs root; this is uid %d", os.Geteuid())
	}
	e, err = New(context.Background(), Config{Root: t.TempDir(), Shim: []string{self, ShimCommand}, CPUs: 8, GPUs: []int{}, RunAs: "forge-job"})
	if err != nil {
		t.Fatal(err)
	}
	l := launch(t, 1, "true") // t.TempDir(): under a 0700 folder
	_, err = e.Start(context.Background(), l)
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "out of reach of run_as user forge-job") {
		t.Fatalf("start in an unreachable folder: %v", err)
	}
}
