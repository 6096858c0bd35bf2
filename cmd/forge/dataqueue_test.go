package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestDataAddFromQueue(t *testing.T) {
	srv := dataServer(t, sqlstoretest.OpenSQLite(t))
	addr := queuetest.Kafka(t, 1, "clicks")
	p := queuetest.Producer(t, addr)
	var vals [][]byte
	for i := range 5 {
		vals = append(vals, fmt.Appendf(nil, `{"user":"u%d","ms":%d}`, i, i*10))
	}
	vals = append(vals, []byte("garbage"))
	queuetest.Produce(t, p, "clicks", []int32{0}, time.Time{}, vals...)
	src := "kafka://" + addr + "/clicks"

	out, _, err := dataCLI(srv, "data", "add", "clicks", src, "--until", "3")
	if err != nil || !strings.Contains(out, "added clicks@1: 4 rows") || !strings.Contains(out, "offsets: p0 0..3") {
		t.Fatalf("add until 3: %v\n%s", err, out)
	}
	out, _, err = dataCLI(srv, "data", "add", "clicks", "--continue", "-o", "json")
	var res api.IngestResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Version == nil || res.Version.Version != 2 ||
		res.Version.Rows != 1 || res.Queue.DeadLetters != 1 || res.Queue.Ranges[0].First != 4 || res.Queue.Ranges[0].Next != 6 {
		t.Fatalf("continue: %v\n%s", err, out)
	}
	out, _, err = dataCLI(srv, "data", "add", "clicks", "--continue")
	if err != nil || !strings.Contains(out, "no new messages") {
		t.Errorf("continue with nothing new: %v\n%s", err, out)
	}
	out, _, err = dataCLI(srv, "data", "show", "clicks@2")
	if err != nil || !strings.Contains(out, "p0 4..5") || !strings.Contains(out, "_offset") || !strings.Contains(out, src) {
		t.Errorf("show: %v\n%s", err, out)
	}
	out, _, err = dataCLI(srv, "data", "dead-letters", "clicks@2")
	if err != nil || !strings.Contains(out, `"offset":5`) || !strings.Contains(out, `"value":"garbage"`) {
		t.Errorf("dead-letters: %v\n%s", err, out)
	}
	out, _, err = dataCLI(srv, "data", "query", "SELECT count(*) AS n, count(DISTINCT _offset) AS d FROM (SELECT * FROM \"clicks@1\" UNION ALL SELECT * FROM \"clicks@2\")", "-o", "json")
	if err != nil || !strings.Contains(out, "5") {
		t.Errorf("union of versions: %v\n%s", err, out)
	}

	// Bad sources: an error naming the source, no version.
	_, _, err = dataCLI(srv, "data", "add", "other", "kafka://"+addr+"/nosuch")
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown topic: %v", err)
	}
	_, _, err = dataCLI(srv, "data", "add", "other", "--continue")
	if err == nil || !strings.Contains(err.Error(), "no version read from a queue") {
		t.Errorf("continue without a version: %v", err)
	}
	if _, _, err := dataCLI(srv, "data", "show", "other"); err == nil {
		t.Error("a failed ingest made a dataset")
	}

	// Follows: add, list, refuse a second and a secret, remove.
	out, _, err = dataCLI(srv, "data", "follow", "clicks", src, "--every", "10m")
	if err != nil || !strings.Contains(out, "following "+src+" into clicks, every 10m0s") {
		t.Fatalf("follow: %v\n%s", err, out)
	}
	if _, _, err := dataCLI(srv, "data", "follow", "clicks", src, "--every", "5rows"); err == nil || !strings.Contains(err.Error(), "already followed") {
		t.Errorf("second follow: %v", err)
	}
	if _, _, err := dataCLI(srv, "data", "follow", "x", "kafka://u:pw@"+addr+"/clicks", "--every", "5rows"); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("follow with a password: %v", err)
	}
	if _, _, err := dataCLI(srv, "data", "follow", "x", src, "--every", "soon"); err == nil || !strings.Contains(err.Error(), "--every") {
		t.Errorf("bad --every: %v", err)
	}
	out, _, err = dataCLI(srv, "data", "follows")
	if err != nil || !strings.Contains(out, "clicks") || !strings.Contains(out, "10m0s") || strings.Contains(out, "\nx ") {
		t.Errorf("follows: %v\n%s", err, out)
	}
	if out, _, err = dataCLI(srv, "data", "follows", "rm", "clicks"); err != nil || !strings.Contains(out, "stopped") {
		t.Errorf("follows rm: %v\n%s", err, out)
	}
	if _, _, err := dataCLI(srv, "data", "follows", "rm", "clicks"); err == nil || !strings.Contains(err.Error(), "not followed") {
		t.Errorf("follows rm twice: %v", err)
	}
}
