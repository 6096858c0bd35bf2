package jobs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// escaping is a tar.gz whose symbolic link leaves the folder, with a file
// entry under it.
func escaping(t *testing.T) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "../../../.."})
	tw.WriteHeader(&tar.Header{Name: "out/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBadBundles(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db})
		mux := http.NewServeMux()
		httpapi.Mount(mux, e.svc.Routes(slog.New(slog.DiscardHandler)))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		c := api.NewClient(srv.URL, "")
		ctx := context.Background()

		// Refused at upload, with the reason, and not stored.
		bad := escaping(t)
		err := c.PutBundle(ctx, sum(bad), bad)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "invalid bundle: ") {
			t.Fatalf("PUT escaping bundle: %v, want 400 invalid bundle", err)
		}
		if _, err := e.blobs.Stat(ctx, forge.Digest(sum(bad))); !forge.IsKind(err, forge.NotFound) {
			t.Fatalf("refused bundle's blob: %v, want not stored", err)
		}

		// A blob that is not a bundle is not served as one.
		info, err := e.blobs.Put(ctx, strings.NewReader("a model, not code"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(srv.URL + "/api/forge/v1/bundles/" + string(info.Digest))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET a blob that is no bundle: %d, want 404", resp.StatusCode)
		}

		// A bad bundle met at start fails the job with the reason.
		info, err = e.blobs.Put(ctx, bytes.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		j := e.final(t, e.submit(t, Spec{Command: sh("true"), Code: string(info.Digest)}).ID)
		if j.State != Failed || j.Reason != forge.ReasonInvalid || !strings.HasPrefix(j.Message, "invalid bundle: ") {
			t.Fatalf("job with an escaping bundle = %+v, want failed: invalid bundle", j)
		}
	})
}
