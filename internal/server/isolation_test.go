package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

// A server running as root runs local jobs as the dedicated user, which
// can read neither the server's database nor its data dir: it could
// otherwise read token hashes and mint itself a token.
func TestJobIsolation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("the test checks the root server's default; this is uid %d", os.Geteuid())
	}
	ju, err := user.Lookup(config.DefaultJobUser)
	if err != nil {
		t.Fatalf("%v (scripts/setup.sh test creates %s)", err, config.DefaultJobUser)
	}
	// Not t.TempDir: its parent is 0700, which no other user passes.
	dir, err := os.MkdirTemp("", "forge-isolation-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- s.Run(ctx, ready) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ready

	for path, want := range map[string]os.FileMode{dir: 0o711, filepath.Join(dir, "forge.db"): 0o600, filepath.Join(dir, "blobs"): 0o700, filepath.Join(dir, "tmp"): 0o700,
		filepath.Join(dir, "predictors"): 0o700, filepath.Join(dir, "deploy-cache"): 0o700, filepath.Join(dir, "executor"): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %#o", path, fi.Mode().Perm(), err, want)
		}
	}
	client := api.NewClient(s.URL(), "")
	script := `echo uid=$(id -u); cat ` + dir + `/forge.db; ls ` + dir + `; ls ` + dir + `/blobs; python3 -c 'import forge; print("client", forge.__name__)'; echo end`
	job, err := client.SubmitJob(ctx, api.JobSpec{Name: "snoop", Command: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !job.Final(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			r, _ := client.JobLogs(ctx, job.ID, 0, false)
			b, _ := io.ReadAll(r)
			t.Fatalf("job still %s: %s", job.State, b)
		}
		if job, err = client.Job(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}
	r, err := client.JobLogs(ctx, job.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	out := string(b)
	if job.State != "succeeded" {
		t.Fatalf("job %s (%s): %s\n%s", job.State, job.Reason, job.Message, out)
	}
	if !strings.Contains(out, "uid="+ju.Uid+"\n") {
		t.Errorf("the job does not run as %s (uid %s):\n%s", config.DefaultJobUser, ju.Uid, out)
	}
	for _, w := range []string{"forge.db: Permission denied", dir + "': Permission denied", "blobs': Permission denied", "client forge", "end"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "SQLite format") {
		t.Errorf("the job read the database:\n%s", out)
	}
}
