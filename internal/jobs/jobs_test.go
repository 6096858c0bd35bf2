package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/executor/local"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the shim, as the forge binary does.
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.Shim(os.Args[2:]))
	}
	os.Exit(sqlstoretest.Main(m))
}

// runs is an in-test tracking store: it records what jobs tell it.
type runs struct {
	mu      sync.Mutex
	n       int
	status  map[string][]string
	metrics map[string][]map[string]float64
	tags    map[string]map[string]string
}

func newRuns() *runs {
	return &runs{status: map[string][]string{}, metrics: map[string][]map[string]float64{}, tags: map[string]map[string]string{}}
}

func (r *runs) CreateRun(ctx context.Context, exp, name string, tags map[string]string) (string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	id := fmt.Sprintf("run%d", r.n)
	r.tags[id] = tags
	return id, "exp-" + exp, nil
}

func (r *runs) SetRunStatus(ctx context.Context, id, status string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[id] = append(r.status[id], status)
	return nil
}

func (r *runs) LogInput(ctx context.Context, id, name, ref, digest string) error { return nil }

func (r *runs) LogSystemMetrics(ctx context.Context, id string, m map[string]float64, step int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics[id] = append(r.metrics[id], m)
	return nil
}

func (r *runs) statuses(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.status[id]...)
}

type env struct {
	db    *sqlstore.DB
	svc   *Service
	exec  *local.Executor // the one named "local"
	execs map[string]forge.Executor
	blobs *blob.Local
	runs  *runs
	root  string
	stop  func()
}

type opts struct {
	cpus float64
	db   *sqlstore.DB
	root string
	// execs are more executors beside "local", by name; wrap, if set,
	// wraps each executor made.
	execs map[string]forge.Executor
	wrap  func(name string, e forge.Executor) forge.Executor
	// datasets, if set, materialises the jobs' inputs.
	datasets Datasets
	// tokens, if set, gives each attempt a token.
	tokens Tokens
}

func newExecutor(t testing.TB, root string, cpus float64) *local.Executor {
	self, _ := os.Executable()
	e, err := local.New(context.Background(), local.Config{
		Root: filepath.Join(root, "exec"), Shim: []string{self, local.ShimCommand},
		CPUs: cpus, MemoryBytes: 16 << 30, GPUs: []int{}, Grace: 500 * time.Millisecond, Poll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs a jobs service on db (a fresh SQLite if nil) until the test ends
// or env.stop is called.
func start(t testing.TB, o opts) *env {
	t.Helper()
	if o.db == nil {
		o.db = sqlstoretest.OpenSQLite(t)
	}
	if o.root == "" {
		o.root = t.TempDir()
	}
	if o.cpus == 0 {
		o.cpus = 8
	}
	blobs, err := blob.NewLocal(filepath.Join(o.root, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: o.db, exec: newExecutor(t, o.root, o.cpus), blobs: blobs, runs: newRuns(), root: o.root}
	e.execs = map[string]forge.Executor{"local": e.exec}
	for name, x := range o.execs {
		e.execs[name] = x
	}
	if o.wrap != nil {
		for name, x := range e.execs {
			e.execs[name] = o.wrap(name, x)
		}
	}
	e.svc, err = New(o.db, e.execs, blobs, e.runs, o.datasets, Config{
		WorkDir: filepath.Join(o.root, "work"), TrackingURI: "http://127.0.0.1:7700", SampleEvery: 200 * time.Millisecond, Tick: 200 * time.Millisecond,
		DefaultExecutor: "local", Kinds: map[string]string{"local": "local"}, Tokens: o.tokens,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	e.stop = func() { cancel(); <-done }
	// Cleanups run last first: the service stops, then the processes it
	// started (a cancelled job's shim still writing its exit file) end,
	// then the temp folder goes.
	t.Cleanup(func() { waitProcessesGone(t, o.root) })
	t.Cleanup(e.stop)
	return e
}

// waitProcessesGone waits for every process working in a folder under root
// to end.
func waitProcessesGone(t testing.TB, root string) {
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := 0
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			if cwd, err := os.Readlink("/proc/" + p.Name() + "/cwd"); err == nil && strings.HasPrefix(cwd, root+"/") {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("%d processes still work under %s", left, root)
			return
		}
	}
}

func (e *env) submit(t testing.TB, spec Spec) Job {
	t.Helper()
	j, err := e.svc.Submit(context.Background(), spec)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return j
}

// await polls the job until cond holds.
func (e *env) await(t testing.TB, id string, what string, cond func(Job) bool) Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := e.svc.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never became %s: %+v", id, what, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) final(t testing.TB, id string) Job {
	t.Helper()
	return e.await(t, id, "final", func(j Job) bool { return j.State.Final() })
}

func (e *env) logs(t testing.TB, id string) string {
	t.Helper()
	var b strings.Builder
	if err := e.svc.Logs(context.Background(), id, 0, false, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestJobSucceedsWithLogsAndRun(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.submit(t, Spec{Command: sh(`echo "hello from $FORGE_JOB_ID run=$MLFLOW_RUN_ID exp=$MLFLOW_EXPERIMENT_ID uri=$MLFLOW_TRACKING_URI"; sleep 0.5`), Experiment: "demo"})
		j = e.final(t, j.ID)
		if j.State != Succeeded || *j.ExitCode != 0 || j.Reason != forge.ReasonExited {
			t.Fatalf("job = %+v", j)
		}
		want := fmt.Sprintf("hello from %s run=%s exp=exp-demo uri=http://127.0.0.1:7700", j.ID, j.RunID)
		if out := e.logs(t, j.ID); j.RunID == "" || !strings.Contains(out, want) {
			t.Fatalf("log = %q, want it to contain %q", out, want)
		}
		if len(j.Attempts) != 1 || j.Attempts[0].LogDigest == "" {
			t.Fatalf("attempts = %+v: want the log kept in the blob store", j.Attempts)
		}
		// The log is served from the blob store once the attempt folder is gone.
		os.RemoveAll(filepath.Join(e.root, "exec"))
		if out := e.logs(t, j.ID); !strings.Contains(out, want) {
			t.Fatalf("log from the blob store = %q", out)
		}
		if got := strings.Join(e.runs.statuses(j.RunID), ","); got != "RUNNING,FINISHED" {
			t.Fatalf("run statuses = %s", got)
		}
	})
}

func TestTimeout(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.submit(t, Spec{Command: sh("exec sleep 30"), Timeout: "300ms"})
		j = e.final(t, j.ID)
		if j.State != Failed || j.Reason != forge.ReasonTimeout {
			t.Fatalf("job = %+v, want failed by timeout", j)
		}
	})
}

func TestCancel(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db, cpus: 1})
		j := e.submit(t, Spec{Command: sh("echo started; exec sleep 30")})
		e.await(t, j.ID, "logging", func(Job) bool { return strings.Contains(e.logs(t, j.ID), "started") })
		queued := e.submit(t, Spec{Command: sh("exit 0")}) // no room: stays queued
		if _, err := e.svc.Cancel(context.Background(), queued.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Cancel(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		j = e.final(t, j.ID)
		if j.State != Cancelled || j.Reason != forge.ReasonCancelled {
			t.Fatalf("job = %+v, want cancelled", j)
		}
		if q, _ := e.svc.Get(context.Background(), queued.ID); q.State != Cancelled || q.Attempt != 0 {
			t.Fatalf("queued job = %+v, want cancelled without an attempt", q)
		}
		if got := e.runs.statuses(j.RunID); got[len(got)-1] != "KILLED" {
			t.Fatalf("run statuses = %v", got)
		}
		if _, err := e.svc.Cancel(context.Background(), j.ID); !forge.IsKind(err, forge.Conflict) {
			t.Fatalf("cancel of an ended job: %v, want a conflict", err)
		}
	})
}

func TestKilledFromOutside(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.submit(t, Spec{Command: sh("echo pid $$; exec sleep 30")})
		var pid int
		e.await(t, j.ID, "logging its pid", func(Job) bool {
			m := regexp.MustCompile(`pid (\d+)`).FindStringSubmatch(e.logs(t, j.ID))
			if m != nil {
				pid, _ = strconv.Atoi(m[1])
			}
			return m != nil
		})
		syscall.Kill(pid, syscall.SIGKILL)
		j = e.final(t, j.ID)
		if j.State != Failed || j.Reason != forge.ReasonSignal || *j.ExitCode != 137 {
			t.Fatalf("job = %+v, want failed by signal", j)
		}
	})
}

func TestRetries(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.submit(t, Spec{Command: sh("echo attempt $FORGE_ATTEMPT; exit 3"), MaxRetries: 2})
		j = e.final(t, j.ID)
		if j.State != Failed || *j.ExitCode != 3 || j.Attempt != 3 || len(j.Attempts) != 3 {
			t.Fatalf("job = %+v, want failed after 3 attempts", j)
		}
		for i, a := range j.Attempts {
			if a.ExitCode == nil || *a.ExitCode != 3 || a.LogDigest == "" {
				t.Fatalf("attempt %d = %+v", i+1, a)
			}
		}
		var b strings.Builder
		e.svc.Logs(context.Background(), j.ID, 2, false, &b)
		if !strings.Contains(b.String(), "attempt 2") {
			t.Fatalf("log of attempt 2 = %q", b.String())
		}
		// retry_on limits what is retried.
		j = e.final(t, e.submit(t, Spec{Command: sh("exit 4"), MaxRetries: 2, RetryOn: []string{"3", "lost"}}).ID)
		if j.Attempt != 1 || j.State != Failed {
			t.Fatalf("job = %+v, want no retry for exit 4", j)
		}
	})
}

func TestTwoProcessesOneFails(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.submit(t, Spec{Command: sh(`if [ "$RANK" = 1 ]; then sleep 0.3; exit 2; fi; exec sleep 30`), ProcsPerNode: 2})
		j = e.final(t, j.ID)
		if j.State != Failed || *j.ExitCode != 2 || j.Reason != forge.ReasonExited || !strings.Contains(j.Message, "rank 1") {
			t.Fatalf("job = %+v, want rank 1's exit 2", j)
		}
	})
}

func TestPriorityAndCapacity(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db, cpus: 2})
		blocker := e.submit(t, Spec{Command: sh("echo up; exec sleep 30"), CPUs: 2})
		e.await(t, blocker.ID, "running", func(j Job) bool { return j.State == Running && j.Handle != "" })
		low := e.submit(t, Spec{Command: sh("sleep 0.3"), CPUs: 2})
		high := e.submit(t, Spec{Command: sh("sleep 0.3"), CPUs: 2, Priority: 5})
		time.Sleep(300 * time.Millisecond)
		for _, id := range []string{low.ID, high.ID} {
			if j, _ := e.svc.Get(context.Background(), id); j.State != Queued {
				t.Fatalf("job %s is %s while the machine is full", id, j.State)
			}
		}
		if _, err := e.svc.Submit(context.Background(), Spec{Command: sh("true"), CPUs: 3}); !forge.IsKind(err, forge.Invalid) {
			t.Fatalf("a job larger than the machine: %v, want invalid", err)
		}
		e.svc.Cancel(context.Background(), blocker.ID)
		l, h := e.final(t, low.ID), e.final(t, high.ID)
		if !(h.Attempts[0].StartedAt <= l.Attempts[0].StartedAt && h.Attempts[0].FinishedAt <= l.Attempts[0].StartedAt) {
			t.Fatalf("high priority ran %d-%d, low %d-%d: want high first, not overlapping",
				h.Attempts[0].StartedAt, h.Attempts[0].FinishedAt, l.Attempts[0].StartedAt, l.Attempts[0].FinishedAt)
		}
	})
}

// The server stops (as if killed: the supervisor just goes away) while two
// jobs run; a new one on the same database re-attaches.
func TestRestartReattaches(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		root := t.TempDir()
		a := start(t, opts{db: db, root: root})
		finishes := a.submit(t, Spec{Command: sh("echo before; sleep 1.5; echo after; exit 5")})
		dies := a.submit(t, Spec{Command: sh(`echo attempt $FORGE_ATTEMPT; if [ "$FORGE_ATTEMPT" = 1 ]; then exec sleep 30; fi`), MaxRetries: 1, RetryOn: []string{"lost"}})
		var h forge.Handle
		for _, id := range []string{finishes.ID, dies.ID} {
			j := a.await(t, id, "running", func(j Job) bool { return j.State == Running && j.Handle != "" })
			h = j.Handle
		}
		queued := a.submit(t, Spec{Command: sh("echo queued ran"), CPUs: 7})
		a.stop()
		// While no server runs, the second job's processes die, shim and all.
		var hv struct{ Procs []struct{ PID int } }
		jsonUnmarshal(t, string(h), &hv)
		syscall.Kill(-hv.Procs[0].PID, syscall.SIGKILL)
		time.Sleep(100 * time.Millisecond)
		if j, _ := a.svc.Get(context.Background(), queued.ID); j.State != Queued {
			t.Fatalf("job that did not fit is %s", j.State)
		}

		b := start(t, opts{db: db, root: root})
		f := b.final(t, finishes.ID)
		if f.State != Failed || *f.ExitCode != 5 || f.Reason != forge.ReasonExited {
			t.Fatalf("re-attached job = %+v, want its exit 5 collected", f)
		}
		if out := b.logs(t, f.ID); !strings.Contains(out, "before") || !strings.Contains(out, "after") {
			t.Fatalf("log = %q", out)
		}
		d := b.final(t, dies.ID)
		if d.State != Succeeded || len(d.Attempts) != 2 || d.Attempts[0].Reason != forge.ReasonLost {
			t.Fatalf("job = %+v, want attempt 1 lost, attempt 2 succeeded", d)
		}
		if q := b.final(t, queued.ID); q.State != Succeeded {
			t.Fatalf("queued job = %+v", q)
		}
	})
}

func TestDistributedEnv(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.submit(t, Spec{Command: sh(`echo "env $RANK/$WORLD_SIZE local=$LOCAL_RANK node=$NODE_RANK/$NNODES ppn=$NPROC_PER_NODE $MASTER_ADDR:$MASTER_PORT pet=$PET_WORLD_SIZE job=$FORGE_JOB_ID"`), Nodes: 2, ProcsPerNode: 2})
		j = e.final(t, j.ID)
		out := e.logs(t, j.ID)
		for rank := range 4 {
			want := fmt.Sprintf("[%d] env %d/4 local=%d node=%d/2 ppn=2 127.0.0.1:", rank, rank, rank%2, rank/2)
			if !strings.Contains(out, want) || !strings.Contains(out, "pet=4 job="+j.ID) {
				t.Fatalf("log lacks %q:\n%s", want, out)
			}
		}
	})
}

// The busy loop is shell arithmetic, not a loop forking date(1): the CPU
// must be spent by the job's own process for the sampler to see it.
func TestSystemMetrics(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		j := e.final(t, e.submit(t, Spec{Command: sh("i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done")}).ID)
		e.runs.mu.Lock()
		ms := e.runs.metrics[j.RunID]
		e.runs.mu.Unlock()
		var cpu bool
		for _, m := range ms {
			if m["system/cpu_percent"] > 10 && m["system/memory_mb"] > 0 {
				cpu = true
			}
		}
		if !cpu {
			t.Fatalf("metrics = %v: want a busy cpu_percent sample", ms)
		}
	})
}

// A two-process PyTorch job trains with DDP over gloo, on each dialect of
// the job store.
func TestPyTorchDDP(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		out := t.TempDir()
		script, _ := filepath.Abs("testdata/ddp_train.py")
		j := e.submit(t, Spec{Command: []string{"/usr/bin/python3", script}, ProcsPerNode: 2, Env: map[string]string{"OUT_DIR": out}})
		j = e.final(t, j.ID)
		logs := e.logs(t, j.ID)
		if j.State != Succeeded {
			t.Fatalf("job = %+v\n%s", j, logs)
		}
		w0, err0 := os.ReadFile(filepath.Join(out, "weights.0"))
		w1, err1 := os.ReadFile(filepath.Join(out, "weights.1"))
		if err0 != nil || err1 != nil || len(w0) == 0 || string(w0) != string(w1) {
			t.Fatalf("weights differ or missing: %q vs %q (%v %v)\n%s", w0, w1, err0, err1, logs)
		}
		if !strings.Contains(logs, "rank 1 mean loss") {
			t.Fatalf("log = %s", logs)
		}
	})
}

func TestHTTP(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		mux := http.NewServeMux()
		httpapi.Mount(mux, e.svc.Routes(slog.New(slog.DiscardHandler)))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		c := api.NewClient(srv.URL, "")
		ctx := context.Background()

		// Code: bundle a folder, upload it once, run in a fresh extraction.
		code := t.TempDir()
		os.WriteFile(filepath.Join(code, "train.sh"), []byte("echo from bundle; cat data.txt 2>&1; for i in 1 2 3; do echo tick $i; sleep 0.2; done\n"), 0o644)
		os.WriteFile(filepath.Join(code, "data.txt"), []byte("should be ignored"), 0o644)
		os.WriteFile(filepath.Join(code, ".forgeignore"), []byte("data.txt\n"), 0o644)
		var buf bytes.Buffer
		digest, _, err := bundle.Create(code, &buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.HasBundle(ctx, digest); ok || err != nil {
			t.Fatalf("HasBundle before upload = %v, %v", ok, err)
		}
		if err := c.PutBundle(ctx, digest, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.HasBundle(ctx, digest); !ok {
			t.Fatal("bundle not stored")
		}
		wrong := strings.Repeat("0", 64)
		if err := c.PutBundle(ctx, wrong, buf.Bytes()); err == nil || !strings.Contains(err.Error(), "sha256") {
			t.Fatalf("upload under a wrong digest: %v", err)
		}

		j, err := c.SubmitJob(ctx, api.JobSpec{Command: []string{"sh", "train.sh"}, Code: digest, Name: "bundled"})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.JobLogs(ctx, j.ID, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc) // returns when the job ends
		rc.Close()
		out := string(b)
		if !strings.Contains(out, "from bundle") || !strings.Contains(out, "tick 3") || strings.Contains(out, "should be ignored") {
			t.Fatalf("followed log = %q", out)
		}
		got, err := c.Job(ctx, j.ID)
		if err != nil || got.State != "succeeded" || len(got.Attempts) != 1 {
			t.Fatalf("job = %+v, %v", got, err)
		}
		list, err := c.Jobs(ctx, "succeeded")
		if err != nil || len(list) != 1 || list[0].ID != j.ID {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if list, _ := c.Jobs(ctx, "running"); len(list) != 0 {
			t.Fatalf("running = %+v", list)
		}
		if _, err := c.Jobs(ctx, "bogus"); err == nil {
			t.Fatal("want an error for an unknown state")
		}
		if _, err := c.SubmitJob(ctx, api.JobSpec{}); err == nil || !strings.Contains(err.Error(), "command") {
			t.Fatalf("empty spec: %v", err)
		}
		if _, err := c.SubmitJob(ctx, api.JobSpec{Command: []string{"x"}, Code: wrong}); err == nil {
			t.Fatal("want an error for a missing bundle")
		}
		if _, err := c.Job(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "RESOURCE_DOES_NOT_EXIST") {
			t.Fatalf("unknown job: %v", err)
		}
		long, _ := c.SubmitJob(ctx, api.JobSpec{Command: []string{"sleep", "30"}})
		if _, err := c.CancelJob(ctx, long.ID); err != nil {
			t.Fatal(err)
		}
		if j := e.final(t, long.ID); j.State != Cancelled {
			t.Fatalf("cancelled over HTTP: %+v", j)
		}
	})
}

func jsonUnmarshal(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}
