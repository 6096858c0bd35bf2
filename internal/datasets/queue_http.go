package datasets

import (
	"io"
	"net/http"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// queueRoutes are the parts of the datasets API for message queues: a
// version read from a topic or stream by the server, its offsets and dead
// letters, and the follows.
func (a *API) queueRoutes() []httpapi.Route {
	j := func(h httpapi.HandlerFunc) http.Handler { return httpapi.JSON(a.log, h) }
	return []httpapi.Route{
		{Pattern: "POST " + prefix + "/datasets/{name}/ingest", Handler: j(a.ingest), Access: httpapi.Write,
			Summary: "Read a range of a Kafka topic or NATS JetStream stream into the next version"},
		{Pattern: "GET " + prefix + "/datasets/{name}/versions/{version}/dead-letters", Handler: http.HandlerFunc(a.deadLetters), Access: httpapi.Read,
			Summary: "The messages of a queue version that could not be rows, as JSON lines"},
		{Pattern: "GET " + prefix + "/dataset-follows", Handler: j(a.follows), Access: httpapi.Read, Summary: "List the follows"},
		{Pattern: "POST " + prefix + "/dataset-follows", Handler: j(a.addFollow), Access: httpapi.Write,
			Summary: "Follow a topic or stream: cut a new version on a schedule"},
		{Pattern: "DELETE " + prefix + "/dataset-follows/{name}", Handler: j(a.removeFollow), Access: httpapi.Write, Summary: "Stop following"},
	}
}

func (a *API) ingest(r *http.Request) (any, error) {
	var req IngestRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return nil, err
	}
	if req.Source == "" && !req.Continue {
		return nil, forge.Errorf(forge.Invalid, "source is required: kafka://BROKER/TOPIC or nats://HOST:PORT/STREAM")
	}
	req.CreatedBy = a.creator(r)
	return a.svc.Ingest(r.Context(), r.PathValue("name"), req)
}

func (a *API) deadLetters(w http.ResponseWriter, r *http.Request) {
	v, rc, err := a.svc.DeadLetters(r.Context(), ref(r))
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Forge-Dataset", v.Ref())
	io.Copy(w, rc)
}

// FollowRequest is the body of POST /api/forge/v1/dataset-follows.
type FollowRequest struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Every  string `json:"every"` // 10m or 100000rows
	Schema string `json:"schema,omitempty"`
}

func (a *API) addFollow(r *http.Request) (any, error) {
	var req FollowRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return nil, err
	}
	ms, rows, err := ParseEvery(req.Every)
	if err != nil {
		return nil, err
	}
	f, err := a.svc.AddFollow(r.Context(), Follow{Name: req.Name, Source: req.Source, EveryMS: ms, EveryRows: rows, Schema: req.Schema, CreatedBy: a.creator(r)})
	if err != nil {
		return nil, err
	}
	return map[string]any{"follow": f}, nil
}

func (a *API) follows(r *http.Request) (any, error) {
	fs, err := a.svc.Follows(r.Context())
	return map[string]any{"follows": fs}, err
}

func (a *API) removeFollow(r *http.Request) (any, error) {
	return nil, a.svc.RemoveFollow(r.Context(), r.PathValue("name"))
}
