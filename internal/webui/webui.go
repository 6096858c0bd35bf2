// Package webui is Forge's web UI: static ES modules and the vendored uPlot,
// embedded in the binary and served at `/`. The page reads everything it
// shows through the public REST APIs; the server side only serves files.
//
// Assets live under /ui/<hash>/, where hash is a digest of every embedded
// file, so they can be cached forever (immutable); index.html, which names
// that prefix, is never cached. The shell answers with a strict
// Content-Security-Policy: scripts, styles and connections to this origin
// only.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"

	"github.com/forge-mlops/forge/internal/httpapi"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every UI response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// UI serves the embedded assets.
type UI struct {
	files  map[string][]byte // path under static/ -> content
	hash   string
	index  []byte
	prefix string // "/ui/<hash>/"
}

// New reads the embedded files and computes their content hash.
func New() *UI {
	u := &UI{files: map[string][]byte{}}
	var names []string
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		u.files[name] = b
		names = append(names, name)
		return nil
	})
	if err != nil {
		panic("webui: read embedded assets: " + err.Error()) // the embed is part of the binary
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(u.files[n])
	}
	u.hash = hex.EncodeToString(h.Sum(nil))[:16]
	u.prefix = "/ui/" + u.hash + "/"
	// Every module is named in the shell, so the browser fetches them all
	// at once instead of finding each level of imports after the last.
	var preload strings.Builder
	for _, n := range names {
		if strings.HasSuffix(n, ".js") && n != "app.js" {
			fmt.Fprintf(&preload, "<link rel=\"modulepreload\" href=\"{{ASSETS}}%s\">\n", n)
		}
	}
	index := bytes.ReplaceAll(u.files["index.html"], []byte("{{PRELOAD}}\n"), []byte(preload.String()))
	u.index = bytes.ReplaceAll(index, []byte("{{ASSETS}}"), []byte(u.prefix))
	return u
}

// Prefix is where the assets are served, e.g. "/ui/0123abcd/".
func (u *UI) Prefix() string { return u.prefix }

// Routes are the shell at `/` and the assets, both public: they hold no
// data, and the page signs in through the API.
func (u *UI) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /{$}", Handler: http.HandlerFunc(u.serveIndex), Access: httpapi.Public, Summary: "The web UI's page"},
		{Pattern: "GET /ui/{hash}/{path...}", Handler: http.HandlerFunc(u.serveAsset), Access: httpapi.Public,
			Summary: "The web UI's scripts and styles, under a content hash"},
	}
}

func (u *UI) serveIndex(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	security(h)
	w.Write(u.index)
}

func (u *UI) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	b, ok := u.files[name]
	if r.PathValue("hash") != u.hash || !ok || name == "index.html" {
		// An old hash means a page from before an upgrade: reloading fixes it.
		http.Error(w, "no such asset (reload the page)", http.StatusNotFound)
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if strings.HasSuffix(name, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	security(h)
	w.Write(b)
}

func security(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}
