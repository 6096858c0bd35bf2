package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestUploadProgress: an upload with progress tells it every byte, to the
// total, and still sends its Content-Length (a server refuses an upload
// over its limit by it before reading).
func TestUploadProgress(t *testing.T) {
	var mu sync.Mutex
	lengths := map[string]int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		lengths[r.URL.Path] = r.ContentLength
		mu.Unlock()
		if n != r.ContentLength {
			http.Error(w, "short body", 400)
			return
		}
		w.Write([]byte(`{"created": true}`))
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "")
	data := bytes.Repeat([]byte("forge"), 100_000)
	var calls []int64
	err := c.UploadBundle(context.Background(), "abc", bytes.NewReader(data), func(done, total int64) {
		if total != int64(len(data)) {
			t.Errorf("total %d, want %d", total, len(data))
		}
		calls = append(calls, done)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 || calls[0] != 0 || calls[len(calls)-1] != int64(len(data)) {
		t.Errorf("progress heard %v", calls)
	}
	// A reader that tells its Size, as the CLI's counting reader does.
	if _, err := c.AddDatasetVersion(context.Background(), "d", sized{strings.NewReader("PAR1...PAR1"), 11}, "test", "", ""); err != nil {
		t.Fatal(err)
	}
	if lengths["/api/forge/v1/bundles/abc"] != int64(len(data)) || lengths["/api/forge/v1/datasets/d/versions"] != 11 {
		t.Errorf("Content-Length sent: %v", lengths)
	}
}

type sized struct {
	io.Reader
	n int64
}

func (s sized) Size() int64 { return s.n }
