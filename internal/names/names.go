// Package names is the one check of the names people give things in Forge
// (experiments, runs, registered models, datasets, deployments): text that
// shows as it is stored, so no NUL or other control characters, no invalid
// UTF-8, and no bidirectional controls that make a name read as another.
package names

import (
	"strings"
	"unicode/utf8"

	"github.com/forge-mlops/forge"
)

// Check returns an Invalid error naming what (e.g. "experiment name") when
// name holds a character no name may hold. Emptiness and length are the
// caller's rules.
func Check(what, name string) error {
	if !utf8.ValidString(name) {
		return forge.Errorf(forge.Invalid, "%s %q is not valid UTF-8", what, name)
	}
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return forge.Errorf(forge.Invalid, "%s %q contains the control character %U", what, name, r)
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return forge.Errorf(forge.Invalid, "%s %q contains the bidirectional control %U", what, name, r)
		}
	}
	return nil
}

// CheckModel is Check for a registered model's name, which is also a path
// segment and the NAME in NAME@VERSION: no '/' and no '@'.
func CheckModel(what, name string) error {
	if err := Check(what, name); err != nil {
		return err
	}
	if i := strings.IndexAny(name, "/@"); i >= 0 {
		return forge.Errorf(forge.Invalid, "%s %q cannot contain '%c'", what, name, name[i])
	}
	return nil
}
