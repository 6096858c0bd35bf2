package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// fakeClock is a clock that moves when the test says.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// frames splits what a progress line drew into its redraws.
func frames(s string) []string {
	var out []string
	for _, f := range strings.Split(s, "\r") {
		if f = strings.TrimSuffix(strings.TrimSpace(f), "\x1b[K"); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func TestBar(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var screen bytes.Buffer
	c := &cli{now: clock.now, progress: &screen}
	const total = 10 << 20
	b := c.newBar("uploading sales", total)
	chunk := make([]byte, 64<<10)
	r := b.reader(io.LimitReader(zeros{}, total))
	if r.Size() != total {
		t.Errorf("Size = %d, want %d", r.Size(), total)
	}
	n := 0
	for {
		if _, err := r.Read(chunk); err == io.EOF {
			break
		}
		n++
		if n%10 == 0 {
			clock.advance(redrawEvery) // 10 chunks (640 KiB) per 100ms
		}
	}
	b.close()
	got := frames(screen.String())
	// Drawn at 0, about every 100ms, and at the end; not on every read.
	if len(got) < 10 || len(got) > n/5 {
		t.Fatalf("%d reads drew %d frames:\n%s", n, len(got), strings.Join(got, "\n"))
	}
	if !strings.HasPrefix(got[0], "uploading sales  [>") || !strings.Contains(got[0], "  0%  0 B / 10.0 MiB") {
		t.Errorf("first frame %q", got[0])
	}
	last := got[len(got)-1]
	if !regexp.MustCompile(`^uploading sales  \[={20}\]  100%  10\.0 MiB / 10\.0 MiB  6\.\d MiB/s$`).MatchString(last) {
		t.Errorf("last frame %q", last)
	}
	// On an 80-column terminal every frame fits, and the bar keeps its width.
	for _, f := range got {
		if len(f) > 80 || !strings.HasPrefix(f, "uploading sales  [") || strings.Index(f, "]") != len("uploading sales  [")+20 {
			t.Errorf("frame %q", f)
		}
	}
	if !strings.HasSuffix(screen.String(), "\n") || strings.Count(screen.String(), "\n") != 1 {
		t.Errorf("the bar does not end its line once: %q", screen.String()[max(0, screen.Len()-80):])
	}
	// The percent only grows.
	pct := regexp.MustCompile(` (\d+)%`)
	prev := -1
	for _, f := range got {
		var p int
		if m := pct.FindStringSubmatch(f); m != nil {
			p = atoi(m[1])
		}
		if p < prev {
			t.Errorf("percent went back: %s", f)
		}
		prev = p
	}
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestBarUnknownTotalAndPhase(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var screen lockedWriter
	c := &cli{now: clock.now, progress: &screen}
	b := c.newBar("downloading m@1", -1)
	b.then = "the server is checking"
	b.set(0, 3000)
	clock.advance(time.Second)
	b.set(1500, 3000)
	b.set(3000, 3000) // done: the bar ends, the phase starts
	clock.advance(2 * time.Second)
	b.close()
	out := screen.String()
	fr := frames(out)
	if len(fr) < 4 || fr[len(fr)-3] != "downloading m@1  [===========>          ]   50%  1.5 KiB / 2.9 KiB  1.5 KiB/s" ||
		fr[len(fr)-2] != "downloading m@1  [======================]  100%  2.9 KiB / 2.9 KiB  2.9 KiB/s" {
		t.Fatalf("frames:\n%s", strings.Join(fr, "\n"))
	}
	// The phase drew its label and was cleared at the end.
	if !strings.Contains(out, "\nthe server is checking ") && !strings.Contains(out, "\n\rthe server is checking ") {
		t.Errorf("no phase line after the bar: %q", out)
	}
	if !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("the phase line is not cleared: %q", out)
	}
	if got := (&bar{label: "x", total: -1, width: 80, now: clock.now, start: clock.now()}).line(); got != "x  0 B" {
		t.Errorf("unknown total at 0: %q", got)
	}
	p := &phase{label: "converting sales.csv (318.0 MiB) to Parquet", now: clock.now, start: clock.now()}
	clock.advance(19*time.Second + 500*time.Millisecond)
	if got := p.line(2); got != "converting sales.csv (318.0 MiB) to Parquet - 19s" {
		t.Errorf("phase line %q", got)
	}
}

// TestQuietWhenPiped: with stderr a file or a pipe nothing of the
// progress is written, not even by a command that draws it on a terminal.
func TestQuietWhenPiped(t *testing.T) {
	cleanEnv(t)
	t.Setenv("TERM", "xterm")
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if c := newCLI(io.Discard, f); c.progress != nil {
		t.Error("progress is drawn on a file")
	}
	if c := newCLI(io.Discard, &bytes.Buffer{}); c.progress != nil {
		t.Error("progress is drawn on a buffer")
	}
	srv := forgeServer(t)
	csv := writeData(t, t.TempDir(), "sales.csv", "id,amount\n1,2.5\n2,3.5\n")
	c := newCLI(io.Discard, f)
	if err := c.run(context.Background(), []string{"data", "add", "sales", csv, "--server", srv}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	if bytes.ContainsAny(b, "\r\x1b") || bytes.Contains(b, []byte("%")) || !bytes.Contains(b, []byte("uploaded in")) {
		t.Errorf("stderr to a file:\n%q", b)
	}
}

// TestProgressOnTerminal: on a pseudo-terminal forge data add draws the
// conversion and the upload to its last byte, and forge data get and
// forge model register and download their bytes; stdout stays clean.
func TestProgressOnTerminal(t *testing.T) {
	cleanEnv(t)
	t.Setenv("TERM", "xterm")
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120})
	var screen lockedWriter
	copied := make(chan struct{})
	go func() { io.Copy(&screen, ptmx); close(copied) }()

	var out bytes.Buffer
	c := newCLI(&out, tty)
	if c.progress == nil {
		t.Fatal("no progress on a terminal")
	}
	srv := forgeServer(t) // datasets and registry both
	dir := t.TempDir()
	var rows strings.Builder
	rows.WriteString("id,name,amount\n")
	for i := range 50000 {
		rows.WriteString(strings.Repeat("x", i%7) + "1," + "customer-" + string(rune('a'+i%26)) + ",2.5\n")
	}
	csv := writeData(t, dir, "sales.csv", rows.String())
	ctx := context.Background()
	if err := c.run(ctx, []string{"data", "add", "sales", csv, "--server", srv}); err != nil {
		t.Fatal(err)
	}
	if err := c.run(ctx, []string{"data", "get", "sales", "--out", filepath.Join(dir, "back.parquet"), "--server", srv}); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(modelFixtures, "mlp.onnx")
	if err := c.run(ctx, []string{"model", "register", "mlp", "--file", model, "--server", srv}); err != nil {
		t.Fatal(err)
	}
	if err := c.run(ctx, []string{"model", "download", "mlp@1", "--out", filepath.Join(dir, "m"), "--server", srv}); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	<-copied
	drawn := screen.String()
	info, _ := os.Stat(model)
	pq, _ := os.Stat(filepath.Join(dir, "back.parquet"))
	for _, want := range []string{
		"converting " + csv + " (",
		"uploading sales (50000 rows)  [",
		"100%  " + humanBytes(pq.Size()) + " / " + humanBytes(pq.Size()),
		"downloading sales@1  [",
		"uploading the files of mlp  [",
		"100%  " + humanBytes(info.Size()) + " / " + humanBytes(info.Size()),
		"downloading mlp@1  [",
	} {
		if !strings.Contains(drawn, want) {
			t.Errorf("the terminal shows no %q:\n%q", want, drawn)
		}
	}
	if strings.ContainsAny(out.String(), "\r\x1b") || strings.Contains(out.String(), "%") {
		t.Errorf("progress on stdout: %q", out.String())
	}
}

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"uploading sales", 20, "uploading sales"},
		{"converting /data/very/long/path.csv", 20, "converting /data/..."},
		{"déjà vu, encore déjà vu", 10, "déjà vu..."},
		{"abcdef", 2, "ab"},
	} {
		if got := fit(tc.s, tc.n); got != tc.want {
			t.Errorf("fit(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
