package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// Progress of long work, drawn on one line of the terminal: a bar for bytes
// that move (uploads, downloads), a phase line with the time taken so far
// for work of unknown size (a conversion, the server storing an upload).
// It is drawn on c.progress only, which is nil unless stderr is a
// terminal, so nothing of it reaches a pipe or a file.

// redrawEvery bounds how often a line is redrawn.
const redrawEvery = 100 * time.Millisecond

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// termWidth is w's width in columns, 80 if it does not say.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			return cols
		}
	}
	return 80
}

// bar counts the bytes of a transfer and draws them against the total.
// Its methods may be called from several goroutines.
type bar struct {
	w     io.Writer // nil: count only
	now   func() time.Time
	label string
	width int
	// then, when set, is the phase shown once every byte has moved (the
	// server still has work to do before it answers).
	then string

	mu        sync.Mutex
	total     int64 // < 0: unknown
	done      int64
	start     time.Time
	drawnAt   time.Time
	finished  bool
	afterward *phase
}

// newBar starts a bar for total bytes (< 0: unknown) and draws it at 0.
func (c *cli) newBar(label string, total int64) *bar {
	b := &bar{w: c.progress, now: c.now, label: label, total: total, start: c.now()}
	if b.w != nil {
		b.width = termWidth(b.w)
		b.mu.Lock()
		b.draw()
		b.mu.Unlock()
	}
	return b
}

// add counts n more bytes.
func (b *bar) add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.redraw()
}

// set is add for callers that count themselves (api.Progress).
func (b *bar) set(done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done, b.total = done, total
	b.redraw()
}

func (b *bar) redraw() {
	if b.w == nil || b.finished {
		return
	}
	if b.total >= 0 && b.done >= b.total {
		b.finishLocked()
		return
	}
	if b.now().Sub(b.drawnAt) >= redrawEvery {
		b.draw()
	}
}

// finish draws the bar a last time and ends its line; then the next phase
// starts, if there is one. It is called by itself when the total is
// reached.
func (b *bar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

func (b *bar) finishLocked() {
	if b.finished || b.w == nil {
		b.finished = true
		return
	}
	b.finished = true
	b.draw()
	fmt.Fprintln(b.w)
	if b.then != "" {
		b.afterward = startPhase(b.w, b.now, b.then)
	}
}

// close ends the bar, and the phase after it: call it when the work is over,
// whether it succeeded or not.
func (b *bar) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.afterward != nil {
		b.afterward.stop()
		b.afterward = nil
		return
	}
	if !b.finished {
		b.finished = true
		if b.w != nil {
			fmt.Fprintln(b.w)
		}
	}
}

func (b *bar) draw() {
	b.drawnAt = b.now()
	fmt.Fprint(b.w, "\r"+b.line()+"\x1b[K")
}

// line is the bar as drawn: label, bar, percent, bytes and rate; or the
// label, bytes and rate when the total is not known.
func (b *bar) line() string {
	elapsed := b.now().Sub(b.start)
	rate := ""
	if elapsed >= time.Second/2 {
		rate = "  " + humanBytes(int64(float64(b.done)/elapsed.Seconds())) + "/s"
	}
	if b.total < 0 {
		return fit(b.label, b.width-len(humanBytes(b.done)+rate)-2) + "  " + humanBytes(b.done) + rate
	}
	frac := 1.0
	if b.total > 0 {
		frac = min(1, float64(b.done)/float64(b.total))
	}
	nums := fmt.Sprintf("  %3d%%  %s / %s%s", int(frac*100), humanBytes(b.done), humanBytes(b.total), rate)
	// The bar keeps its width as the numbers change: it leaves room for
	// the widest they get, and at least 10 cells for itself.
	widest := len(fmt.Sprintf("  100%%  %s / %s  1023.9 MiB/s", humanBytes(b.total), humanBytes(b.total)))
	label := fit(b.label, max(20, b.width-widest-14))
	cells := min(30, b.width-utf8.RuneCountInString(label)-widest-4)
	if cells < 10 {
		return label + nums
	}
	full := int(frac * float64(cells))
	body := strings.Repeat("=", full)
	if full < cells {
		body += ">" + strings.Repeat(" ", cells-full-1)
	}
	return label + "  [" + body + "]" + nums
}

// fit cuts s to n characters, ending in "...".
func fit(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 4 {
		return string(r[:max(0, n)])
	}
	return string(r[:n-3]) + "..."
}

// reader counts what is read from r on the bar. It tells its length (Size)
// when the bar has a total, so an upload can send its Content-Length.
func (b *bar) reader(r io.Reader) *barReader { return &barReader{r: r, b: b} }

type barReader struct {
	r io.Reader
	b *bar
}

func (r *barReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.add(int64(n))
	if err == io.EOF {
		r.b.finish()
	}
	return n, err
}

// Size is the total the bar counts to (api uploads send it as Content-Length).
func (r *barReader) Size() int64 { return r.b.total }

// writer counts what is written to w on the bar.
func (b *bar) writer(w io.Writer) io.Writer { return barWriter{w, b} }

type barWriter struct {
	w io.Writer
	b *bar
}

func (w barWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.b.add(int64(n))
	return n, err
}

// phase is a line saying what is being done and for how long so far,
// redrawn until stop, which clears it.
type phase struct {
	w     io.Writer
	now   func() time.Time
	label string // fitted to the terminal: a wrapped line cannot be redrawn
	start time.Time
	quit  chan struct{}
	done  chan struct{}
}

var spinner = []string{"|", "/", "-", `\`}

// phase starts a phase line; stop it when the work is over.
func (c *cli) phase(label string) *phase { return startPhase(c.progress, c.now, label) }

func startPhase(w io.Writer, now func() time.Time, label string) *phase {
	p := &phase{w: w, now: now, label: label, start: now(), quit: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	p.label = fit(label, termWidth(w)-10)
	p.draw(0)
	go func() {
		defer close(p.done)
		t := time.NewTicker(redrawEvery)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-p.quit:
				fmt.Fprint(p.w, "\r\x1b[K")
				return
			case <-t.C:
				p.draw(i)
			}
		}
	}()
	return p
}

func (p *phase) draw(tick int) {
	fmt.Fprint(p.w, "\r"+p.line(tick)+"\x1b[K")
}

// line is the phase as drawn at the tick'th redraw.
func (p *phase) line(tick int) string {
	return fmt.Sprintf("%s %s %s", p.label, spinner[tick%len(spinner)], p.now().Sub(p.start).Truncate(time.Second))
}

// stop clears the line; it may be called more than once.
func (p *phase) stop() {
	select {
	case <-p.quit:
	default:
		if p.w != nil {
			close(p.quit)
		}
	}
	<-p.done
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
