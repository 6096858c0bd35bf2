package sweep

import (
	"log/slog"
	"net/http"

	"github.com/forge-mlops/forge/internal/httpapi"
)

// Detail is a sweep with its trials, best first, and the best one.
type Detail struct {
	Sweep
	Best   *Trial  `json:"best,omitempty"`
	Trials []Trial `json:"trials"`
}

func (s *Service) detail(r *http.Request, sw Sweep, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	_, ts, err := s.Get(r.Context(), sw.Name)
	if err != nil {
		return nil, err
	}
	d := Detail{Sweep: sw, Trials: Sorted(sw.Spec, ts)}
	if d.Trials == nil {
		d.Trials = []Trial{}
	}
	if b, ok := bestTrial(sw.Spec, ts); ok {
		d.Best = &b
	}
	return d, nil
}

// Routes are the sweeps API:
//
//	POST /api/forge/v1/sweeps               create and start a Spec
//	GET  /api/forge/v1/sweeps               list, newest first
//	GET  /api/forge/v1/sweeps/{name}        one sweep, its trials best first
//	POST /api/forge/v1/sweeps/{name}/stop   stop it, cancelling trials in flight
//	POST /api/forge/v1/sweeps/{name}/resume continue a stopped sweep
func (s *Service) Routes(log *slog.Logger) []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "POST /api/forge/v1/sweeps", Access: httpapi.Write, Body: httpapi.BodyAPI, Summary: "Create and start a hyperparameter sweep",
			Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
				var spec Spec
				if err := httpapi.Decode(r, &spec); err != nil {
					return nil, err
				}
				sw, err := s.Create(r.Context(), spec)
				return s.detail(r, sw, err)
			})},
		{Pattern: "GET /api/forge/v1/sweeps", Access: httpapi.Read, Body: httpapi.BodyAPI, Summary: "List sweeps",
			Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
				list, err := s.List(r.Context())
				if list == nil {
					list = []Sweep{}
				}
				return map[string]any{"sweeps": list}, err
			})},
		{Pattern: "GET /api/forge/v1/sweeps/{name}", Access: httpapi.Read, Body: httpapi.BodyAPI, Summary: "A sweep with its trials, best first",
			Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
				sw, err := s.st.get(r.Context(), r.PathValue("name"))
				return s.detail(r, sw, err)
			})},
		{Pattern: "POST /api/forge/v1/sweeps/{name}/stop", Access: httpapi.Write, Body: httpapi.BodyAPI, Summary: "Stop a sweep, cancelling its running trials",
			Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
				sw, err := s.Stop(r.Context(), r.PathValue("name"))
				return s.detail(r, sw, err)
			})},
		{Pattern: "POST /api/forge/v1/sweeps/{name}/resume", Access: httpapi.Write, Body: httpapi.BodyAPI, Summary: "Resume a stopped sweep",
			Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
				sw, err := s.Resume(r.Context(), r.PathValue("name"))
				return s.detail(r, sw, err)
			})},
	}
}
