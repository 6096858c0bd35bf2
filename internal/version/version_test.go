package version

import (
	"os"
	"strings"
	"testing"
)

// TestCommitStamped: the commit given to the linker wins over build info.
func TestCommitStamped(t *testing.T) {
	defer func(old string) { commit = old }(commit)
	commit = "0123456789ab"
	if got := Commit(); got != "0123456789ab" {
		t.Errorf("Commit() = %q, want the stamped 0123456789ab", got)
	}
}

// TestBuildsStampCommit: the two ways the README builds forge pass the
// commit to the linker, under this package's variable name.
func TestBuildsStampCommit(t *testing.T) {
	const flag = "-X github.com/forge-mlops/forge/internal/version.commit="
	for _, f := range []string{"../../Makefile", "../../scripts/quickstart.sh"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), flag) {
			t.Errorf("%s does not build with %s", f, flag)
		}
	}
}
