package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShimCommand is the argument that makes the forge binary run as a shim
// (`forge job-shim LOG EXITFILE PREFIX -- CMD ARGS...`).
const ShimCommand = "job-shim"

// exitRecord is what a shim writes when its process ends. It is the source
// of truth for an exit, so it survives the server that started the shim.
type exitRecord struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	OOM    bool   `json:"oom,omitempty"`
	At     int64  `json:"at"` // unix nanoseconds
	Msg    string `json:"msg,omitempty"`
}

// Shim runs one job process: it leads the process group, writes the
// process's output with timestamps to the log, and its exit to a file. The
// server may die and restart meanwhile: nothing here depends on it. args are
// [--memory-max BYTES] [--run-as UID:GID[:GROUPS]] LOG EXITFILE PREFIX -- CMD ARGS...,
// or --warm alone for a shim that waits for them (warm.go); it returns the
// shim's exit status. With --run-as, the process runs as that user and
// groups while the shim keeps the server's (to write the log, the exit file
// and the cgroup). With --memory-max, the process runs in a cgroup v2
// group of its own with that limit, where the machine has cgroup v2: over
// it, the kernel kills the process and the exit records an OOM.
func Shim(args []string) int {
	if len(args) == 1 && args[0] == warmFlag {
		return warmShim()
	}
	var memMax int64
	var cred *syscall.Credential
	for len(args) > 1 && strings.HasPrefix(args[0], "--") && args[0] != "--" {
		switch args[0] {
		case "--memory-max":
			memMax, _ = strconv.ParseInt(args[1], 10, 64)
		case "--run-as":
			c, err := parseCredential(args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "job-shim:", err)
				return 2
			}
			cred = c
		default:
			fmt.Fprintf(os.Stderr, "job-shim: unknown option %s\n", args[0])
			return 2
		}
		args = args[2:]
	}
	if len(args) < 5 || args[3] != "--" {
		fmt.Fprintln(os.Stderr, "usage: job-shim [--memory-max BYTES] [--run-as UID:GID[:GROUPS]] LOG EXITFILE PREFIX -- CMD ARGS...")
		return 2
	}
	logPath, exitPath, prefix, argv := args[0], args[1], args[2], args[4:]
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "job-shim:", err)
		return 1
	}
	// A SIGTERM to the group reaches the process too; the shim outlives it
	// to record how it ended. Notify (not Ignore) so the child starts with
	// default handlers.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	oomKillsNow := oomKills
	var started func(pid int)
	if memMax > 0 {
		group, err := memoryLimit(cgroupRoot, filepath.Base(filepath.Dir(exitPath))+"-"+filepath.Base(exitPath), memMax)
		if err != nil {
			fmt.Fprintf(logf, "%s [forge] memory limit not enforced (%v)\n", time.Now().UTC().Format(time.RFC3339Nano), err)
		} else {
			oomKillsNow = func() int64 { return groupOOMKills(group) }
			// Only the job's process goes in the group, so the OOM killer
			// never picks the shim that records how the job ended.
			started = func(pid int) {
				if err := joinGroup(group, pid); err != nil {
					fmt.Fprintf(logf, "%s [forge] memory limit not enforced (%v)\n", time.Now().UTC().Format(time.RFC3339Nano), err)
				}
			}
			defer removeGroup(group)
		}
	}
	oomBefore := oomKillsNow()
	rec := run(argv, cred, logf, prefix, started)
	if rec.Signal == int(syscall.SIGKILL) && oomKillsNow() > oomBefore {
		rec.OOM = true
		rec.Msg = "killed by the kernel: out of memory"
		if memMax > 0 {
			rec.Msg += fmt.Sprintf(" (limit %d MiB)", memMax>>20)
		}
	}
	rec.At = time.Now().UnixNano()
	if err := writeExit(exitPath, rec); err != nil {
		fmt.Fprintln(logf, "job-shim: record exit:", err)
		return 1
	}
	return 0
}

func run(argv []string, cred *syscall.Credential, logf *os.File, prefix string, started func(pid int)) exitRecord {
	outR, outW, err := os.Pipe()
	if err != nil {
		return exitRecord{Code: 127, Msg: err.Error()}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return exitRecord{Code: 127, Msg: err.Error()}
	}
	growPipe(outW)
	growPipe(errW)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = outW, errW
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		line := stamp(time.Now(), prefix, "cannot start process: "+err.Error())
		logf.Write(line)
		return exitRecord{Code: 127, Msg: "cannot start process: " + err.Error()}
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	copied := make(chan struct{}, 2)
	for _, r := range []*os.File{outR, errR} {
		go func() { copyLines(logf, r, prefix); copied <- struct{}{} }()
	}
	state, _ := cmd.Process.Wait()
	// Grandchildren may still hold the pipes: give them a moment, then stop
	// reading so the exit is recorded.
	deadline := time.After(2 * time.Second)
	for range 2 {
		select {
		case <-copied:
		case <-deadline:
			outR.SetReadDeadline(time.Now())
			errR.SetReadDeadline(time.Now())
			<-copied
		}
	}
	rec := exitRecord{}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		rec.Signal = int(ws.Signal())
		rec.Code = 128 + rec.Signal
		rec.Msg = "killed by " + ws.Signal().String()
	} else {
		rec.Code = state.ExitCode()
	}
	return rec
}

// copyLines writes r's lines to w, each prefixed with a timestamp and
// prefix. Lines read together are written in one write, so that processes
// appending to the same file (O_APPEND) never interleave within a line; they
// share one timestamp, formatted once, which keeps a shim at several hundred
// MB/s of short lines.
func copyLines(w io.Writer, r io.Reader, prefix string) {
	const maxLine = 64 << 10
	buf := make([]byte, 256<<10)
	var pending, out, head []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			head = appendHead(head[:0], time.Now(), prefix)
			data := buf[:n]
			out = out[:0]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				out = append(out, head...)
				out = append(out, pending...)
				out = append(out, data[:i+1]...)
				pending = pending[:0]
				data = data[i+1:]
			}
			pending = append(pending, data...)
			if len(pending) >= maxLine {
				out = append(append(append(out, head...), pending...), '\n')
				pending = pending[:0]
			}
			if len(out) > 0 {
				w.Write(out)
			}
		}
		if err != nil {
			if len(pending) > 0 {
				w.Write(append(append(appendHead(nil, time.Now(), prefix), pending...), '\n'))
			}
			return
		}
	}
}

// growPipe asks for a 1 MiB pipe (Linux gives 64 KiB) so that a fast
// writer is not stopped every 64 KiB while the shim writes the log. It is
// best effort: past /proc/sys/fs/pipe-max-size the pipe keeps its size.
func growPipe(f *os.File) {
	const fSetPipeSz = 1031 // F_SETPIPE_SZ
	if c, err := f.SyscallConn(); err == nil {
		c.Control(func(fd uintptr) { syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, 1<<20) })
	}
}

// appendHead appends what starts each log line: "TIMESTAMP PREFIX ".
func appendHead(b []byte, t time.Time, prefix string) []byte {
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, ' ')
	b = append(b, prefix...)
	return append(b, ' ')
}

func stamp(t time.Time, prefix, line string) []byte {
	return append(append(appendHead(make([]byte, 0, len(line)+40), t, prefix), line...), '\n')
}

func writeExit(path string, rec exitRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readExit(path string) (exitRecord, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return exitRecord{}, false
	}
	var rec exitRecord
	if json.Unmarshal(b, &rec) != nil {
		return exitRecord{}, false
	}
	return rec, true
}

// oomKills reads the OOM-kill counter of the shim's cgroup (cgroup v2), or 0
// where there is none.
func oomKills() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.events")
	if err != nil {
		return 0 // no cgroup v2 memory controller: OOM kills look like SIGKILL
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
