package names

import (
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
