package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// warmFlag makes a shim start ahead of its job and wait, with nothing open
// but its stdin, for a warmSpec there. Starting a shim costs the forge
// binary's exec and package inits (10 to 15 ms on a quiet machine, several
// times that on a loaded one), most of a short job's start: the executor
// keeps one such shim started, so that a job's start only hands it the
// job. The spare runs as the server's user with no job's environment, as a
// shim started for the job would until it starts the job's process; when
// the server goes, its stdin ends and it exits without running anything.
const warmFlag = "--warm"

// warmSpec is what the executor hands a warm shim: what it would have been
// started with.
type warmSpec struct {
	Args []string `json:"args"` // the shim's arguments after ShimCommand
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	Log  string   `json:"log"` // the shim's own stdout and stderr
}

// warmShim waits for its spec, becomes the shim it describes (working
// folder, environment, output) and runs it.
func warmShim() int {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	if err != nil || len(b) == 0 {
		return 0 // the executor closed it unused, or is gone
	}
	var sp warmSpec
	if err := json.Unmarshal(b, &sp); err != nil {
		fmt.Fprintln(os.Stderr, "job-shim: bad spec:", err)
		return 2
	}
	if len(sp.Args) > 0 && sp.Args[0] == warmFlag {
		fmt.Fprintln(os.Stderr, "job-shim: a warm spec cannot ask for another")
		return 2
	}
	logf, err := os.OpenFile(sp.Log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "job-shim:", err)
		return 1
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintln(logf, "job-shim:", err)
		return 1
	}
	for fd, f := range []*os.File{null, logf, logf} {
		if err := syscall.Dup3(int(f.Fd()), fd, 0); err != nil {
			fmt.Fprintln(logf, "job-shim:", err)
			return 1
		}
	}
	null.Close()
	logf.Close()
	if err := os.Chdir(sp.Dir); err != nil {
		fmt.Fprintln(os.Stderr, "job-shim:", err)
		return 1
	}
	os.Clearenv()
	for _, kv := range sp.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	return Shim(sp.Args)
}

// spareShim is a warm shim started ahead and the end of the pipe it reads
// its spec from.
type spareShim struct {
	cmd  *exec.Cmd
	spec *os.File
}

// spareShims keeps one warm shim started ahead.
type spareShims struct {
	shim []string // the command that runs a shim
	env  []string // the spare's own environment until it gets its spec

	mu     sync.Mutex
	spare  *spareShim
	making bool
	closed bool
	wg     sync.WaitGroup
}

// errNoSpare says a start found no warm shim to hand the job to.
var errNoSpare = errors.New("no spare shim")

// refill starts making a spare if none is there or being made.
func (s *spareShims) refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.making || s.spare != nil {
		return
	}
	s.making = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sp, err := s.startSpare()
		s.mu.Lock()
		s.making = false
		if err == nil && !s.closed && s.spare == nil {
			s.spare, sp = sp, nil
		}
		s.mu.Unlock()
		if sp != nil {
			sp.discard()
		}
	}()
}

func (s *spareShims) startSpare() (*spareShim, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	argv := append(append([]string(nil), s.shim...), warmFlag)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = s.env
	cmd.Dir = "/"
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, err
	}
	return &spareShim{cmd: cmd, spec: w}, nil
}

// discard ends a spare that will run nothing: at the end of its stdin it
// exits.
func (sp *spareShim) discard() {
	sp.spec.Close()
	sp.cmd.Wait()
}

// hand gives the spare's shim sp and starts the next one. With no spare, or
// one that is gone, it returns errNoSpare and the caller starts a shim of
// its own.
func (s *spareShims) hand(sp warmSpec) (*exec.Cmd, error) {
	s.mu.Lock()
	spare := s.spare
	s.spare = nil
	s.mu.Unlock()
	s.refill()
	if spare == nil {
		return nil, errNoSpare
	}
	b, err := json.Marshal(sp)
	if err != nil {
		spare.discard()
		return nil, err
	}
	_, err = spare.spec.Write(b)
	if cerr := spare.spec.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// It died while it waited (killed by someone): it never read
		// the spec, so nothing of the job runs.
		syscall.Kill(-spare.cmd.Process.Pid, syscall.SIGKILL)
		spare.cmd.Wait()
		return nil, errNoSpare
	}
	return spare.cmd, nil
}

// close ends the spare and waits for one being made.
func (s *spareShims) close() {
	s.mu.Lock()
	s.closed = true
	spare := s.spare
	s.spare = nil
	s.mu.Unlock()
	s.wg.Wait()
	if spare != nil {
		spare.discard()
	}
}
