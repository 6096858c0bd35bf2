package httpapi

import "testing"

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		spec       string
		off, n     int64
		ok, hasErr bool
	}{
		{"bytes=0-0", 0, 1, true, false},
		{"bytes=10-19", 10, 10, true, false},
		{"bytes=90-", 90, 10, true, false},
		{"bytes=90-500", 90, 10, true, false},
		{"bytes=-5", 95, 5, true, false},
		{"bytes=-500", 0, 100, true, false},
		{"bytes=100-", 0, 0, false, true},
		{"bytes=-0", 0, 0, false, true},
		{"bytes=0-1,5-6", 0, 0, false, false}, // several: served whole
		{"items=0-1", 0, 0, false, false},
		{"bytes=5-1", 0, 0, false, false},
		{"bytes=x-1", 0, 0, false, false},
	} {
		off, n, ok, err := parseRange(c.spec, 100)
		if off != c.off || n != c.n || ok != c.ok || (err != nil) != c.hasErr {
			t.Errorf("%s: off %d n %d ok %v err %v, want %d %d %v err %v", c.spec, off, n, ok, err, c.off, c.n, c.ok, c.hasErr)
		}
	}
}
