package slurm

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/executor/executortest"
	"github.com/forge-mlops/forge/internal/slurmtest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(slurmtest.Main(m))
}

// newExec makes an executor on the shared test cluster, staging in state.
func newExec(t *testing.T, state string, mod ...func(*Config)) *Executor {
	t.Helper()
	c := slurmtest.Start(t)
	cfg := Config{SharedDir: state, Partition: c.Partition, Env: c.Env(), Poll: 200 * time.Millisecond}
	for _, f := range mod {
		f(&cfg)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConformance(t *testing.T) {
	c := slurmtest.Start(t)
	executortest.Run(t, executortest.Backend{
		New:   func(t *testing.T, state string) forge.Executor { return newExec(t, state) },
		Nodes: 1,
		// Slurm forgets the job (its controller lost its state): the handle
		// names a job id it never had, and the tasks left no exit files.
		Lose: func(t *testing.T, e forge.Executor, fh forge.Handle) forge.Handle {
			h := mustHandle(t, fh)
			if out, err := c.Command(context.Background(), "scancel", h.Job).CombinedOutput(); err != nil {
				t.Fatalf("scancel: %v: %s", err, out)
			}
			// A job id and a folder nothing knows: the cancelled job may still
			// write its exit file into its own folder, which would make it
			// look ended, not lost.
			h.Job = "900000" + h.Job
			h.Dir = t.TempDir()
			b, _ := json.Marshal(h)
			return forge.Handle(b)
		},
		Timeout: 60 * time.Second,
	})
}

func mustHandle(t *testing.T, fh forge.Handle) *handle {
	t.Helper()
	h, err := parseHandle(fh)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func launch(t *testing.T, ppn int, script string) *forge.Launch {
	t.Helper()
	code := t.TempDir()
	return &forge.Launch{
		JobID: strings.ReplaceAll(t.Name(), "/", "-"), Attempt: 1, Dir: code,
		Command: []string{"sh", "-c", script}, Env: map[string]string{"FORGE_JOB_ID": "x"},
		Resources: forge.Resources{CPUs: 1}, Nodes: 1, ProcsPerNode: ppn,
	}
}

func wait(t *testing.T, e *Executor, h forge.Handle, d time.Duration) forge.Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
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

func waitLog(t *testing.T, e *Executor, h forge.Handle, want string) {
	t.Helper()
	for range 600 {
		if strings.Contains(logs(t, e, h), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("log never showed %q:\n%s", want, logs(t, e, h))
}

func TestBatchScriptGolden(t *testing.T) {
	l := &forge.Launch{
		JobID: "j42", Attempt: 2, Dir: "/shared/forge/j42.2/code",
		Command:   []string{"python3", "train.py", "--lr", "0.1", "it's"},
		Env:       map[string]string{"FORGE_JOB_ID": "j42", "MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://forge:7700", "EXTRA": "a b $c"},
		Resources: forge.Resources{CPUs: 8, MemoryBytes: 16 << 30, GPUs: 4}, Nodes: 2, ProcsPerNode: 4,
		Inputs: []forge.Input{{Name: "train", Ref: "sales@3", Digest: strings.Repeat("ab", 32), Path: ".forge/inputs/train.parquet", Format: "parquet"}},
	}
	cfg := Config{Partition: "gpu", Account: "ml", QOS: "normal", TimeLimit: 90 * time.Minute, ExtraArgs: []string{"--constraint=a100"}, PortBase: 20000, PortRange: 20000}
	got := batchScript(script{Launch: l, Dir: "/shared/forge/j42.2", CodeDir: l.Dir, Cfg: &cfg})
	golden := filepath.Join("testdata", "batch.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("batch script differs from %s (run with -update if intended):\n%s", golden, got)
	}
	for _, line := range []string{"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=2",
		"#SBATCH --mem=16384M", "#SBATCH --gres=gpu:4", "#SBATCH --time=90", "#SBATCH --partition=gpu",
		"#SBATCH --account=ml", "#SBATCH --qos=normal", "#SBATCH --comment=forge:j42:2", "#SBATCH --job-name=forge-j42.2",
		"\texport FORGE_INPUT_TRAIN=/shared/forge/j42.2/code/.forge/inputs/train.parquet"} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("batch script lacks %q", line)
		}
	}
}

// A job's input, written under its code folder on the server's machine,
// is read by the processes from the copy staged in the shared folder.
func TestInputsFromStagedCopy(t *testing.T) {
	shared := t.TempDir()
	e := newExec(t, shared)
	l := launch(t, 1, `echo "path=$FORGE_INPUT_TRAIN"; cat "$FORGE_INPUT_TRAIN"`)
	in := forge.Input{Name: "train", Ref: "sales@3", Path: ".forge/inputs/train.parquet", Format: "parquet"}
	if err := os.MkdirAll(filepath.Join(l.Dir, ".forge", "inputs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, filepath.FromSlash(in.Path)), []byte("rows of sales\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Inputs = []forge.Input{in}
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, e, h, 60*time.Second); ex.Failed() {
		t.Fatalf("exit %+v:\n%s", ex, logs(t, e, h))
	}
	out := logs(t, e, h)
	staged := filepath.Join(mustHandle(t, h).Dir, "code", ".forge", "inputs", "train.parquet")
	if !strings.HasPrefix(staged, shared+"/") {
		t.Fatalf("attempt folder %s is not in the shared folder %s", staged, shared)
	}
	for _, want := range []string{"[0] path=" + staged + "\n", "[0] rows of sales\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q:\n%s", want, out)
		}
	}
}

// The job's timeout goes to --time rounded up to a minute, plus one, and the
// configured limit caps it.
func TestTimeLimitFromLaunch(t *testing.T) {
	for _, tc := range []struct {
		job, cfg time.Duration
		want     int
	}{
		{0, 0, 0},
		{30 * time.Second, 0, 2},
		{10 * time.Minute, 0, 11},
		{10*time.Minute + time.Second, 0, 12},
		{0, 90 * time.Minute, 90},
		{2 * time.Hour, 90 * time.Minute, 90},
		{time.Minute, 90 * time.Minute, 2},
	} {
		if got := timeLimit(tc.job, tc.cfg); got != tc.want {
			t.Errorf("timeLimit(%v, %v) = %d, want %d", tc.job, tc.cfg, got, tc.want)
		}
	}
	l := &forge.Launch{JobID: "j1", Attempt: 1, Dir: "/s/code", Command: []string{"true"}, Timeout: 10 * time.Minute}
	got := batchScript(script{Launch: l, Dir: "/s", CodeDir: l.Dir, Cfg: &Config{PortBase: 20000, PortRange: 20000}})
	if !strings.Contains(got, "#SBATCH --time=11\n") {
		t.Errorf("batch script of a 10m job lacks --time=11:\n%s", got)
	}
}

// A job asking for both fake GPUs sees them; with two processes each gets one.
func TestGPUs(t *testing.T) {
	t.Parallel()
	e := newExec(t, t.TempDir())
	l := launch(t, 1, `echo "gpus $CUDA_VISIBLE_DEVICES"`)
	l.Resources.GPUs = 2
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	l2 := launch(t, 2, `echo "gpu $RANK $CUDA_VISIBLE_DEVICES"`)
	l2.JobID += "-split"
	l2.Resources.GPUs = 2
	h2, err := e.Start(context.Background(), l2)
	if err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, e, h, time.Minute); ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	if out := logs(t, e, h); !strings.Contains(out, "[0] gpus 0,1\n") {
		t.Fatalf("log = %s, want CUDA_VISIBLE_DEVICES=0,1", out)
	}
	if ex := wait(t, e, h2, time.Minute); ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	if out := logs(t, e, h2); !strings.Contains(out, "[0] gpu 0 0\n") || !strings.Contains(out, "[1] gpu 1 1\n") {
		t.Fatalf("log = %s, want one GPU per process", out)
	}
}

// More GPUs than the cluster has can never run: sbatch refuses at once.
func TestSubmitRefused(t *testing.T) {
	t.Parallel()
	e := newExec(t, t.TempDir())
	l := launch(t, 1, "true")
	l.Resources.GPUs = 5
	_, err := e.Start(context.Background(), l)
	if !forge.IsKind(err, forge.Invalid) {
		t.Fatalf("err = %v, want Invalid", err)
	}
}

// Slurm's own time limit (--time, in whole minutes: this test takes one to
// two) ends as reason timeout, with Slurm's message. -short leaves it out.
func TestTimeLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("slurm enforces --time in whole minutes: this test takes 60 to 90 s")
	}
	t.Parallel()
	e := newExec(t, t.TempDir(), func(c *Config) { c.TimeLimit = time.Minute })
	h, err := e.Start(context.Background(), launch(t, 1, "echo ready; exec sleep 600"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ex := wait(t, e, h, 3*time.Minute)
	if ex.Reason != forge.ReasonTimeout || !strings.Contains(ex.Message, "TIME LIMIT") {
		t.Fatalf("exit = %+v, want timeout from slurm", ex)
	}
	t.Logf("slurm stopped the job after %v", time.Since(start).Round(time.Second))
}

// scancel by someone else is a signal nobody in Forge sent, not a cancel.
func TestCancelledOutsideForge(t *testing.T) {
	t.Parallel()
	c := slurmtest.Start(t)
	e := newExec(t, t.TempDir())
	h, err := e.Start(context.Background(), launch(t, 1, "echo ready; exec sleep 600"))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, h, "ready")
	if out, err := c.Command(context.Background(), "scancel", mustHandle(t, h).Job).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v: %s", err, out)
	}
	if ex := wait(t, e, h, time.Minute); ex.Reason != forge.ReasonSignal {
		t.Fatalf("exit = %+v, want signal", ex)
	}
}

// A Slurm job that Forge did not start is left alone by a status pass, and
// a new executor finds Forge's own job by name.
func TestForeignJobsLeftAlone(t *testing.T) {
	t.Parallel()
	c := slurmtest.Start(t)
	out, err := c.Command(context.Background(), "sbatch", "--parsable", "--job-name=not-forge", "--output=/dev/null", "--wrap", "sleep 600").Output()
	if err != nil {
		t.Fatalf("sbatch: %v", err)
	}
	foreign := strings.TrimSpace(string(out))
	t.Cleanup(func() { c.Command(context.Background(), "scancel", foreign).Run() })

	e := newExec(t, t.TempDir())
	l := launch(t, 1, "exit 0")
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, e, h, time.Minute); ex.Failed() {
		t.Fatalf("exit = %+v", ex)
	}
	found, err := newExec(t, e.cfg.SharedDir).Lookup(context.Background(), l.JobID, l.Attempt)
	if err != nil || mustHandle(t, found).Job != mustHandle(t, h).Job {
		t.Fatalf("lookup = %s, %v; want %s", found, err, h)
	}
	if _, err := e.Lookup(context.Background(), "nosuchjob", 1); !forge.IsKind(err, forge.NotFound) {
		t.Fatalf("lookup of an unknown job: %v, want NotFound", err)
	}
	st, err := c.Command(context.Background(), "squeue", "--noheader", "--job="+foreign, "--format=%T").Output()
	if err != nil || !strings.Contains("RUNNING PENDING", strings.TrimSpace(string(st))) || len(st) < 2 {
		t.Fatalf("the foreign job is %q (%v), want it still running", st, err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	c := slurmtest.Start(t)
	info, err := newExec(t, t.TempDir()).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Nodes: 1, Total: forge.Resources{CPUs: float64(c.CPUs), MemoryBytes: int64(c.MemoryMB) << 20, GPUs: c.GPUs}}
	if info != want {
		t.Fatalf("describe = %+v, want %+v", info, want)
	}
}

// countingRunner counts the commands run through the real runner.
type countingRunner struct {
	mu    sync.Mutex
	calls map[string]int
	next  Runner
}

func (c *countingRunner) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	c.mu.Lock()
	c.calls[name]++
	c.mu.Unlock()
	return c.next(ctx, name, args...)
}

// A status pass over many jobs on the real cluster is one squeue call.
func TestPassIsOneSqueue(t *testing.T) {
	t.Parallel()
	c := slurmtest.Start(t)
	counter := &countingRunner{calls: map[string]int{}, next: ExecRunner(c.Env())}
	e := newExec(t, t.TempDir(), func(cfg *Config) { cfg.Run = counter.run })
	jobs := map[string]*handle{}
	for i := range 20 {
		l := launch(t, 1, "exec sleep 600")
		l.JobID += "-" + string(rune('a'+i))
		fh, err := e.Start(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		h := mustHandle(t, fh)
		jobs[h.Job] = h
		t.Cleanup(func() { e.Cancel(context.Background(), fh, forge.ReasonCancelled) })
	}
	counter.mu.Lock()
	counter.calls = map[string]int{}
	counter.mu.Unlock()
	ended, err := e.pass(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ended) != 0 {
		t.Fatalf("ended = %v, want none", ended)
	}
	if len(counter.calls) != 1 || counter.calls["squeue"] != 1 {
		t.Fatalf("calls for one pass over %d jobs = %v, want one squeue", len(jobs), counter.calls)
	}
}

// TestDDP runs the PyTorch DistributedDataParallel script as two Slurm
// tasks: both ranks train, all-reduce, and end with identical weights.
func TestDDP(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs("../../jobs/testdata/ddp_train.py")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	e := newExec(t, t.TempDir())
	l := launch(t, 2, "")
	l.Command = []string{"/usr/bin/python3", script}
	l.Env["OUT_DIR"] = out
	l.Resources.CPUs = 2
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, e, h, 2*time.Minute); ex.Failed() {
		t.Fatalf("exit = %+v\n%s", ex, logs(t, e, h))
	}
	// Each task's exit and node, from the exit files.
	ps, err := e.Processes(context.Background(), h)
	if err != nil || len(ps) != 2 {
		t.Fatalf("processes: %+v %v", ps, err)
	}
	for i, p := range ps {
		if p.Rank != i || p.State != "exited" || p.Code != 0 || p.Node == "" {
			t.Errorf("process %d: %+v, want exited 0 on a named node", i, p)
		}
	}
	log := logs(t, e, h)
	for _, want := range []string{"[0] rank 0 mean loss", "[1] rank 1 mean loss"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	w0, err0 := os.ReadFile(filepath.Join(out, "weights.0"))
	w1, err1 := os.ReadFile(filepath.Join(out, "weights.1"))
	if err0 != nil || err1 != nil || len(w0) == 0 || string(w0) != string(w1) {
		t.Fatalf("weights differ or missing: %q (%v) vs %q (%v)", w0, err0, w1, err1)
	}
}
