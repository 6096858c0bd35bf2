package httpapi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/forge-mlops/forge"
)

// MLflow's error texts, in one place. Clients and users' scripts match on
// the words MLflow 2.12's server uses, so the MLflow routes say the same;
// each template is the text that server answers, seen on the wire.

const apiDocsHint = " See the API docs for more information about request parameters."

// Required returns an Invalid error in MLflow's words when value is empty.
func Required(name, value string) error {
	if value == "" {
		return MissingParam(name)
	}
	return nil
}

// MissingParam is MLflow's error for a required field left out or empty.
func MissingParam(name string) error {
	return forge.Errorf(forge.Invalid, "Missing value for required parameter '%s'.%s", name, apiDocsHint)
}

// InvalidParam is MLflow's error for a field of the wrong type: value is
// shown as Python prints it and pyType is Python's name of its type.
func InvalidParam(name, value, pyType string) error {
	return forge.Errorf(forge.Invalid, "Invalid value %s for parameter '%s' supplied. Hint: Value was of type '%s'.%s", value, name, pyType, apiDocsHint)
}

// RunNotFound is MLflow's error for an unknown run id.
func RunNotFound(id string) error {
	return forge.Errorf(forge.NotFound, "Run with id=%s not found", id)
}

// ExperimentNotFound is MLflow's error for an unknown experiment id (an id
// that is not a number too: MLflow answers 404 for it).
func ExperimentNotFound(id string) error {
	return forge.Errorf(forge.NotFound, "No Experiment with id=%s exists", id)
}

// ExperimentNameNotFound is MLflow's error for get-by-name of an unknown name.
func ExperimentNameNotFound(name string) error {
	return forge.Errorf(forge.NotFound, "Could not find experiment with name '%s'", name)
}

// ExperimentExists is MLflow's error for a second experiment of one name
// (MLflow adds the database's error; the stable part is this).
func ExperimentExists(name string) error {
	return forge.Errorf(forge.AlreadyExists, "Experiment(name=%s) already exists.", name)
}

// ModelNotFound is MLflow's error for an unknown registered model.
func ModelNotFound(name string) error {
	return forge.Errorf(forge.NotFound, "Registered Model with name=%s not found", name)
}

// ModelExists is MLflow's error for a second registered model of one name.
func ModelExists(name string) error {
	return forge.Errorf(forge.AlreadyExists, "Registered Model (name=%s) already exists.", name)
}

// VersionNotFound is MLflow's error for an unknown model version.
func VersionNotFound(name string, version int64) error {
	return forge.Errorf(forge.NotFound, "Model Version (name=%s, version=%d) not found", name, version)
}

// BadVersion is MLflow's error for a version that is not an integer.
func BadVersion(s string) error {
	return forge.Errorf(forge.Invalid, "Model version must be an integer, got '%s'", s)
}

// InvalidPath is MLflow's error for an artifact path that climbs out of its
// root or is absolute.
func InvalidPath() error { return forge.Errorf(forge.Invalid, "Invalid path") }

// LocalSourceRefused is MLflow's error for a model version source that is a
// local path with no run, or outside the run's artifact folder.
func LocalSourceRefused(source string) error {
	return forge.Errorf(forge.Invalid, "Invalid model version source: '%s'. To use a local path as a model version "+
		"source, the run_id request parameter has to be specified and the local path has to be "+
		"contained within the artifact directory of the run specified by the run_id.", source)
}

// RelativeSourceRefused is MLflow's error for a model version source with
// '..' (or '.') segments, or no absolute path.
func RelativeSourceRefused(source string) error {
	return forge.Errorf(forge.Invalid, "Invalid model version source: '%s'. If supplying a source as an http, https, "+
		"local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be "+
		"provided without relative path references present. Please provide an absolute path.", source)
}

// pyRepr prints a decoded JSON value the way Python's str() prints it, as
// MLflow's messages show values.
func pyRepr(v any, top bool) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		if top {
			return x
		}
		return "'" + x + "'"
	case []any:
		s := "["
		for i, e := range x {
			if i > 0 {
				s += ", "
			}
			s += pyRepr(e, false)
		}
		return s + "]"
	case map[string]any:
		s, i := "{", 0
		for k, e := range x {
			if i > 0 {
				s += ", "
			}
			s += "'" + k + "': " + pyRepr(e, false)
			i++
		}
		return s + "}"
	}
	return fmt.Sprint(v)
}

// SafePath checks an artifact path from a query string as MLflow's server
// does (validate_path_is_safe): percent-decoded until it no longer changes,
// it must hold no '#', no backslash, no '..' segment and not be absolute
// (a file: URI is read as its path). Anything else is "Invalid path".
func SafePath(p string) (string, error) {
	for {
		u, err := url.PathUnescape(p)
		if err != nil || u == p {
			break
		}
		p = u
	}
	if strings.HasPrefix(p, "file:") {
		p = strings.TrimPrefix(strings.TrimPrefix(p, "file:"), "//")
	}
	if strings.ContainsAny(p, "#\\\x00") || strings.HasPrefix(p, "/") || len(p) >= 2 && p[1] == ':' {
		return "", InvalidPath()
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", InvalidPath()
		}
	}
	return p, nil
}

// BadStage is MLflow's error for a stage that is not one of the four.
func BadStage(s string) error {
	return forge.Errorf(forge.Invalid, "Invalid Model Version stage: %s. Value must be one of None, Staging, Production, Archived.", s)
}
