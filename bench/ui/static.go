package main

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

// scrollStats is one scroll of a table from top to bottom in 3 s.
type scrollStats struct {
	Frames  float64 `json:"frames"`
	Seconds float64 `json:"seconds"`
	LongMax float64 `json:"long_max"`
	LongN   int     `json:"long_n"`
}

func (s scrollStats) fps() float64 { return s.Frames / s.Seconds }

func (s scrollStats) String() string {
	return fmt.Sprintf("%.0f fps, %d long tasks (max %.0f ms)", s.fps(), s.LongN, s.LongMax)
}

// scroll moves the element with that id from top to bottom in 3 s, one
// step per animation frame, counting frames and long tasks.
func (b *browser) scroll(id string) (scrollStats, error) {
	var s scrollStats
	if b.trace {
		b.trace = false
		defer func() { b.trace = true }()
		err := b.traced(os.Stderr, "scrolling #"+id, func() error { var err error; s, err = b.scroll(id); return err })
		return s, err
	}
	err := b.eval(`(async () => {
		window.__long = [];
		const vt = document.getElementById('`+id+`');
		const max = vt.scrollHeight - vt.clientHeight;
		let frames = 0;
		const t0 = performance.now();
		await new Promise(resolve => {
			const step = () => {
				frames++;
				const f = Math.min(1, (performance.now() - t0) / 3000);
				vt.scrollTop = f * max;
				if (f < 1) requestAnimationFrame(step); else resolve();
			};
			requestAnimationFrame(step);
		});
		await new Promise(r => setTimeout(r, 100));
		return { frames, seconds: (performance.now() - t0) / 1000, long_max: Math.max(0, ...window.__long), long_n: window.__long.length };
	})()`, &s)
	if err != nil {
		return s, fmt.Errorf("scroll: %w", err)
	}
	return s, nil
}

// ceilingPage is what the runs table is measured against: a static page
// with as tall a scroller, but only the rows and default columns a screen
// shows, pinned in place (position: sticky), no script. A scroll step
// costs the browser a frame and nothing else: its fps is the most this
// machine draws now. (A plain page holding all 10,000 rows is no ceiling:
// Chromium repaints its whole table on every step, 4-7 fps here.)
func ceilingPage(o options) []byte {
	var b strings.Builder
	b.WriteString(`<!doctype html><meta charset="utf-8"><title>scroll ceiling</title><style>
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; }
#static { height: calc(100vh - 230px); overflow: auto; border: 1px solid #ddd; margin: 150px 20px 0; }
.pin { position: sticky; top: 0; }
.r { display: flex; height: 28px; line-height: 28px; border-bottom: 1px solid #ddd; }
.r > span { flex: 0 0 110px; padding: 0 10px; overflow: hidden; white-space: nowrap; }
</style><div id="static">`)
	fmt.Fprintf(&b, `<div style="height: %dpx"><div class="pin">`, 28*o.runs)
	cols := 4 + min(6, o.metrics) + min(4, o.params)
	for i := 0; i < min(o.runs, 40); i++ {
		fmt.Fprintf(&b, `<div class="r"><span><input type=checkbox></span><span><a href="#">%s</a></span>`, html.EscapeString(fmt.Sprintf("run-%05d", i)))
		for c := 1; c < cols; c++ {
			fmt.Fprintf(&b, "<span>%.3f</span>", float64((i*31+c*17)%1000)/1000)
		}
		b.WriteString("</div>")
	}
	b.WriteString("</div></div></div>")
	return []byte(b.String())
}

// serveStatic serves the ceiling page on a loopback port until ctx ends.
func serveStatic(ctx context.Context, o options) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	page := ceilingPage(o)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})}
	go srv.Serve(l)
	go func() { <-ctx.Done(); srv.Close() }()
	return "http://" + l.Addr().String() + "/", nil
}

// staticScenario scrolls the static table and prints the runs table's fps
// as a share of it.
func staticScenario(w io.Writer, b *browser, url string, runs scrollStats, round int) error {
	if err := b.navigate(url); err != nil {
		return err
	}
	// Laid out once, before the scroll is timed.
	if err := b.eval(`new Promise(r => { document.getElementById('static').offsetHeight; setTimeout(() => requestAnimationFrame(() => r(true)), 500); })`, nil); err != nil {
		return err
	}
	s, err := b.scroll("static")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "ceiling: static rows in view, pinned: scroll\t%d\t%s\t\t\n", round, s)
	if runs.Frames > 0 {
		fmt.Fprintf(w, "runs page scroll / ceiling\t%d\t%.0f%% of its fps\t100%%\t\n", round, 100*runs.fps()/s.fps())
	}
	return nil
}
