package blobgc

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// DefaultGrace is the grace period of a sweep that names none.
const DefaultGrace = 24 * time.Hour

// Routes serve POST /api/forge/v1/admin/gc, one sweep at a time, to admins:
// a sweep of store, and of the temporary folders temps (see SweepTemp).
func Routes(store Store, refs []Referrer, temps []string, log *slog.Logger) []httpapi.Route {
	var running sync.Mutex
	return []httpapi.Route{{Pattern: "POST /api/forge/v1/admin/gc", Access: httpapi.Admin, Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
		var req api.GCRequest
		if err := httpapi.Decode(r, &req); err != nil {
			return nil, err
		}
		grace := DefaultGrace
		if req.Grace != "" {
			d, err := time.ParseDuration(req.Grace)
			if err != nil {
				return nil, forge.Errorf(forge.Invalid, "invalid grace %q: want a duration such as 24h", req.Grace)
			}
			grace = d
		}
		if !running.TryLock() {
			return nil, forge.Errorf(forge.Conflict, "a blob sweep is already running")
		}
		defer running.Unlock()
		rep, err := Sweep(r.Context(), store, refs, grace, req.DryRun)
		if err != nil {
			return rep, err
		}
		trep, err := SweepTemp(temps, TempAge, req.DryRun)
		rep.Temp, rep.TempBytes = trep.Entries, trep.Bytes
		log.Info("blob sweep", "dry_run", rep.DryRun, "grace", rep.Grace, "blobs", rep.Blobs, "garbage", rep.Garbage,
			"removed", rep.Removed, "removed_bytes", rep.RemovedBytes, "temp", rep.Temp, "temp_bytes", rep.TempBytes)
		return rep, err
	})}}
}
