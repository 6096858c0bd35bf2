// Package version says which Forge this is.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X .../internal/version.Version=v1.2.3".
var Version = "0.1.0-dev"

// MLflowCompat is the MLflow REST API version Forge answers as.
const MLflowCompat = "2.12.2"

// commit is set at build time by `make build` and scripts/quickstart.sh with
// -ldflags "-X github.com/forge-mlops/forge/internal/version.commit=REV":
// a build outside a Git checkout, or with -buildvcs=false, has no VCS
// settings for Commit to read.
var commit string

// Commit returns the VCS revision the binary was built from, if known: the
// one stamped at build time, else the toolchain's vcs.revision.
func Commit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty && rev != "" {
		rev += "-dirty"
	}
	return rev
}
