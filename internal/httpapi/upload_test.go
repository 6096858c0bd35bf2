package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// uploadServer serves PUT /up (an upload) and PUT /api (an API route), each
// reading its whole body, behind the edge with a 1 s idle deadline for
// uploads and an http.Server whose fixed read and write timeouts are 1 s.
// Every error a handler meets is sent on the channel.
func uploadServer(t *testing.T) (addr string, errs <-chan error, logs *syncBuffer, reg *prometheus.Registry) {
	t.Helper()
	logs = &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ch := make(chan error, 10)
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			ch <- err
			httpapi.WriteError(w, r, log, fmt.Errorf("receive upload: %w", err))
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]int64{"bytes": n})
	})
	mux := http.NewServeMux()
	edge := httpapi.Edge{MaxBody: 1 << 20, MaxUpload: 1 << 20, UploadIdle: time.Second, WriteTimeout: time.Second, Log: log}
	edge.Mount(mux, []httpapi.Route{
		{Pattern: "PUT /up", Handler: read, Access: httpapi.Write, Body: httpapi.BodyUpload},
		{Pattern: "PUT /api", Handler: read, Access: httpapi.Write},
	})
	reg = prometheus.NewRegistry()
	m := httpapi.NewMetrics(reg)
	srv := &http.Server{Handler: httpapi.Chain(mux, httpapi.AccessLog(log), m.Wrap),
		ReadTimeout: time.Second, WriteTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), ch, logs, reg
}

// trickle sends n chunks of 100 bytes, one every 100ms, then closes w.
func trickle(w *io.PipeWriter, n int) {
	chunk := bytes.Repeat([]byte("x"), 100)
	for range n {
		time.Sleep(100 * time.Millisecond)
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	w.Close()
}

// An upload that keeps sending for three times the server's fixed read
// timeout succeeds; the same body to an API route is cut by that timeout.
func TestUploadTricklesPastReadTimeout(t *testing.T) {
	addr, errs, _, _ := uploadServer(t)
	put := func(path string) (*http.Response, error) {
		pr, pw := io.Pipe()
		go trickle(pw, 30)
		req, _ := http.NewRequest("PUT", "http://"+addr+path, pr)
		return http.DefaultClient.Do(req)
	}
	resp, err := put("/up")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"bytes":3000`) {
		t.Fatalf("slow upload: %d %s, want 200 with 3000 bytes", resp.StatusCode, body)
	}

	if resp, err := put("/api"); err == nil {
		resp.Body.Close()
	}
	if err := <-errs; !strings.Contains(err.Error(), "timeout") {
		t.Errorf("API route: the handler got %v, want the server's read timeout", err)
	}
}

// An upload that stops sending is cut once it has been idle for the idle
// deadline, with an error that says so.
func TestUploadStalledIsCut(t *testing.T) {
	addr, errs, _, _ := uploadServer(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		pw.Write(bytes.Repeat([]byte("x"), 100))
		// and nothing more until the test ends
	}()
	req, _ := http.NewRequest("PUT", "http://"+addr+"/up", pr)
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	guard := time.NewTimer(30 * time.Second)
	defer guard.Stop()
	select {
	case err := <-errs:
		if forge.KindOf(err) != forge.Invalid || !strings.Contains(err.Error(), "stalled") {
			t.Errorf("got %v, want Invalid: the upload stalled", err)
		}
	case <-guard.C:
		t.Fatal("a stalled upload was not cut")
	}
}

// A client that closes its connection in the middle of an upload is logged
// and counted as 499, not as a server error.
func TestUploadClientGoneIs499(t *testing.T) {
	addr, errs, logs, reg := uploadServer(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /up HTTP/1.1\r\nHost: forge\r\nContent-Length: 1000\r\n\r\n%s", strings.Repeat("x", 10))
	conn.Close()
	if err := <-errs; err == nil {
		t.Fatal("the handler read a whole body")
	}
	// The access log is written once the handler has returned.
	guard := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), `"status":499`) {
		if time.Now().After(guard) {
			t.Fatalf("no access log line with status 499:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), `"status":500`) || strings.Contains(logs.String(), "request failed") {
		t.Errorf("logged as a server error:\n%s", logs)
	}
	if n := counter(t, reg, "PUT /up", "499"); n != 1 {
		t.Errorf("forge_http_requests_total{route=PUT /up, code=499} = %v, want 1", n)
	}
}

// Unavailable (busy, loading, starting) tells the client when to retry.
func TestUnavailableHasRetryAfter(t *testing.T) {
	for kind, want := range map[forge.Kind]string{forge.Unavailable: "1", forge.Invalid: "", forge.Internal: ""} {
		rec := httptest.NewRecorder()
		httpapi.WriteError(rec, httptest.NewRequest("GET", "/x", nil), slog.New(slog.DiscardHandler), forge.Errorf(kind, "no"))
		if got := rec.Header().Get("Retry-After"); got != want {
			t.Errorf("%v: Retry-After %q, want %q", kind, got, want)
		}
	}
}
