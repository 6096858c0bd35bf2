package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
)

// ServeBlob sends blob d (size bytes) as the attachment name, as
// ServeAttachment does, and answers a single HTTP Range ("bytes=a-b",
// "bytes=a-", "bytes=-n") with 206 and that part, read from the store
// without fetching the rest (forge.BlobRangeReader). Without a Range, with
// several ranges or an If-Range that is not the blob's ETag (its digest),
// the whole blob is sent, verified against its digest on the way; a
// range beyond the end is 416.
func ServeBlob(w http.ResponseWriter, r *http.Request, log *slog.Logger, name string, blobs forge.BlobStore, d forge.Digest, size int64) {
	etag := `"` + string(d) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	rr, ranged := blobs.(forge.BlobRangeReader)
	if ranged {
		h.Set("Accept-Ranges", "bytes")
	}
	spec := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		spec = ""
	}
	if !ranged || spec == "" || r.Method != http.MethodGet && r.Method != http.MethodHead {
		serveWhole(w, r, log, name, blobs, d, size)
		return
	}
	off, n, ok, err := parseRange(spec, size)
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		WriteJSON(w, http.StatusRequestedRangeNotSatisfiable, ErrorBody{ErrorCode: "INVALID_PARAMETER_VALUE", Message: err.Error()})
		return
	}
	if !ok {
		serveWhole(w, r, log, name, blobs, d, size)
		return
	}
	rc, err := rr.OpenRange(r.Context(), d, off, n)
	if err != nil {
		blobError(w, r, log, err)
		return
	}
	defer rc.Close()
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
	attachmentHeaders(h, name)
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusPartialContent)
	if _, err := io.CopyN(w, rc, n); err != nil {
		log.ErrorContext(r.Context(), "artifact range download failed", "path", name, "err", err)
		panic(http.ErrAbortHandler)
	}
}

func serveWhole(w http.ResponseWriter, r *http.Request, log *slog.Logger, name string, blobs forge.BlobStore, d forge.Digest, size int64) {
	rc, err := blobs.Open(r.Context(), d)
	if err != nil {
		blobError(w, r, log, err)
		return
	}
	defer rc.Close()
	ServeAttachment(w, r, log, name, size, rc)
}

// blobError answers a failed open without the blob's headers: an error
// (503 while the store is away) is not the blob.
func blobError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	for _, k := range []string{"ETag", "Accept-Ranges", "X-Content-Sha256", "X-Forge-Digest"} {
		w.Header().Del(k)
	}
	WriteError(w, r, log, err)
}

// parseRange reads a Range header for a file of size bytes: ok is false
// for what is served whole (several ranges, a unit other than bytes, a
// malformed header, which RFC 9110 lets a server ignore); err is a
// well-formed range that lies outside the file.
func parseRange(spec string, size int64) (off, n int64, ok bool, err error) {
	rest, found := strings.CutPrefix(spec, "bytes=")
	if !found || strings.Contains(rest, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(rest), "-")
	if !found {
		return 0, 0, false, nil
	}
	if first == "" { // the last N bytes
		k, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || k < 0 {
			return 0, 0, false, nil
		}
		if k == 0 || size == 0 {
			return 0, 0, false, fmt.Errorf("range %q: the file has %d bytes", spec, size)
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	a, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || a < 0 {
		return 0, 0, false, nil
	}
	b := size - 1
	if last != "" {
		if b, perr = strconv.ParseInt(last, 10, 64); perr != nil || b < a {
			return 0, 0, false, nil
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, false, fmt.Errorf("range %q starts past the end of the file (%d bytes)", spec, size)
	}
	return a, b - a + 1, true, nil
}
