package httpapi

import (
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// textNames are the extensions (and extension-less names) MLflow serves as
// text/plain whatever else they might be, so that a .js or .json artifact
// never runs or renders in the browser on the server's origin.
var textNames = map[string]bool{
	"txt": true, "log": true, "err": true, "cfg": true, "conf": true, "cnf": true, "cf": true, "ini": true,
	"properties": true, "prop": true, "hocon": true, "toml": true, "yaml": true, "yml": true, "xml": true,
	"json": true, "js": true, "py": true, "py3": true, "csv": true, "tsv": true, "md": true, "rst": true,
	"MLmodel": true, "MLproject": true,
}

// ArtifactType is the Content-Type MLflow's server gives a downloaded file
// called name: text/plain for text files, else the type of its extension,
// else application/octet-stream.
func ArtifactType(name string) string {
	base := path.Base(name)
	ext := strings.TrimPrefix(path.Ext(base), ".")
	if ext == "" {
		ext = base
	}
	if textNames[ext] {
		return "text/plain"
	}
	if t := mime.TypeByExtension(path.Ext(base)); t != "" {
		t, _, _ = strings.Cut(t, ";") // MLflow sends no charset
		return strings.TrimSpace(t)
	}
	return "application/octet-stream"
}

// ServeAttachment sends a file as MLflow's server sends artifacts: always
// as an attachment, its type from its name, and nosniff so that a browser
// never renders what it guesses (an HTML artifact must not run on the
// server's origin). A copy that fails after the headers are out cuts the
// connection, so the client sees a broken body, never a short file that
// looks whole.
func ServeAttachment(w http.ResponseWriter, r *http.Request, log *slog.Logger, name string, size int64, body io.Reader) {
	h := w.Header()
	attachmentHeaders(h, name)
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if _, err := io.Copy(w, body); err != nil {
		log.ErrorContext(r.Context(), "artifact download failed", "path", name, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// attachmentHeaders are the type, disposition and nosniff of a download.
func attachmentHeaders(h http.Header, name string) {
	h.Set("Content-Type", ArtifactType(name))
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(name)})
	if disp == "" { // a name FormatMediaType cannot write
		disp = "attachment"
	}
	h.Set("Content-Disposition", disp)
	h.Set("X-Content-Type-Options", "nosniff")
}
