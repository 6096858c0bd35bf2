package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forge-mlops/forge"
)

// attempt is an attempt whose output this process follows into its log
// file: one follower per pod, started when the informer sees the pod
// running (pods/log needs a started container).
type attempt struct {
	h    *handle
	path string

	mu        sync.Mutex
	f         *os.File
	last      map[string]time.Time // per log prefix: the newest line already in the file
	following map[string]bool      // by pod UID
	note      string               // the last pending message written
	wg        sync.WaitGroup
	ended     chan struct{} // closed when the attempt ended: no more retries
}

// follow makes sure the attempt's output is followed by this process.
func (e *Executor) follow(h *handle) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.attempts[h.Name] != nil {
		return nil
	}
	path := e.logPath(h.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create log folder: %w", err)
	}
	a := &attempt{h: h, path: path, last: map[string]time.Time{}, following: map[string]bool{}, ended: make(chan struct{})}
	// After a restart the file has what an earlier process copied: lines
	// up to then are not written twice.
	if b, err := os.ReadFile(path); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			ts, prefix, _, ok := parseLine(string(line))
			if ok && ts.After(a.last[prefix]) {
				a.last[prefix] = ts
			}
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open attempt log: %w", err)
	}
	a.f = f
	e.attempts[h.Name] = a
	if e.pods != nil {
		// Pods the informer saw before this attempt was followed.
		go func() {
			select {
			case <-e.synced:
			case <-e.stop:
				return
			}
			pods, _ := e.pods.Pods(h.Namespace).List(labelsFor(h.Name))
			for _, p := range pods {
				a.podChanged(e, p)
			}
		}()
	}
	return nil
}

// parseLine splits "TS [prefix] text".
func parseLine(line string) (time.Time, string, string, bool) {
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		return time.Time{}, "", "", false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !strings.HasPrefix(rest, "[") {
		return time.Time{}, "", "", false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return time.Time{}, "", "", false
	}
	return t, rest[:end+1], strings.TrimPrefix(rest[end+1:], " "), true
}

// write appends a line, unless a copy made before a restart has it.
func (a *attempt) write(ts time.Time, prefix, text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ts.After(a.last[prefix]) {
		return
	}
	a.last[prefix] = ts
	fmt.Fprintf(a.f, "%s %s %s\n", ts.UTC().Format(time.RFC3339Nano), prefix, text)
}

// note writes a line from Forge itself (pending reasons), once per change.
func (e *Executor) note(name, msg string) {
	e.mu.Lock()
	a := e.attempts[name]
	e.mu.Unlock()
	if a == nil {
		return
	}
	a.mu.Lock()
	same := a.note == msg
	a.note = msg
	a.mu.Unlock()
	if !same {
		a.write(time.Now(), "[forge]", "pending: "+msg)
	}
}

func (a *attempt) podChanged(e *Executor, p *corev1.Pod) {
	started := p.Spec.NodeName != "" && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed)
	if !started || mainState(p) == nil && p.Status.Phase != corev1.PodRunning {
		return // never ran: no log to read
	}
	a.mu.Lock()
	if a.following[string(p.UID)] {
		a.mu.Unlock()
		return
	}
	a.following[string(p.UID)] = true
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		e.followPod(a, p)
	}()
}

// followPod copies a pod's output to the attempt's log until the container
// ends. A broken stream is resumed from the last line copied.
func (e *Executor) followPod(a *attempt, p *corev1.Pod) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	prefix := "[" + p.Annotations[AnnoCompletion] + "]"
	if a.h.Procs > 1 {
		prefix = "" // the launcher prefixes each line with its rank
	}
	last := false // the attempt has ended: one more read, then stop
	for try := 0; try < 5 && ctx.Err() == nil; try++ {
		opts := &corev1.PodLogOptions{Container: MainContainer, Follow: true, Timestamps: true}
		a.mu.Lock()
		if t := a.last[prefix]; !t.IsZero() {
			opts.SinceTime = &metav1.Time{Time: t.Truncate(time.Second)}
		}
		a.mu.Unlock()
		rc, err := e.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts).Stream(ctx)
		if err == nil {
			err = copyLines(rc, func(ts time.Time, text string) {
				pre, rest := prefix, text
				if pre == "" {
					pre = "[?]"
					if strings.HasPrefix(text, "[") {
						if end := strings.IndexByte(text, ']'); end > 0 {
							pre, rest = text[:end+1], strings.TrimPrefix(text[end+1:], " ")
						}
					}
				}
				a.write(ts, pre, rest)
			})
			rc.Close()
			if err == nil {
				return // the container ended
			}
		}
		e.log.Debug("pod log stream broken", "pod", p.Name, "err", err)
		if last {
			return
		}
		select {
		case <-a.ended:
			// The stream may have broken before the container's output
			// could be read (a pod that ran for an instant): read it once
			// more rather than lose it.
			last = true
		case <-ctx.Done():
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		}
	}
}

func copyLines(r io.Reader, line func(time.Time, string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		ts, text, _ := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t, text = time.Now(), sc.Text()
		}
		line(t, text)
	}
	return sc.Err()
}

// drain waits, for a bounded time, for the followers of an ended attempt to
// copy the last lines, then stops following it.
func (e *Executor) drain(name string) {
	e.mu.Lock()
	a := e.attempts[name]
	delete(e.attempts, name)
	e.mu.Unlock()
	if a == nil {
		return
	}
	close(a.ended)
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.cfg.LogDrain):
		e.log.Warn("pod logs still streaming after the Job ended", "name", name)
	}
	a.mu.Lock()
	a.f.Sync()
	a.mu.Unlock()
	// Followers still running write to a closed file and stop mattering.
	go func() { a.wg.Wait(); a.f.Close() }()
}

// Logs implements forge.LogReader from the local copy of the pods' output.
func (e *Executor) Logs(ctx context.Context, fh forge.Handle, offset int64) (io.ReadCloser, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(e.logPath(h.Name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, forge.Errorf(forge.NotFound, "no log for this attempt on this server")
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
