package registry

import (
	"context"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// checkSource refuses the version sources MLflow's server refuses for
// safety, with its words: a local path (no scheme, or file:) unless it lies
// in the artifact folder of the run given as run_id, which Forge's runs,
// whose artifacts are proxied, never have; and a source whose path is not
// absolute or has '.' or '..' segments, however often percent-encoded
// (mlflow-artifacts://host/models/../../../, http://host/a/%2e%2e/).
func (r *Registry) checkSource(ctx context.Context, source, runID string) error {
	if scheme := uriScheme(source); scheme == "" || scheme == "file" {
		if runID != "" {
			if r.runs == nil {
				return httpapi.RunNotFound(runID)
			}
			if _, err := r.runs.ListRunArtifacts(ctx, runID, ""); forge.KindOf(err) == forge.NotFound {
				return httpapi.RunNotFound(runID)
			}
			// MLflow shows the resolved local path once a run is given.
			p := strings.TrimPrefix(strings.TrimPrefix(source, "file:"), "//")
			source = path.Clean("/" + strings.TrimPrefix(p, "/"))
		}
		return httpapi.LocalSourceRefused(source)
	}
	if !absoluteClean(source) {
		return httpapi.RelativeSourceRefused(source)
	}
	return nil
}

// uriScheme is the scheme of s as Python's urlparse reads it, lower case;
// "" when s has none.
func uriScheme(s string) string {
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return ""
	}
	for j, c := range s[:i] {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return ""
		}
	}
	return strings.ToLower(s[:i])
}

var slashes = regexp.MustCompile(`/+`)

// absoluteClean says whether the path of URI s, percent-decoded until it no
// longer changes, is absolute and already clean, as MLflow requires.
func absoluteClean(s string) bool {
	for {
		u, err := url.QueryUnescape(s)
		if err != nil || u == s {
			break
		}
		s = u
	}
	p := s
	if scheme := uriScheme(s); scheme != "" {
		p = s[len(scheme)+1:]
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if rest, ok := strings.CutPrefix(p, "//"); ok { // the authority
		p = ""
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			p = rest[i:]
		}
	}
	p = strings.TrimRight(slashes.ReplaceAllString(p, "/"), "/")
	if strings.ContainsRune(p, 0) {
		return false
	}
	return strings.HasPrefix(p, "/") && path.Clean(p) == p
}
