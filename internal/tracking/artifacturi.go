package tracking

import (
	"path/filepath"
	"strings"

	"github.com/forge-mlops/forge"
)

// AbsoluteArtifactURI makes a local artifact location absolute, as MLflow
// does for an experiment's artifact_location: a bare relative path is
// joined to dir (the working directory when empty) and stays a path; a
// relative file: URI becomes file:///ABSOLUTE. Other URIs pass unchanged.
func AbsoluteArtifactURI(loc, dir string) (string, error) {
	scheme := ""
	if i := strings.IndexByte(loc, ':'); i > 1 && !strings.ContainsAny(loc[:i], "/\\") {
		scheme = strings.ToLower(loc[:i])
	}
	if scheme != "" && scheme != "file" {
		return loc, nil
	}
	p := loc
	if scheme == "file" {
		p = strings.TrimPrefix(loc[len("file:"):], "//")
		if !strings.HasPrefix(p, "/") && strings.HasPrefix(loc, "file://") {
			// file://host/path: MLflow accepts only a local host.
			host, rest, _ := strings.Cut(p, "/")
			if host != "" && host != "localhost" && host != "127.0.0.1" {
				return "", forge.Errorf(forge.Invalid, "%s is not a valid remote uri. For remote access on windows, please consider using a different scheme such as SMB (e.g. smb://<hostname>/<path>).", loc)
			}
			p = "/" + rest
		}
	}
	if !filepath.IsAbs(p) {
		if dir == "" {
			var err error
			if dir, err = filepath.Abs("."); err != nil {
				return "", err
			}
		}
		p = filepath.Join(dir, p)
	}
	if scheme == "file" {
		return "file://" + filepath.ToSlash(p), nil
	}
	return p, nil
}
