package names

import (
	"regexp"
	"testing"

	"github.com/forge-mlops/forge"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"churn", "Expérience 1", "模型-v2", "a.b_c d"} {
		if err := Check("name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
		if err := CheckModel("model name", ok); err != nil {
			t.Errorf("model %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"a\x00b", "a\xffb", "evil\u202egnp.exe", "x\u2066y", "tab\there", "line\nbreak"} {
		if err := Check("name", bad); !forge.IsKind(err, forge.Invalid) {
			t.Errorf("%q: %v, want invalid", bad, err)
		}
	}
	for _, bad := range []string{"m@1", "a/b"} {
		if err := CheckModel("model name", bad); !forge.IsKind(err, forge.Invalid) {
			t.Errorf("model %q: %v, want invalid", bad, err)
		}
	}
}

func TestReadable(t *testing.T) {
	seen := map[string]bool{}
	for n := range uint64(5000) {
		name := Readable(n * 2654435761)
		if !readableRx.MatchString(name) {
			t.Fatalf("Readable(%d) = %q, want adjective-noun-number", n, name)
		}
		seen[name] = true
	}
	// 32 adjectives x 32 nouns x 1000 numbers: 5,000 draws rarely repeat.
	if len(seen) < 4900 {
		t.Errorf("%d distinct names in 5000 draws", len(seen))
	}
	if Readable(42) != Readable(42) {
		t.Error("Readable is not a function of its argument")
	}
}

var readableRx = regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]{1,3}$`)
