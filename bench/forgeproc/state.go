package forgeproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forge-mlops/forge/internal/blob/s3test"
)

// TeamState is the state a team's `forge server` keeps outside itself: a
// PostgreSQL cluster (the Debian packages' initdb and pg_ctl, fsync on, as
// a team would run it) and an S3 server (versitygw with its POSIX backend,
// `make versitygw`), both on free loopback ports in a temp folder.
//
// With asyncCommit, PostgreSQL runs with synchronous_commit=off: a commit
// does not wait for its WAL to reach the disk (closer to Forge's SQLite,
// synchronous=NORMAL in WAL mode, which does not fsync each commit).
type TeamState struct {
	// DB is the database's URL, Endpoint the S3 server's; the bucket is
	// "forge".
	DB, Endpoint string
	dir          string
	pgBin        string
	cred         *syscall.Credential
	gw           *exec.Cmd
}

// StartTeamState starts PostgreSQL and versitygw.
func StartTeamState(ctx context.Context, asyncCommit bool) (*TeamState, error) {
	dir, err := os.MkdirTemp("", "forge-bench-state-")
	if err != nil {
		return nil, err
	}
	s := &TeamState{dir: dir}
	if err := s.startPostgres(asyncCommit); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.startS3(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// ServerArgs are the `forge server` flags that keep its state here.
func (s *TeamState) ServerArgs() []string {
	return []string{"--db", s.DB, "--blob", "s3://forge/team", "--s3-endpoint", s.Endpoint, "--s3-region", "us-east-1", "--s3-path-style"}
}

// Env is the environment of a process that uses the bucket: the S3
// settings and credentials (FORGE_BLOB, FORGE_S3_*, AWS_*).
func (s *TeamState) Env() []string {
	return []string{"FORGE_BLOB=s3://forge/team", "FORGE_S3_ENDPOINT=" + s.Endpoint, "FORGE_S3_REGION=us-east-1", "FORGE_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3test.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3test.SecretKey}
}

// Stop stops both servers and removes their files.
func (s *TeamState) Stop() {
	if s.gw != nil {
		s.gw.Process.Kill()
		s.gw.Wait()
	}
	if s.DB != "" {
		s.pg("pg_ctl", "-D", filepath.Join(s.dir, "pg"), "-m", "immediate", "-w", "stop")
	}
	os.RemoveAll(s.dir)
}

func (s *TeamState) startPostgres(asyncCommit bool) error {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return fmt.Errorf("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
	}
	s.pgBin = filepath.Dir(matches[len(matches)-1])
	// PostgreSQL refuses to run as root: run it as the postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(s.dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return err
		}
	}
	data := filepath.Join(s.dir, "pg")
	if out, err := s.pg("initdb", "-D", data, "-U", "forge", "--auth=trust", "-E", "UTF8"); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", port, s.dir)
	if asyncCommit {
		opts += " -c synchronous_commit=off"
	}
	if out, err := s.pg("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(s.dir, "pg.log"), "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	s.DB = fmt.Sprintf("postgres://forge@127.0.0.1:%d/postgres?sslmode=disable", port)
	return nil
}

func (s *TeamState) pg(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.pgBin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	return []byte(strings.TrimSpace(string(out))), err
}

func (s *TeamState) startS3(ctx context.Context) error {
	endpoint, gw, err := StartGateway(ctx, s3test.Binary(), filepath.Join(s.dir, "s3"))
	if err != nil {
		return err
	}
	s.Endpoint, s.gw = endpoint, gw
	return nil
}

// StartGateway runs versitygw with its POSIX backend in root on a free
// port, with an empty bucket "forge", and returns its URL.
func StartGateway(ctx context.Context, bin, root string) (string, *exec.Cmd, error) {
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("versitygw: %w (build it: make versitygw)", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "forge"), 0o755); err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--access", s3test.AccessKey, "--secret", s3test.SecretKey, "--port", addr, "posix", root)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	endpoint := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		// Any HTTP answer (403 to an anonymous request) means it serves.
		resp, err := http.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return endpoint, cmd, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return "", nil, fmt.Errorf("versitygw did not answer on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
