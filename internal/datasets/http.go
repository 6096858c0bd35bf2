package datasets

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// API serves a Service under /api/forge/v1.
type API struct {
	svc *Service
	log *slog.Logger
}

// NewAPI returns the HTTP API over svc.
func NewAPI(svc *Service, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{svc: svc, log: log}
}

const prefix = "/api/forge/v1"

// UploadPath is the route of uploads, for a server that must let large
// bodies through to it.
const UploadPath = prefix + "/datasets/{name}/versions"

// Routes are the datasets API. A query is a read: it runs on a read-only
// DuckDB connection.
func (a *API) Routes() []httpapi.Route {
	j := func(h httpapi.HandlerFunc) http.Handler { return httpapi.JSON(a.log, h) }
	r := func(pattern string, access httpapi.Access, h http.Handler) httpapi.Route {
		return httpapi.Route{Pattern: pattern, Handler: h, Access: access}
	}
	return append([]httpapi.Route{
		r("GET "+prefix+"/datasets", httpapi.Read, j(a.list)),
		{Pattern: "POST " + UploadPath, Handler: http.HandlerFunc(a.add), Access: httpapi.Write, Body: httpapi.BodyUpload},
		r("GET "+prefix+"/datasets/{name}/versions", httpapi.Read, j(a.versions)),
		r("GET "+prefix+"/datasets/{name}/versions/{version}", httpapi.Read, j(a.show)),
		r("DELETE "+prefix+"/datasets/{name}", httpapi.Write, j(a.remove)),
		r("DELETE "+prefix+"/datasets/{name}/versions/{version}", httpapi.Write, j(a.remove)),
		r("GET "+prefix+"/datasets/{name}/versions/{version}/profile", httpapi.Read, j(a.profile)),
		r("GET "+prefix+"/datasets/{name}/versions/{version}/data", httpapi.Read, http.HandlerFunc(a.data)),
		r("GET "+prefix+"/dataset-diff", httpapi.Read, j(a.diff)),
		r("POST "+prefix+"/query", httpapi.Read, http.HandlerFunc(a.query)),
	}, a.queueRoutes()...)
}

// ref reads {name} and {version} ("latest" or a number) from the path.
func ref(r *http.Request) string {
	v := r.PathValue("version")
	if v == "" || v == "latest" {
		return r.PathValue("name")
	}
	return r.PathValue("name") + "@" + v
}

func (a *API) list(r *http.Request) (any, error) {
	ds, err := a.svc.List(r.Context())
	return map[string]any{"datasets": ds}, err
}

func (a *API) versions(r *http.Request) (any, error) {
	vs, err := a.svc.Versions(r.Context(), r.PathValue("name"))
	return map[string]any{"versions": vs}, err
}

func (a *API) show(r *http.Request) (any, error) {
	v, runs, err := a.svc.Show(r.Context(), ref(r))
	if err != nil {
		return nil, err
	}
	out := map[string]any{"version": v, "runs": runs}
	if rec, ok, err := a.svc.QueueRecord(r.Context(), v.Name, v.Version); err != nil {
		return nil, err
	} else if ok {
		out["queue"] = rec
	}
	return out, nil
}

func (a *API) remove(r *http.Request) (any, error) {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	name := ref(r)
	if r.PathValue("version") == "latest" {
		// "latest" in a DELETE would remove a moving target; say which.
		return nil, forge.Errorf(forge.Invalid, "remove a version by its number, or the whole dataset without one")
	}
	vs, err := a.svc.Remove(r.Context(), name, force)
	if err != nil {
		return nil, err
	}
	return map[string]any{"removed": vs}, nil
}

func (a *API) profile(r *http.Request) (any, error) {
	v, p, err := a.svc.Profile(r.Context(), ref(r))
	if err != nil {
		return nil, err
	}
	return map[string]any{"version": v, "profile": p}, nil
}

func (a *API) diff(r *http.Request) (any, error) {
	q := r.URL.Query()
	if q.Get("a") == "" || q.Get("b") == "" {
		return nil, forge.Errorf(forge.Invalid, "diff needs a and b, dataset references such as sales@1 and sales@2")
	}
	va, vb, d, err := a.svc.Diff(r.Context(), q.Get("a"), q.Get("b"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"a": va, "b": vb, "diff": d}, nil
}

func (a *API) add(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	info := AddInfo{Source: q.Get("source"), Description: q.Get("description"), CreatedBy: a.creator(r)}
	v, created, err := a.svc.Add(r.Context(), r.PathValue("name"), r.Body, info)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = forge.Errorf(forge.TooLarge, "upload is larger than the server accepts (%d bytes)", tooBig.Limit)
	}
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, map[string]any{"version": v, "created": created})
}

// creator names who adds a version: the token's name when access control
// let the request in with one, else the user name the client reports.
func (a *API) creator(r *http.Request) string {
	if name := auth.TokenName(r.Context()); name != "" {
		return "token:" + name
	}
	return strings.TrimSpace(r.Header.Get("X-Forge-User"))
}

// data serves a version's Parquet file, or with ?format=csv the same rows
// as CSV (for a job's `:csv` input fetched by a pod); X-Content-Sha256 is
// the sha256 of the bytes served, so a client can check what it got.
func (a *API) data(w http.ResponseWriter, r *http.Request) {
	switch format := r.URL.Query().Get("format"); format {
	case "", "parquet":
	case "csv":
		a.dataCSV(w, r)
		return
	default:
		httpapi.WriteError(w, r, a.log, forge.Errorf(forge.Invalid, "format %q: want parquet or csv", format))
		return
	}
	v, path, err := a.svc.File(r.Context(), ref(r))
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		httpapi.WriteError(w, r, a.log, fmt.Errorf("open %s: %w", v.Ref(), err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/vnd.apache.parquet")
	w.Header().Set("X-Content-Sha256", v.Digest)
	w.Header().Set("X-Forge-Dataset", v.Ref())
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", v.Name+"@"+strconv.FormatInt(v.Version, 10)+".parquet"))
	w.Header().Set("ETag", `"`+v.Digest+`"`)
	http.ServeContent(w, r, "", time.UnixMilli(v.CreatedAt), f)
}

func (a *API) dataCSV(w http.ResponseWriter, r *http.Request) {
	tmp, err := os.MkdirTemp(a.svc.opts.TempDir, "csv-*")
	if err != nil {
		httpapi.WriteError(w, r, a.log, fmt.Errorf("export csv: %w", err))
		return
	}
	defer os.RemoveAll(tmp)
	dst := tmp + "/data.csv"
	resolved, digest, err := a.svc.MaterializeCSV(r.Context(), ref(r), dst)
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	f, err := os.Open(dst)
	if err != nil {
		httpapi.WriteError(w, r, a.log, fmt.Errorf("export csv of %s: %w", resolved, err))
		return
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := f.WriteTo(sum); err != nil {
		httpapi.WriteError(w, r, a.log, fmt.Errorf("export csv of %s: %w", resolved, err))
		return
	}
	if _, err := f.Seek(0, 0); err != nil {
		httpapi.WriteError(w, r, a.log, fmt.Errorf("export csv of %s: %w", resolved, err))
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("X-Content-Sha256", hex.EncodeToString(sum.Sum(nil)))
	w.Header().Set("X-Forge-Dataset", resolved)
	w.Header().Set("X-Forge-Dataset-Digest", digest)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", resolved+".csv"))
	http.ServeContent(w, r, "", time.Time{}, f)
}

// QueryRequest is the body of POST /api/forge/v1/query.
type QueryRequest struct {
	SQL       string `json:"sql"`
	Limit     int    `json:"limit"`
	TimeoutMS int64  `json:"timeout_ms"`
}

// query streams the result as NDJSON: a header object with the columns, one
// JSON array per row, and a trailer object with the row count and whether
// the row cap cut the result (or the error that ended it). Errors found
// before the first row get a status of their own.
func (a *API) query(w http.ResponseWriter, r *http.Request) {
	var req QueryRequest
	if err := httpapi.Decode(r, &req); err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	if req.Limit < 0 || req.TimeoutMS < 0 {
		httpapi.WriteError(w, r, a.log, forge.Errorf(forge.Invalid, "limit and timeout_ms must not be negative"))
		return
	}
	// The request's context ends when the client goes away, which
	// interrupts DuckDB.
	ctx := r.Context()
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	rows, err := a.svc.Query(ctx, req.SQL, req.Limit)
	if err != nil {
		httpapi.WriteError(w, r, a.log, queryError(ctx, err))
		return
	}
	defer rows.Close()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.Encode(map[string]any{"columns": rows.Columns})
	bw.Flush()
	rc.Flush()
	types := make([]string, len(rows.Columns))
	for i, c := range rows.Columns {
		types[i] = strings.ToUpper(c.Type)
	}
	var n int64
	last := time.Now()
	row := make([]any, len(types))
	// Next, not ForEach, which would close the instance (a millisecond or
	// two) before the trailer: the client has its answer with the trailer,
	// and the deferred Close runs after it.
	for err == nil && rows.Next() {
		for i, v := range rows.Values() {
			row[i] = wireValue(v, types[i])
		}
		if err = enc.Encode(row); err != nil {
			break
		}
		n++
		// Rows reach the client at least every 100ms, and in 64 KiB
		// chunks in between.
		if time.Since(last) > 100*time.Millisecond {
			last = time.Now()
			if err = bw.Flush(); err == nil {
				err = rc.Flush()
			}
		}
	}
	if err == nil {
		err = rows.Err()
	}
	trailer := map[string]any{"rows": n, "truncated": rows.Truncated()}
	if err != nil {
		if r.Context().Err() != nil {
			a.log.Debug("query abandoned by the client", "rows", n)
			return
		}
		err = queryError(ctx, err)
		trailer["error"] = forge.Message(err)
		if forge.KindOf(err) == forge.Internal {
			a.log.Error("query failed", "err", err)
		}
	}
	enc.Encode(trailer)
	bw.Flush()
	rc.Flush()
}

func queryError(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return forge.WrapError(forge.Invalid, err, "query cancelled: it ran past its timeout")
	}
	return err
}

// wireValue makes a value JSON can carry and DuckDB can read back into the
// column's type: dates and times in DuckDB's own text form, non-finite floats
// as the strings DuckDB casts to them.
func wireValue(v any, typ string) any {
	switch x := v.(type) {
	case time.Time:
		switch {
		case typ == "DATE":
			return x.Format("2006-01-02")
		case strings.HasPrefix(typ, "TIME") && !strings.HasPrefix(typ, "TIMESTAMP"):
			return x.Format("15:04:05.999999")
		case strings.HasSuffix(typ, "WITH TIME ZONE") || typ == "TIMESTAMPTZ":
			return x.Format(time.RFC3339Nano)
		}
		return x.Format("2006-01-02 15:04:05.999999")
	case float64:
		return finite(x)
	case float32:
		return finite(float64(x))
	}
	return v
}

func finite(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
