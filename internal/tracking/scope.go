package tracking

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/auth"
)

// A job's token may write only to the job's own run. The routes that write
// to one run are declared httpapi.WriteRun, which lets such a token past
// the edge; the checks below, in every one of their handlers, hold it to
// its run.

// writeRunID is runID for a write: the request must also be let write to
// the run (a job's token writes only its own).
func writeRunID(r *http.Request, id, uuid string) (string, error) {
	id, err := runID(id, uuid)
	if err != nil {
		return "", err
	}
	return id, auth.MayWriteRun(r.Context(), id)
}

// mayWriteArtifact is nil when the request may write the artifact at p:
// any, unless it came with a job's token, which writes only under its
// run's artifact root.
func (a *API) mayWriteArtifact(r *http.Request, p string) error {
	scoped := auth.ScopedRun(r.Context())
	if scoped == "" {
		return nil
	}
	p, err := CleanPath(p)
	if err != nil {
		return err
	}
	run, err := a.store.GetRun(r.Context(), scoped)
	if err != nil {
		return fmt.Errorf("find the run of the job's token: %w", err)
	}
	root, err := RunArtifactRoot(run.ArtifactURI)
	if err != nil {
		return err
	}
	if p != root && !strings.HasPrefix(p, root+"/") {
		return forge.Errorf(forge.Forbidden, "token %q is a job's token: it may write only the artifacts of its own run %s (under %s), not %s",
			auth.TokenName(r.Context()), scoped, root, p)
	}
	return nil
}
