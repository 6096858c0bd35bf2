package jobs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// TestLogsAttemptOutOfRange: an attempt that is not a number, negative, or
// past the job's attempts is refused before the 200 goes out, with a status
// and a message that say so, instead of an empty 200.
func TestLogsAttemptOutOfRange(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		mux := http.NewServeMux()
		httpapi.Mount(mux, e.svc.Routes(slog.New(slog.DiscardHandler)))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		j := e.submit(t, Spec{Command: sh(`echo attempt-log`)})
		e.final(t, j.ID)

		for q, want := range map[string]struct {
			code int
			msg  string
		}{
			"attempt=1":                    {200, "attempt-log"},
			"":                             {200, "attempt-log"},
			"attempt=-1":                   {400, "attempt"},
			"attempt=-9223372036854775808": {400, "attempt"},
			"attempt=abc":                  {400, "attempt"},
			"attempt=99999999999999999999": {400, "attempt"},
			"attempt=2":                    {404, "no attempt 2"},
			"attempt=2147483647":           {404, "no attempt 2147483647"},
			"attempt=-1&follow=true":       {400, "attempt"},
			"attempt=5&follow=true":        {404, "no attempt 5"},
		} {
			resp, err := http.Get(srv.URL + "/api/forge/v1/jobs/" + j.ID + "/logs?" + q)
			if err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want.code || !strings.Contains(string(b), want.msg) {
				t.Errorf("%s: %d %q, want %d containing %q", q, resp.StatusCode, b, want.code, want.msg)
			}
		}
	})
}

// A job's page shows its processes: GET /jobs/{id} lists each process of
// the latest attempt with its rank, node, PID and exit, as the local
// executor recorded them (here rank 1 failed, and forge stopped rank 0).
func TestJobProcesses(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		mux := http.NewServeMux()
		httpapi.Mount(mux, e.svc.Routes(slog.New(slog.DiscardHandler)))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		j := e.submit(t, Spec{Command: sh(`if [ "$RANK" = 1 ]; then sleep 0.3; exit 2; fi; exec sleep 30`), Nodes: 2})
		e.final(t, j.ID)
		resp, err := http.Get(srv.URL + "/api/forge/v1/jobs/" + j.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			State     string    `json:"state"`
			Processes []Process `json:"processes"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, err)
		}
		if got.State != "failed" || len(got.Processes) != 2 {
			t.Fatalf("job %+v, want failed with 2 processes", got)
		}
		p0, p1 := got.Processes[0], got.Processes[1]
		if p1.Rank != 1 || p1.Node != "1" || p1.PID <= 0 || p1.State != "exited" || p1.Code == nil || *p1.Code != 2 {
			t.Errorf("rank 1: %+v, want node 1, a PID, exit 2", p1)
		}
		if p0.Rank != 0 || p0.Node != "0" || p0.PID <= 0 || p0.State != "exited" || p0.Signal == 0 && (p0.Code == nil || *p0.Code == 0) {
			t.Errorf("rank 0: %+v, want node 0, a PID, stopped", p0)
		}
		// A job not started yet has none.
		if ps, err := e.svc.Processes(context.Background(), Job{ID: "queued", State: Queued}); err != nil || ps != nil {
			t.Errorf("queued job: %v %v", ps, err)
		}
	})
}
