// Package s3test starts a real S3 server (versitygw with its POSIX backend,
// built by scripts/build-versitygw.sh) for tests.
package s3test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Credentials of the servers started here.
const (
	AccessKey = "forgetestkey"
	SecretKey = "forgetestsecret0123456789"
)

// Server is a running S3 server.
type Server struct {
	// Endpoint is its URL, e.g. http://127.0.0.1:41234.
	Endpoint string
	// Root is the POSIX folder behind it: bucket B is Root/B.
	Root string
	cmd  *exec.Cmd
	addr string
	bin  string
	t    testing.TB
}

// Binary is the versitygw binary: $FORGE_VERSITYGW, or where
// scripts/build-versitygw.sh caches it.
func Binary() string {
	if p := os.Getenv("FORGE_VERSITYGW"); p != "" {
		return p
	}
	cache := os.Getenv("FORGE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "forge")
	}
	return filepath.Join(cache, "versitygw", "v1.8.0", "versitygw")
}

// Start runs a server on a free port with an empty bucket named bucket,
// stopped when the test ends. A missing binary fails the test.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw is not built (%v): run `make setup-test` (scripts/build-versitygw.sh)", err)
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Endpoint: "http://" + addr, Root: root, addr: addr, bin: bin, t: t}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--access", AccessKey, "--secret", SecretKey, "--port", s.addr, "posix", s.Root)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			s.t.Fatalf("versitygw exited at start (%v): %s", err, out.String())
		default:
		}
		// Any HTTP answer (403 to an anonymous request) means it serves.
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			s.t.Fatalf("versitygw did not answer on %s within 30s: %v: %s", s.addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (kill -9); its files stay until the test ends.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Process.Wait() // the start goroutine may reap it first; either way it is gone
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port and
// folder.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// Env is the AWS_* variables of this server's credentials.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey}
}

// String names the server in messages.
func (s *Server) String() string { return fmt.Sprintf("versitygw at %s (%s)", s.Endpoint, s.Root) }
