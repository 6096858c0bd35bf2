package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

// A follow across kill -9 of the server: the versions it cut hold, between
// them, every message published exactly once. A version and its offsets
// commit in one transaction, so a kill during an ingest loses only the
// ingest, which the restarted server does again from the same offsets.
func TestFollowSurvivesKill9(t *testing.T) {
	kafka := queuetest.Kafka(t, 2, "ev")
	prod := queuetest.Producer(t, kafka)
	dir := t.TempDir()
	addr := freeAddr(t)
	p, _ := startForgeAt(t, addr, "--data-dir", dir)
	mustCall(t, "POST", p.url+"/api/forge/v1/dataset-follows", map[string]string{
		"name": "ev", "source": "kafka://" + kafka + "/ev", "every": "1s"}, nil)

	next := 0
	publish := func(n int) {
		for end := next + n; next < end; {
			var recs []*kgo.Record
			for ; next < end && len(recs) < 500; next++ {
				recs = append(recs, &kgo.Record{Topic: "ev", Partition: int32(next % 2), Value: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, next, strings.Repeat("x", 150))})
			}
			if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	versions := func() int {
		status, b := call(t, "GET", p.url+"/api/forge/v1/datasets/ev/versions", nil)
		if status != http.StatusOK {
			return 0
		}
		var out struct{ Versions []struct{ Version int } }
		json.Unmarshal(b, &out)
		return len(out.Versions)
	}
	for kill := range 3 {
		before := versions()
		publish(1000)
		for deadline := time.Now().Add(time.Minute); versions() <= before; {
			if time.Now().After(deadline) {
				t.Fatalf("no new version after %d; server log:\n%s", before, p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// More messages, and a kill at some moment of the follower's next
		// second: before, during or after it reads them.
		publish(5000)
		time.Sleep(time.Duration(200+kill*300) * time.Millisecond)
		p.kill()
		p, _ = startForgeAt(t, addr, "--data-dir", dir)
	}
	publish(1000)
	total := next

	// Wait for the follower to catch up with every message, then check
	// that the versions' union is exactly what was published.
	var got string
	for deadline := time.Now().Add(3 * time.Minute); ; {
		got = unionStats(t, p.url)
		if strings.HasPrefix(got, fmt.Sprintf("[%d,", total)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := fmt.Sprintf("[%d,%d,0,%d]", total, total, total-1); got != want {
		t.Fatalf("union of the versions (rows, distinct n, min, max) = %s, want %s; log:\n%s", got, want, p.stderr)
	}
}

// unionStats returns [rows, distinct n, min n, max n] over every version of ev.
func unionStats(t *testing.T, base string) string {
	t.Helper()
	status, b := call(t, "GET", base+"/api/forge/v1/datasets/ev/versions", nil)
	if status != http.StatusOK {
		t.Fatalf("versions: %d %s", status, b)
	}
	var out struct{ Versions []struct{ Version int } }
	json.Unmarshal(b, &out)
	var parts []string
	for _, v := range out.Versions {
		parts = append(parts, fmt.Sprintf(`SELECT n FROM "ev@%d"`, v.Version))
	}
	sql := "SELECT count(*), count(DISTINCT n), min(n), max(n) FROM (" + strings.Join(parts, " UNION ALL ") + ")"
	status, b = call(t, "POST", base+"/api/forge/v1/query", map[string]any{"sql": sql})
	if status != http.StatusOK {
		t.Fatalf("query %s: %d %s", sql, status, b)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "[") {
			return strings.ReplaceAll(line, " ", "")
		}
	}
	t.Fatalf("query answered no row: %s", b)
	return ""
}
