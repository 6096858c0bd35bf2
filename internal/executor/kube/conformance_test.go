package kube

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/executor/executortest"
	"github.com/forge-mlops/forge/internal/kubetest"
)

// podForgeEnv makes this test binary act as the forge binary of the pods
// (the Forge image's `forge`, and the copy that `fetch --bin` makes for the
// job's container): the test kubelet runs it for argv[0] "forge" and sets
// the variable in every container.
const podForgeEnv = "FORGE_KUBETEST_FORGE"

func TestMain(m *testing.M) {
	if os.Getenv(podForgeEnv) == "1" {
		os.Exit(podForge(os.Args[1:]))
	}
	kubetest.Main(m)
}

// podForge is `forge kube-launch ...` as cmd/forge parses it, calling the
// same Fetch, CopySelf and RunLocal.
func podForge(args []string) int {
	if len(args) < 2 || args[0] != LaunchCommand {
		fmt.Fprintf(os.Stderr, "test forge: want %s fetch|run, got %q\n", LaunchCommand, args)
		return 2
	}
	fs := flag.NewFlagSet(args[1], flag.ContinueOnError)
	var err error
	code := 0
	switch args[1] {
	case "fetch":
		digest := fs.String("code", "", "")
		var inputs []forge.Input
		fs.Func("input", "", func(s string) error {
			in, err := ParseInputFlag(s)
			inputs = append(inputs, in)
			return err
		})
		dir := fs.String("dir", CodeDir, "")
		bin := fs.String("bin", "", "")
		if err = fs.Parse(args[2:]); err != nil {
			return 2
		}
		if *bin != "" {
			err = CopySelf(*bin)
		}
		if err == nil && *digest != "" {
			err = Fetch(context.Background(), &http.Client{Timeout: time.Minute}, os.Getenv("FORGE_SERVER"), os.Getenv("FORGE_TOKEN"), *digest, *dir)
		}
		for _, in := range inputs {
			if err == nil {
				err = FetchInput(context.Background(), &http.Client{Timeout: time.Minute}, os.Getenv("FORGE_SERVER"), os.Getenv("FORGE_TOKEN"), in, *dir)
			}
		}
	case "run":
		procs := fs.Int("procs", 1, "")
		gpus := fs.Int("gpus", 0, "")
		if err = fs.Parse(args[2:]); err != nil {
			return 2
		}
		code, err = RunLocal(context.Background(), *procs, *gpus, fs.Args(), os.Environ(), os.Stdout, 2*time.Second)
	default:
		err = errors.New("unknown subcommand " + args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "forge:", err)
		return max(code, 1)
	}
	return code
}

// bundles serves code bundles as the Forge server does at
// GET /api/forge/v1/bundles/{digest}, and dataset versions as it does at
// GET /api/forge/v1/datasets/{name}/versions/{version}/data[?format=csv],
// for the init containers to fetch.
type bundles struct {
	mu    sync.Mutex
	blobs map[string][]byte
	data  map[string][]byte // by "name@version:format"
}

func (b *bundles) serveData(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "parquet"
	}
	b.mu.Lock()
	body, ok := b.data[r.PathValue("name")+"@"+r.PathValue("version")+":"+format]
	b.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(body)
	w.Header().Set("X-Content-Sha256", hex.EncodeToString(sum[:]))
	w.Write(body)
}

func (b *bundles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	blob, ok := b.blobs[r.PathValue("digest")]
	b.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(blob)
}

func (b *bundles) stage(t *testing.T, l *forge.Launch) {
	t.Helper()
	// The inputs go to the dataset endpoint and out of the code folder, so
	// the pods have them only if the init container fetches them.
	for _, in := range l.Inputs {
		p := filepath.Join(l.Dir, filepath.FromSlash(in.Path))
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		b.data[in.Ref+":"+in.Format] = body
		b.mu.Unlock()
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	digest, _, err := bundle.Create(l.Dir, &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.blobs[digest] = buf.Bytes()
	b.mu.Unlock()
	l.Code = digest
}

// TestConformance runs the executor suite on a real apiserver with the
// test kubelet of kubetest playing the node and the job controller: every
// pod runs its init container (this binary as `forge kube-launch fetch`,
// which downloads the code bundle from a test server standing in for
// Forge's) and its main container as local processes. MASTER_ADDR, the
// index-0 pod's name under the headless Service, resolves to 127.0.0.1
// through the kubelet's stand-in for cluster DNS.
func TestConformance(t *testing.T) {
	rc := kubetest.Config(t)
	ns := kubetest.Namespace(t, rc)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kubetest.StartKubelet(t, rc, kubetest.KubeletConfig{
		Namespace: ns,
		Commands:  map[string]string{"forge": self},
		Env:       []string{podForgeEnv + "=1"},
	})
	b := &bundles{blobs: map[string][]byte{}, data: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.Handle("GET /api/forge/v1/bundles/{digest}", b)
	mux.HandleFunc("GET /api/forge/v1/datasets/{name}/versions/{version}/data", b.serveData)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cs := kubernetes.NewForConfigOrDie(rc)

	newExec := func(t *testing.T, state string) forge.Executor {
		e, err := New(Config{Namespace: ns, Image: "busybox", ForgeImage: "forge:test", ServerURL: srv.URL, LogDir: state}, rc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	// The kubelet expands $(VAR) and $$ in a container's command and env:
	// a job's reach its processes as written all the same.
	t.Run("CommandAsWritten", func(t *testing.T) {
		e := newExec(t, t.TempDir())
		l := &forge.Launch{JobID: fmt.Sprintf("dollar%d", os.Getpid()), Attempt: 1,
			Command: []string{"sh", "-c", `echo "v=$FORGE_V"; test "$$" -gt 1 && echo pid-ok`},
			Env:     map[string]string{"FORGE_V": "$(FORGE_JOB_ID) $$"}, Nodes: 1, ProcsPerNode: 1}
		h, err := e.Start(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if ex, err := e.Wait(ctx, h); err != nil || ex.Failed() {
			t.Fatalf("exit %+v, %v", ex, err)
		}
		r, err := e.Logs(ctx, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(r)
		r.Close()
		for _, want := range []string{"[0] v=$(FORGE_JOB_ID) $$\n", "[0] pid-ok\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("log has no %q:\n%s", want, out)
			}
		}
	})

	executortest.Run(t, executortest.Backend{
		New:   newExec,
		Nodes: 2,
		Stage: b.stage,
		// Someone deletes the Job behind Forge's back (kubectl delete job):
		// the pods go with it, and nothing records how they ended.
		Lose: func(t *testing.T, e forge.Executor, fh forge.Handle) forge.Handle {
			h, err := parseHandle(fh)
			if err != nil {
				t.Fatal(err)
			}
			bg := metav1.DeletePropagationBackground
			if err := cs.BatchV1().Jobs(h.Namespace).Delete(context.Background(), h.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
				t.Fatal(err)
			}
			return fh
		},
		Timeout: 30 * time.Second,
	})
}
