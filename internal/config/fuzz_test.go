package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadFile: any file either loads or is refused with an error that
// names the file; it never panics.
func FuzzLoadFile(f *testing.F) {
	for _, s := range []string{
		"", "data_dir: /var/lib/forge\n", "http:\n  addr: :7700\n  read_timeout: 30s\n",
		"executors:\n  - name: local\n    kind: local\n", "unknown: 1\n", "http: [1, 2\n", "\t- x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "forge.yaml")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c := Default()
		c.LoadFile(p)
	})
}
