package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// streamHeartbeat is how often an idle event stream sends a comment, so
// proxies and clients see the connection alive.
const streamHeartbeat = 15 * time.Second

// wantsStream says whether the watch request asks for server-sent events.
func wantsStream(req *http.Request) bool {
	return strings.Contains(req.Header.Get("Accept"), "text/event-stream")
}

// watchStream serves the registry's events as server-sent events: each
// event is "id: SEQ", "event: TYPE" and "data: " its JSON (as the long-poll
// answer has it). It starts after the Last-Event-ID header (an
// EventSource's reconnection), else after ?since=, else at the current
// head, and runs until the client goes away.
func (r *Registry) watchStream(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	from, param := req.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if from == "" {
		from, param = req.URL.Query().Get("since"), "since"
	}
	var since int64
	var err error
	if from == "" {
		since, err = r.Head(ctx)
	} else if since, err = strconv.ParseInt(from, 10, 64); err != nil || since < 0 {
		err = forge.Errorf(forge.Invalid, "invalid %s %q: want a sequence number", param, from)
	}
	if err != nil {
		httpapi.WriteError(w, req, r.log, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream may stay open for hours
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n: registry events after %d\n\n", since)
	for {
		if err := rc.Flush(); err != nil {
			return
		}
		evs, err := r.Watch(ctx, since, watchBatch, streamHeartbeat)
		if err != nil {
			if ctx.Err() == nil {
				r.log.WarnContext(ctx, "registry event stream", "err", err)
			}
			return
		}
		if len(evs) == 0 {
			fmt.Fprint(w, ": keep-alive\n\n")
			continue
		}
		for _, e := range evs {
			data, _ := json.Marshal(eventOut(e))
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data)
			since = e.Seq
		}
	}
}
