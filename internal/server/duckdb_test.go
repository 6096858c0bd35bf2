package server_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/config"
)

// A user's query whose one chunk of work asks for about 20 GB (DuckDB's
// memory_limit does not reach inside a chunk) gets a 503 out of memory from
// its worker process; the server itself does not grow and answers the next
// query.
func TestHugeQueryChunkIsRefusedOutsideTheServer(t *testing.T) {
	base := inProcess(t, func(c *config.Server) { c.DuckDB.MemoryLimit = "600MiB" })
	// Writing 5 to clear_refs resets VmHWM to the current RSS.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	before := vmKB(t, "VmHWM")
	code, body := call(t, "POST", base+"/api/forge/v1/query",
		map[string]any{"sql": "SELECT max(length(repeat('x', 10000000) || i)) FROM range(3000) t(i)"})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "memory") {
		t.Errorf("huge chunk: %d %s, want 503 out of memory", code, body)
	}
	if grew := vmKB(t, "VmHWM") - before; grew > 300<<10 {
		t.Errorf("the server grew by %d KiB while the query ran", grew)
	}
	code, body = call(t, "POST", base+"/api/forge/v1/query", map[string]any{"sql": "SELECT 42 AS answer"})
	if code != http.StatusOK || !strings.Contains(string(body), "42") {
		t.Errorf("next query: %d %s, want 200 with 42", code, body)
	}
}

func vmKB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
