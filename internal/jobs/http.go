package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// Routes are the jobs API:
//
//	POST /api/forge/v1/jobs                  submit a Spec
//	GET  /api/forge/v1/jobs?state=S&limit=N  list, newest first
//	GET  /api/forge/v1/jobs/{id}             one job with its attempts
//	POST /api/forge/v1/jobs/{id}/cancel      cancel
//	GET  /api/forge/v1/jobs/{id}/logs?follow=true&attempt=N   text, streamed
//	GET  /api/forge/v1/executors             the executors jobs may name
//	HEAD /api/forge/v1/bundles/{digest}      is this code bundle stored?
//	GET  /api/forge/v1/bundles/{digest}      the code bundle (for pods that fetch it)
//	PUT  /api/forge/v1/bundles/{digest}      store a code bundle (body: tar.gz)
func (s *Service) Routes(log *slog.Logger) []httpapi.Route {
	var routes []httpapi.Route
	add := func(pattern string, access httpapi.Access, body httpapi.Body, h http.Handler) {
		routes = append(routes, httpapi.Route{Pattern: pattern, Handler: h, Access: access, Body: body})
	}
	add("POST /api/forge/v1/jobs", httpapi.Write, httpapi.BodyAPI, httpapi.JSON(log, func(r *http.Request) (any, error) {
		var spec Spec
		if err := httpapi.Decode(r, &spec); err != nil {
			return nil, err
		}
		return s.Submit(r.Context(), spec)
	}))
	add("GET /api/forge/v1/jobs", httpapi.Read, httpapi.BodyAPI, httpapi.JSON(log, func(r *http.Request) (any, error) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		list, err := s.List(r.Context(), State(r.URL.Query().Get("state")), limit)
		if list == nil {
			list = []Job{}
		}
		return map[string]any{"jobs": list}, err
	}))
	add("GET /api/forge/v1/jobs/{id}", httpapi.Read, httpapi.BodyAPI, httpapi.JSON(log, func(r *http.Request) (any, error) {
		j, err := s.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		// A job and, where its executor reports them, its latest
		// attempt's processes (rank, node, PID, exit).
		procs, err := s.Processes(r.Context(), j)
		if err != nil {
			log.Debug("job processes", "job", j.ID, "err", err)
		}
		return struct {
			Job
			Processes []Process `json:"processes,omitempty"`
		}{j, procs}, nil
	}))
	add("POST /api/forge/v1/jobs/{id}/cancel", httpapi.Write, httpapi.BodyAPI, httpapi.JSON(log, func(r *http.Request) (any, error) {
		return s.Cancel(r.Context(), r.PathValue("id"))
	}))
	add("GET /api/forge/v1/jobs/{id}/logs", httpapi.Read, httpapi.BodyAPI, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		follow := q.Get("follow") == "true" || q.Get("follow") == "1"
		id := r.PathValue("id")
		attempt := 0 // every attempt
		if v := q.Get("attempt"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				httpapi.WriteError(w, r, log, forge.Errorf(forge.Invalid, "attempt %q: want a number from 1 (0 or none: every attempt)", v))
				return
			}
			attempt = n
		}
		// Check the job and the attempt before the 200 goes out, so a bad
		// id or an attempt the job never had gets a 404, not an empty log.
		j, err := s.Get(r.Context(), id)
		if err != nil {
			httpapi.WriteError(w, r, log, err)
			return
		}
		if attempt > j.Attempt {
			httpapi.WriteError(w, r, log, forge.Errorf(forge.NotFound, "job %s has no attempt %d (it has %d)", id, attempt, j.Attempt))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		rc := http.NewResponseController(w)
		// A followed log may stream for hours: no write deadline.
		rc.SetWriteDeadline(time.Time{})
		w.WriteHeader(http.StatusOK)
		if err := s.Logs(r.Context(), id, attempt, follow, flushWriter{w, rc}); err != nil && r.Context().Err() == nil {
			log.Warn("stream job log", "job", id, "err", err)
		}
	}))
	add("GET /api/forge/v1/executors", httpapi.Read, httpapi.BodyAPI, httpapi.JSON(log, func(r *http.Request) (any, error) {
		return map[string]any{"executors": s.Executors(r.Context())}, nil
	}))
	add("GET /api/forge/v1/bundles/{digest}", httpapi.Read, httpapi.BodyAPI, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := r.PathValue("digest")
		if !digestRx.MatchString(d) {
			httpapi.WriteError(w, r, log, forge.Errorf(forge.Invalid, "%q is not a sha256 digest", d))
			return
		}
		info, err := s.blobs.Stat(r.Context(), forge.Digest(d))
		if err != nil {
			httpapi.WriteError(w, r, log, bundleNotFound(err, d))
			return
		}
		// Only bundles are served here, not any blob whose digest is known.
		if err := s.checkBundle(r.Context(), d); err != nil {
			httpapi.WriteError(w, r, log, err)
			return
		}
		rc, err := s.blobs.Open(r.Context(), forge.Digest(d))
		if err != nil {
			httpapi.WriteError(w, r, log, bundleNotFound(err, d))
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		// Content-addressed: the bytes under a digest never change.
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
			log.Warn("send code bundle", "digest", d, "err", err)
		}
	}))
	add("HEAD /api/forge/v1/bundles/{digest}", httpapi.Read, httpapi.BodyAPI, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, err := s.blobs.Stat(r.Context(), forge.Digest(r.PathValue("digest")))
		if err != nil {
			status, _ := httpapi.Status(forge.KindOf(err))
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
	}))
	add("PUT /api/forge/v1/bundles/{digest}", httpapi.Write, httpapi.BodyUpload, httpapi.JSON(log, func(r *http.Request) (any, error) {
		want := r.PathValue("digest")
		if !digestRx.MatchString(want) {
			return nil, forge.Errorf(forge.Invalid, "%q is not a sha256 digest", want)
		}
		if r.ContentLength > s.cfg.MaxBundleBytes {
			return nil, forge.Errorf(forge.TooLarge, "code bundle of %d bytes is over the limit of %d bytes", r.ContentLength, s.cfg.MaxBundleBytes)
		}
		body := http.MaxBytesReader(nil, r.Body, s.cfg.MaxBundleBytes)
		// Spooled and checked before storing: a refused bundle leaves no blob.
		tmp, err := os.CreateTemp(s.cfg.TempDir, "forge-bundle-*")
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, forge.Errorf(forge.TooLarge, "code bundle is over the limit of %d bytes", s.cfg.MaxBundleBytes)
			}
			return nil, err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return nil, forge.Errorf(forge.Invalid, "the body's sha256 is %s, not %s", got, want)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if err := bundle.Validate(tmp); err != nil {
			return nil, bundleError(err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		info, err := s.blobs.Put(r.Context(), tmp)
		if err != nil {
			return nil, err
		}
		return map[string]any{"digest": info.Digest, "size": info.Size}, nil
	}))
	return routes
}

// checkBundle answers NotFound unless blob d is a valid code bundle.
func (s *Service) checkBundle(ctx context.Context, d string) error {
	rc, err := s.blobs.Open(ctx, forge.Digest(d))
	if err != nil {
		return bundleNotFound(err, d)
	}
	defer rc.Close()
	if err := bundle.Validate(rc); err != nil {
		if bundle.IsInvalid(err) {
			return forge.Errorf(forge.NotFound, "no code bundle %s", d)
		}
		return err
	}
	return nil
}

// bundleError turns a refused bundle into a client error.
func bundleError(err error) error {
	if bundle.IsInvalid(err) {
		return forge.Errorf(forge.Invalid, "%v", err)
	}
	return err
}

// bundleNotFound names the bundle in a blob store's NotFound.
func bundleNotFound(err error, digest string) error {
	if forge.IsKind(err, forge.NotFound) {
		return forge.Errorf(forge.NotFound, "no code bundle %s", digest)
	}
	return err
}

type flushWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush()                      { f.rc.Flush() }
