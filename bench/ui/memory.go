package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/chromedp/cdproto/memory"
	"github.com/chromedp/chromedp"
)

// The tab's memory. RSS counts every page the process has mapped and
// touched, Chromium's own code (a shared library of a few hundred MB,
// mapped by every Chromium process) included, and so says little about a
// page. Chrome's task manager and its "memory footprint" count private
// memory: what the process alone holds and would give back if it ended.
// That is the measure here: the renderer's private (unique) set, Private_Clean
// + Private_Dirty of /proc/PID/smaps_rollup (USS), with its PSS and RSS
// beside it. Headless Chromium without a GPU draws in software: the tiles
// and canvases the compositor rasterises live in shared memory with the GPU
// process (counted in the renderer's PSS, not its USS), so that process's
// private set is printed too.

// procMem is one process's memory in MB.
type procMem struct {
	pid                   int
	kind                  string // renderer, gpu-process, ...
	rss, pss, uss, shared float64
}

// chromiumMem reads the memory of Chromium's processes of one kind
// (--type=renderer, --type=gpu-process).
func chromiumMem(kind string) []procMem {
	var out []procMem
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if !bytes.Contains(cmd, []byte("--type="+kind)) {
			continue
		}
		roll, err := os.ReadFile("/proc/" + d.Name() + "/smaps_rollup")
		if err != nil {
			continue
		}
		m := procMem{pid: pid, kind: kind}
		for _, line := range strings.Split(string(roll), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "Rss:":
				m.rss += kb / 1000
			case "Pss:":
				m.pss += kb / 1000
			case "Private_Clean:", "Private_Dirty:":
				m.uss += kb / 1000
			case "Shared_Clean:", "Shared_Dirty:":
				m.shared += kb / 1000
			}
		}
		out = append(out, m)
	}
	return out
}

// tabMemory describes the tab's memory: the JS heap, the DOM, and the
// renderer that holds the page (the one with the largest private set:
// headless Chromium keeps a spare renderer or two of a few MB).
func (b *browser) tabMemory() (string, error) {
	heap, heapTotal, err := b.heapMB()
	if err != nil {
		return "", err
	}
	var docs, nodes, listeners int64
	if err := chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		docs, nodes, listeners, err = memory.GetDOMCounters().Do(ctx)
		return err
	})); err != nil {
		return "", err
	}
	rs := chromiumMem("renderer")
	var tab procMem
	var others float64
	for _, r := range rs {
		if r.uss > tab.uss {
			others += tab.uss
			tab = r
		} else {
			others += r.uss
		}
	}
	var gpu float64
	for _, g := range chromiumMem("gpu-process") {
		gpu += g.uss
	}
	return fmt.Sprintf("renderer private %.0f MB (PSS %.0f, RSS %.0f of which shared %.0f); JS heap %.0f MB (%.0f committed), %d DOM nodes, %d listeners, %d documents; %d other renderers %.0f MB, GPU process private %.0f MB",
		tab.uss, tab.pss, tab.rss, tab.shared, heap, heapTotal, nodes, listeners, docs, len(rs)-1, others, gpu), nil
}
