package kube

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/bundle"
)

// LaunchCommand is the argument that makes the forge binary run the pod side
// of this executor:
//
//	forge kube-launch fetch [--code DIGEST] [--input SPEC]... [--dir DIR] [--bin PATH]
//	forge kube-launch run --procs N [--gpus G] -- CMD ARGS...
//
// fetch runs in the init container: it downloads the code bundle from
// FORGE_SERVER (GET /api/forge/v1/bundles/DIGEST, with FORGE_TOKEN), checks
// its sha256, extracts it, downloads each dataset input into the same folder
// (see InputFlag), and copies the forge binary to --bin so the job's own
// image (which has no forge) can run `run`. run starts the node's processes
// with the rank contract.
const LaunchCommand = "kube-launch"

// launcherPrefix starts the launcher's own lines in a pod's output.
const launcherPrefix = "[forge] "

// Fetch downloads the bundle with the given digest from server and extracts
// it into dir.
func Fetch(ctx context.Context, client *http.Client, server, token, digest, dir string) error {
	if server == "" {
		return errors.New("fetch code: FORGE_SERVER is not set")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(server, "/")+"/api/forge/v1/bundles/"+digest, nil)
	if err != nil {
		return fmt.Errorf("fetch code: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch code: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetch code bundle %s: %s: %s", digest, resp.Status, strings.TrimSpace(string(msg)))
	}
	tmp, err := os.CreateTemp("", "bundle-*.tar.gz")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, sum), resp.Body); err != nil {
		return fmt.Errorf("fetch code bundle %s: %w", digest, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != digest {
		return fmt.Errorf("fetch code bundle %s: got content with sha256 %s", digest, got)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return bundle.Extract(tmp, dir)
}

// InputFlag is the --input argument of fetch for in:
// "path=P,ref=NAME@VERSION,format=F,sha256=D".
func InputFlag(in forge.Input) string {
	return "path=" + in.Path + ",ref=" + in.Ref + ",format=" + in.Format + ",sha256=" + in.Digest
}

// ParseInputFlag reads what InputFlag wrote.
func ParseInputFlag(s string) (forge.Input, error) {
	var in forge.Input
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "path":
			in.Path = v
		case "ref":
			in.Ref = v
		case "format":
			in.Format = v
		case "sha256":
			in.Digest = v
		default:
			return in, fmt.Errorf("input %q: unknown key %q", s, k)
		}
	}
	p := path.Clean(in.Path)
	if in.Path == "" || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
		return in, fmt.Errorf("input %q: want a path inside the code folder", s)
	}
	if _, v, ok := strings.Cut(in.Ref, "@"); !ok || v == "" {
		return in, fmt.Errorf("input %q: want ref=NAME@VERSION", s)
	}
	if in.Format != "parquet" && in.Format != "csv" {
		return in, fmt.Errorf("input %q: want format=parquet or csv", s)
	}
	return in, nil
}

// FetchInput downloads a dataset version from server into dir/in.Path, from
// GET /api/forge/v1/datasets/NAME/versions/V/data (?format=csv for CSV).
// Parquet is checked against the version's digest, which the job was
// started with. CSV is made by the server on request, so it is checked
// against the sha256 the server sends for it (X-Content-Sha256): the
// version in the URL pins what it holds.
func FetchInput(ctx context.Context, client *http.Client, server, token string, in forge.Input, dir string) error {
	if server == "" {
		return errors.New("fetch input: FORGE_SERVER is not set")
	}
	name, version, _ := strings.Cut(in.Ref, "@")
	u := strings.TrimSuffix(server, "/") + "/api/forge/v1/datasets/" + url.PathEscape(name) + "/versions/" + url.PathEscape(version) + "/data"
	if in.Format == "csv" {
		u += "?format=csv"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return fmt.Errorf("fetch input %s: %w", in.Ref, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch input %s: %w", in.Ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetch input %s: %s: %s", in.Ref, resp.Status, strings.TrimSpace(string(msg)))
	}
	want := in.Digest
	if in.Format == "csv" {
		want = resp.Header.Get("X-Content-Sha256")
	}
	if want == "" {
		return fmt.Errorf("fetch input %s: no sha256 to check it against", in.Ref)
	}
	dst := filepath.Join(dir, filepath.FromSlash(path.Clean(in.Path)))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("fetch input %s: %w", in.Ref, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return fmt.Errorf("fetch input %s: %w", in.Ref, err)
	}
	defer os.Remove(tmp.Name())
	sum := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, sum), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch input %s: %w", in.Ref, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return fmt.Errorf("fetch input %s: got content with sha256 %s, want %s", in.Ref, got, want)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// CopySelf copies the running binary to dst, executable.
func CopySelf(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

// RunLocal starts procs processes of argv on this node with the rank
// contract (RANK = NODE_RANK*procs + LOCAL_RANK; NODE_RANK from the
// environment, else JOB_COMPLETION_INDEX), each line of their output
// prefixed with "[rank] ". With gpus >= procs each process gets its own
// share of the node's devices in CUDA_VISIBLE_DEVICES. When one process
// fails the others get SIGTERM (SIGKILL after grace); SIGTERM to the
// launcher is passed on. It returns the exit code of the first failure, or 0.
func RunLocal(ctx context.Context, procs, gpus int, argv []string, environ []string, out io.Writer, grace time.Duration) (int, error) {
	if procs < 1 || len(argv) == 0 {
		return 2, errors.New("run: want --procs >= 1 and a command")
	}
	env := envMap(environ)
	nodeRank, err := strconv.Atoi(firstNonEmpty(env["NODE_RANK"], env["JOB_COMPLETION_INDEX"], "0"))
	if err != nil {
		return 2, fmt.Errorf("run: NODE_RANK: %w", err)
	}
	var mu sync.Mutex // one line at a time in out
	type result struct {
		rank, code int
	}
	results := make(chan result, procs)
	var cmds []*exec.Cmd
	var pipes sync.WaitGroup
	for local := range procs {
		rank := nodeRank*procs + local
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append([]string(nil), environ...)
		for _, kv := range [][2]string{{"RANK", strconv.Itoa(rank)}, {"LOCAL_RANK", strconv.Itoa(local)}, {"NODE_RANK", strconv.Itoa(nodeRank)}} {
			cmd.Env = append(cmd.Env, kv[0]+"="+kv[1], "PET_"+kv[0]+"="+kv[1])
		}
		if gpus >= procs && gpus > 0 {
			per := gpus / procs
			devs := make([]string, per)
			for i := range devs {
				devs[i] = strconv.Itoa(local*per + i)
			}
			cmd.Env = append(cmd.Env, "CUDA_VISIBLE_DEVICES="+strings.Join(devs, ","))
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		r, w := io.Pipe()
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			for _, c := range cmds {
				syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			}
			return 127, fmt.Errorf("run: start rank %d: %w", rank, err)
		}
		cmds = append(cmds, cmd)
		pipes.Add(1)
		go func() {
			defer pipes.Done()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				mu.Lock()
				fmt.Fprintf(out, "[%d] %s\n", rank, sc.Text())
				mu.Unlock()
			}
			io.Copy(io.Discard, r)
		}()
		go func() {
			err := cmd.Wait()
			w.Close()
			results <- result{rank, exitCode(cmd, err)}
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	stopAll := func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		}
		time.AfterFunc(grace, func() {
			for _, c := range cmds {
				syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			}
		})
	}
	first, stopping := 0, false
	for range procs {
		var r result
		select {
		case r = <-results:
		case <-sigs:
			stopping = true
			stopAll()
			r = <-results
		case <-ctx.Done():
			stopping = true
			stopAll()
			r = <-results
		}
		if r.code != 0 && first == 0 {
			first = r.code
			if !stopping {
				stopping = true
				mu.Lock()
				fmt.Fprintf(out, "%srank %d exited with %d: stopping the others\n", launcherPrefix, r.rank, r.code)
				mu.Unlock()
				stopAll()
			}
		}
	}
	pipes.Wait()
	return first, nil
}

func exitCode(cmd *exec.Cmd, err error) int {
	if err == nil {
		return 0
	}
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		return 128 + int(st.Signal())
	}
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() >= 0 {
		return cmd.ProcessState.ExitCode()
	}
	return 1
}

func envMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
