package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ListArtifacts lists a run's artifacts under path ("" for the root), as
// MLflow's artifacts/list does: one level, folders marked.
func (c *Client) ListArtifacts(ctx context.Context, runID, path string) (ListArtifactsResponse, error) {
	var out ListArtifactsResponse
	q := url.Values{"run_id": {runID}}
	if path != "" {
		q.Set("path", path)
	}
	err := c.Do(ctx, http.MethodGet, mlflowAPI+"artifacts/list", q, nil, &out)
	return out, err
}

// OpenArtifact streams one artifact file of a run whose artifact root is
// rootURI (mlflow-artifacts:/EXP/RUN/artifacts, from ListArtifacts).
func (c *Client) OpenArtifact(ctx context.Context, rootURI, path string) (io.ReadCloser, error) {
	root, ok := strings.CutPrefix(rootURI, "mlflow-artifacts:")
	if !ok {
		return nil, fmt.Errorf("artifact root %q is not served by this server (want mlflow-artifacts:/...)", rootURI)
	}
	// mlflow-artifacts://host:port/path carries an authority; drop it.
	if rest, ok := strings.CutPrefix(root, "//"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			root = rest[i:]
		}
	}
	p := "/api/2.0/mlflow-artifacts/artifacts/" + escapePath(strings.Trim(root, "/")+"/"+strings.Trim(path, "/"))
	resp, err := c.Request(ctx, http.MethodGet, p, nil, nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
