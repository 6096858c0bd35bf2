package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Access is what a caller must hold to reach a route. The zero value is
// deliberately invalid: every route says what it needs.
type Access int

const (
	accessUnset Access = iota
	// Public routes answer without a token (health, readiness, version, the
	// UI's static assets and sign-in page).
	Public
	// Read is every GET and search, and inference.
	Read
	// Write is logging, registering, submitting, deploying.
	Write
	// Admin is tokens, garbage collection and server settings.
	Admin
	// WriteRun is a write to one tracking run (logging to it, its
	// artifacts): Write for every token, and the one write a job's token
	// (which may write only its own run) gets past the edge; the handler
	// checks which run the request names (auth.MayWriteRun).
	WriteRun
)

func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case Read:
		return "read"
	case Write, WriteRun:
		return "write"
	case Admin:
		return "admin"
	}
	return "unset"
}

// Body says which size limit applies to a route's request body.
type Body int

const (
	// BodyAPI is the API limit (http.max_body_bytes), the default.
	BodyAPI Body = iota
	// BodyUpload is the upload limit (http.max_upload_bytes), for routes
	// that take files: artifacts, datasets, models, code bundles.
	BodyUpload
)

// Route is one HTTP route a component serves, with the rules the edge
// applies to it. Components declare their routes as data next to their
// handlers (a Routes() []httpapi.Route method); the server assembles them.
type Route struct {
	// Pattern is a net/http ServeMux pattern with its method,
	// e.g. "POST /api/2.0/mlflow/runs/create".
	Pattern string
	Handler http.Handler
	Access  Access
	Body    Body
	// Summary is one line for the OpenAPI document and help.
	Summary string
}

// Mount registers routes on mux as they are. It refuses (panics, at start-up)
// a route that does not say what access it needs.
func Mount(mux *http.ServeMux, routes []Route) {
	for _, rt := range routes {
		if rt.Access == accessUnset {
			panic(fmt.Sprintf("httpapi: route %q declares no access", rt.Pattern))
		}
		mux.Handle(rt.Pattern, rt.Handler)
	}
}

// Edge is the rules a server applies to each route it mounts, read from the
// route itself: the body limit its Body names and, for every route that is
// not Public, the Guard that checks the caller holds its Access. It is the
// one place those rules live; a route cannot be mounted without them.
type Edge struct {
	// MaxBody and MaxUpload are the BodyAPI and BodyUpload limits in bytes.
	MaxBody, MaxUpload int64
	// Guard wraps a route's handler with the check that the caller holds
	// access; nil lets everyone in (access control off).
	Guard func(access Access, next http.Handler) http.Handler
	// UploadIdle and WriteTimeout are the deadlines of BodyUpload routes
	// (see UploadDeadlines), which replace the server's fixed timeouts;
	// UploadIdle 0 keeps the server's.
	UploadIdle, WriteTimeout time.Duration
	Log                      *slog.Logger
}

// Mount registers routes on mux behind their limits and access checks, and
// panics, like Mount, on a route that declares no access.
func (e Edge) Mount(mux *http.ServeMux, routes []Route) {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		if rt.Access == accessUnset {
			panic(fmt.Sprintf("httpapi: route %q declares no access", rt.Pattern))
		}
		max := e.MaxBody
		if rt.Body == BodyUpload {
			max = e.MaxUpload
		}
		h := e.limit(max, rt.Handler)
		if rt.Body == BodyUpload {
			h = UploadDeadlines(e.UploadIdle, e.WriteTimeout)(h)
		}
		if e.Guard != nil && rt.Access != Public {
			h = e.Guard(rt.Access, h)
		}
		rt.Handler = h
		out[i] = rt
	}
	Mount(mux, out)
}

func (e Edge) limit(max int64, next http.Handler) http.Handler {
	if max <= 0 {
		return next
	}
	log := e.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return LimitBody(func(*http.Request) int64 { return max }, log)(next)
}

// MLflowAjaxPrefix is where MLflow's server serves its whole REST API a
// second time, for its web UI (and the UI-only routes beside it).
const MLflowAjaxPrefix = "/ajax-api/2.0/"

// WithAjaxTwins returns routes followed by a second mount of every MLflow
// route (/api/2.0/mlflow/..., /api/2.0/mlflow-artifacts/...) under
// /ajax-api/2.0/, with the same handler, access and body limit, as MLflow's
// server does. The twins are rows of the route table like any other, so
// access checks and the route listing cover them.
func WithAjaxTwins(routes []Route) []Route {
	out := append([]Route(nil), routes...)
	for _, rt := range routes {
		method, p, hasMethod := strings.Cut(rt.Pattern, " ")
		if !hasMethod {
			method, p = "", rt.Pattern
		}
		rest, ok := strings.CutPrefix(p, "/api/2.0/")
		if !ok || !(strings.HasPrefix(rest, "mlflow/") || strings.HasPrefix(rest, "mlflow-artifacts/")) {
			continue
		}
		twin := rt
		twin.Pattern = MLflowAjaxPrefix + rest
		if hasMethod {
			twin.Pattern = method + " " + twin.Pattern
		}
		out = append(out, twin)
	}
	return out
}
