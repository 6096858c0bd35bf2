package monitor

import (
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Window
	}{
		{"", Window{Duration: time.Hour}},
		{"1h", Window{Duration: time.Hour}},
		{"90m", Window{Duration: 90 * time.Minute}},
		{"10000rows", Window{Rows: 10000}},
		{"1 row", Window{Rows: 1}},
	} {
		got, err := ParseWindow(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseWindow(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "0rows", "-1h", "0s", "10000", "rows", "1e9999rows"} {
		if _, err := ParseWindow(bad); err == nil || !strings.Contains(err.Error(), "invalid window") {
			t.Errorf("ParseWindow(%q): %v, want an invalid window error", bad, err)
		}
	}
	for w, want := range map[Window]string{{Rows: 500}: "500rows", {Duration: time.Hour}: "1h", {Duration: 90 * time.Minute}: "1h30m",
		{Duration: 30 * time.Minute}: "30m", {Duration: 90 * time.Second}: "1m30s", {Duration: 2 * time.Second}: "2s"} {
		if s := w.String(); s != want {
			t.Errorf("%+v.String() = %q, want %q", w, s, want)
		}
	}
}
