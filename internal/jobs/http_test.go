package jobs

import (
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
