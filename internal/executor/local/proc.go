package local

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// statFields returns the fields of /proc/PID/stat after the command name
// (field 3, the state, is index 0).
func statFields(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(string(b[i+1:])), true
}

// startTime returns the process's start time in clock ticks since boot,
// which together with the pid names a process uniquely (pids are reused).
func startTime(pid int) (uint64, bool) {
	f, ok := statFields(pid)
	if !ok || len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// alive reports whether the process pid, started at start, still runs
// (a zombie has ended: only its exit status is left to collect).
func alive(pid int, start uint64) bool {
	f, ok := statFields(pid)
	if !ok || len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return false
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v == start
}

const clockTicks = 100 // USER_HZ: 100 on every Linux that Go supports

// groupUsage sums CPU time and resident memory over every process whose
// process group is one of pgids.
func groupUsage(pgids map[int]bool) (cpuSeconds float64, rssBytes int64) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	page := int64(os.Getpagesize())
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, ok := statFields(pid)
		if !ok || len(f) < 22 {
			continue
		}
		pgid, _ := strconv.Atoi(f[2])
		if !pgids[pgid] {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		rss, _ := strconv.ParseInt(f[21], 10, 64)
		cpuSeconds += (ut + st) / clockTicks
		rssBytes += rss * page
	}
	return cpuSeconds, rssBytes
}

// memTotal reads MemTotal from /proc/meminfo.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// DetectGPUs lists the GPU indices nvidia-smi reports, or none when there
// is no nvidia-smi (or it fails: a machine without a working driver has no
// usable GPU either).
func DetectGPUs(ctx context.Context) []int {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--query-gpu=index,memory.total", "--format=csv,noheader").Output()
	if err != nil {
		return nil
	}
	return parseGPUs(string(out))
}

func parseGPUs(out string) []int {
	var idx []int
	for _, line := range strings.Split(out, "\n") {
		first, _, _ := strings.Cut(line, ",")
		if n, err := strconv.Atoi(strings.TrimSpace(first)); err == nil {
			idx = append(idx, n)
		}
	}
	return idx
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func exitPath(dir string, rank int) string {
	return filepath.Join(dir, "exit."+strconv.Itoa(rank))
}
