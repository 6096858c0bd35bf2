package local

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
)

var lineRx = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \[3\] (.*)$`)

// chunks reads the given pieces one per Read, as a pipe hands out what a
// writer wrote.
type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	if n < len(c.parts[0]) {
		c.parts[0] = c.parts[0][n:]
	} else {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestCopyLines(t *testing.T) {
	long := strings.Repeat("y", 600<<10)
	var out bytes.Buffer
	copyLines(&out, &chunks{[]string{"one\ntw", "o\n", "\nthree", "\n" + long + "tail"}}, "[3]")
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		m := lineRx.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %.80q is not TIMESTAMP [3] TEXT", line)
		}
		got = append(got, m[1])
	}
	want := []string{"one", "two", "", "three"}
	if len(got) < len(want)+2 {
		t.Fatalf("got %d lines, want %v and the long line in pieces", len(got), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	// A long line is cut (at a read past 64 KiB), so that a shim's memory stays bounded.
	if rest := strings.Join(got[len(want):], ""); rest != long+"tail" {
		t.Errorf("the long line's pieces make %d bytes, want %d", len(rest), len(long)+4)
	}
}

// BenchmarkCopyLines is the shim's work for 100-byte lines, read 64 KiB at
// a time as from a full pipe.
func BenchmarkCopyLines(b *testing.B) {
	block := strings.Repeat(strings.Repeat("x", 99)+"\n", 64<<10/100)
	b.SetBytes(int64(len(block)) * 64)
	for b.Loop() {
		parts := make([]string, 64)
		for i := range parts {
			parts[i] = block
		}
		copyLines(io.Discard, &chunks{parts}, "[0]")
	}
}
