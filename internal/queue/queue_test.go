package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in, which string
		want      Position
	}{
		{"", "from", Position{Kind: Earliest}},
		{"", "until", Position{Kind: Now}},
		{"latest", "from", Position{Kind: Latest}},
		{"120", "from", Position{Kind: Offset, Offset: 120}},
		{"0:12,3:4", "until", Position{Kind: Offset, Offsets: map[int32]int64{0: 12, 3: 4}}},
		{"2026-12-03T14:00:00Z", "from", Position{Kind: Time, Time: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)}},
		{"2026-12-03", "until", Position{Kind: Time, Time: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}},
	} {
		got, err := ParsePosition(tc.in, tc.which)
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("ParsePosition(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"-1", "soon", "0:x", "1:-2"} {
		if _, err := ParsePosition(bad, "from"); err == nil || !strings.Contains(err.Error(), "--from") {
			t.Errorf("ParsePosition(%q): %v, want an error naming --from", bad, err)
		}
	}
}

func TestURL(t *testing.T) {
	e, err := ParseURL("kafka://alice:pw@b1:9092,b2:9092/clicks?sasl=scram-sha-256")
	if err != nil {
		t.Fatal(err)
	}
	if e.Password != "pw" || len(e.Hosts) != 2 || e.Name != "clicks" || e.String() != "kafka://alice@b1:9092,b2:9092/clicks?sasl=scram-sha-256" {
		t.Errorf("parsed %+v, recorded as %s", e, e)
	}
	e, err = ParseURL("nats://h:4222/EV?token=abc")
	if err != nil || e.String() != "nats://h:4222/EV" || !e.HasSecret() {
		t.Errorf("nats with token: %+v %s %v", e, e, err)
	}
	for _, bad := range []string{"kafka://b1:9092", "nats:///EV", "kafka://:pw@/x/y"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		}
	}
	if got := Redact("kafka://u:secret@h/t?token=zz&x=1"); strings.Contains(got, "secret") || strings.Contains(got, "zz") {
		t.Errorf("Redact left a secret: %s", got)
	}
}

func TestWriter(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(filepath.Join(dir, "rows.jsonl"), filepath.Join(dir, "dead.jsonl"), map[string]string{"n": "BIGINT"})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for i, v := range []string{`{"n":1,"s":"a"}`, `{}`, `not json`, `[1]`, `{"n":"x"}`, `{"_offset":3}`, ` {"n": 2} `} {
		if err := w.Write(Message{Key: []byte("k\""), Value: []byte(v), Partition: 1, Offset: int64(i), Time: ts}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rows, _ := os.ReadFile(filepath.Join(dir, "rows.jsonl"))
	want := `{"_key":"k\"","_partition":1,"_offset":0,"_timestamp":"2026-01-02 03:04:05.000006","n":1,"s":"a"}
{"_key":"k\"","_partition":1,"_offset":1,"_timestamp":"2026-01-02 03:04:05.000006"}
{"_key":"k\"","_partition":1,"_offset":6,"_timestamp":"2026-01-02 03:04:05.000006","n": 2}
`
	if d := cmp.Diff(want, string(rows)); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	dead, _ := os.ReadFile(filepath.Join(dir, "dead.jsonl"))
	if w.Rows != 3 || w.DeadLetters != 4 || strings.Count(string(dead), "\n") != 4 ||
		!strings.Contains(string(dead), `"offset":4,`) || !strings.Contains(string(dead), `field n: \"x\" is not BIGINT`) {
		t.Errorf("%d rows, %d dead letters:\n%s", w.Rows, w.DeadLetters, dead)
	}
}
