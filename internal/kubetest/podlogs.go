package kubetest

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// containerLog is a container's output as the container runtime keeps it:
// one line per write of a line, each with the time it was written
// (strictly increasing, so a reader resuming at a time misses nothing).
type containerLog struct {
	path string

	mu      sync.Mutex
	f       *os.File
	last    time.Time
	partial []byte
	done    bool
}

func newContainerLog(path string) (*containerLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &containerLog{path: path, f: f}, nil
}

func (l *containerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.line(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
}

func (l *containerLog) line(b []byte) {
	ts := time.Now().UTC()
	if !ts.After(l.last) {
		ts = l.last.Add(time.Nanosecond)
	}
	l.last = ts
	l.f.Write(fmt.Appendf(nil, "%s %s\n", ts.Format(time.RFC3339Nano), b))
}

func (l *containerLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(l.partial)
		l.partial = nil
	}
	l.f.Close()
	l.done = true
}

// tail is the end of the output as a termination message: at most n lines
// and max bytes, without timestamps.
func (l *containerLog) tail(n, max int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := os.ReadFile(l.path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	lines = lines[len(lines)-min(n, len(lines)):]
	for i, line := range lines {
		_, lines[i], _ = strings.Cut(line, " ")
	}
	msg := strings.Join(lines, "\n")
	return msg[len(msg)-min(max, len(msg)):]
}

func (l *containerLog) ended() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

// serveLogs is the kubelet's /containerLogs/NS/POD/CONTAINER, which the
// apiserver proxies pods/log to: follow, timestamps, sinceTime, tailLines
// and limitBytes.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "containerLogs" {
		http.NotFound(w, r)
		return
	}
	k.mu.Lock()
	run := k.byName[parts[1]+"/"+parts[2]]
	k.mu.Unlock()
	if run == nil {
		http.Error(w, "pod "+parts[2]+" is not on this node", http.StatusNotFound)
		return
	}
	run.mu.Lock()
	l := run.logs[parts[3]]
	run.mu.Unlock()
	if l == nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", parts[3], parts[2]), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	follow, stamps := q.Get("follow") == "true", q.Get("timestamps") == "true"
	var since time.Time
	if s := q.Get("sinceTime"); s != "" {
		since, _ = time.Parse(time.RFC3339, s)
	}
	if s := q.Get("sinceSeconds"); s != "" {
		n, _ := strconv.Atoi(s)
		since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	tail, limit := -1, int64(-1)
	if s := q.Get("tailLines"); s != "" {
		tail, _ = strconv.Atoi(s)
	}
	if s := q.Get("limitBytes"); s != "" {
		limit, _ = strconv.ParseInt(s, 10, 64)
	}
	f, err := os.Open(l.path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	var sent int64
	emit := func(line string) bool {
		ts, text, _ := strings.Cut(line, " ")
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.Before(since) {
			return true
		}
		if !stamps {
			line = text
		}
		if limit >= 0 && sent+int64(len(line)) > limit {
			line = line[:limit-sent]
		}
		n, err := w.Write([]byte(line))
		sent += int64(n)
		return err == nil && (limit < 0 || sent < limit)
	}
	rd := bufio.NewReader(f)
	if tail >= 0 {
		var lines []string
		for {
			s, err := rd.ReadString('\n')
			if err != nil {
				break // lines are written whole: no partial one to keep
			}
			lines = append(lines, s)
		}
		for _, s := range lines[max(0, len(lines)-tail):] {
			if !emit(s) {
				return
			}
		}
		if !follow {
			return
		}
		rd = bufio.NewReader(f)
	}
	pending := ""
	for {
		ended := l.ended()
		for {
			s, err := rd.ReadString('\n')
			pending += s
			if err != nil {
				break
			}
			if !emit(pending) {
				return
			}
			pending = ""
		}
		flush()
		if !follow || ended {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
