package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name, link string
	flag       byte
	body       string
	size       int64 // header size when it differs from len(body)
}

func archive(t testing.TB, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.flag, Mode: 0o644, Size: int64(len(e.body))}
		if e.flag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.body != "" {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestExtractRefusesEscapes(t *testing.T) {
	cases := map[string][]entry{
		"symlink dir then file under it": {
			{name: "out", link: "../outside", flag: tar.TypeSymlink},
			{name: "out/pwned", body: "x"},
		},
		"file under an inside symlink": {
			{name: "d", flag: tar.TypeDir},
			{name: "l", link: "d", flag: tar.TypeSymlink},
			{name: "l/f", body: "x"},
		},
		"symlink to file then same name": {
			{name: "f", link: "../outside/target", flag: tar.TypeSymlink},
			{name: "f", body: "x"},
		},
		"same name twice":  {{name: "f", body: "a"}, {name: "f", body: "b"}},
		"absolute symlink": {{name: "l", link: "/etc/passwd", flag: tar.TypeSymlink}},
		"absolute name":    {{name: "/tmp/x", body: "x"}},
		"dot dot name":     {{name: "a/../../x", body: "x"}},
		"hard link":        {{name: "f", body: "x"}, {name: "h", link: "f", flag: tar.TypeLink}},
		"link through link": {
			{name: "b", link: ".", flag: tar.TypeSymlink},
			{name: "a", link: "b/..", flag: tar.TypeSymlink},
		},
		"device": {{name: "dev", flag: tar.TypeChar}},
	}
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "code")
			os.Mkdir(dst, 0o755)
			os.Mkdir(filepath.Join(parent, "outside"), 0o755)
			os.WriteFile(filepath.Join(parent, "outside", "target"), []byte("keep"), 0o644)
			b := archive(t, ents...)
			if err := Validate(bytes.NewReader(b)); !IsInvalid(err) {
				t.Fatalf("Validate: %v, want an invalid bundle", err)
			}
			err := Extract(bytes.NewReader(b), dst)
			if !IsInvalid(err) || !strings.HasPrefix(err.Error(), "invalid bundle: ") {
				t.Fatalf("Extract: %v, want an invalid bundle", err)
			}
			got, _ := os.ReadFile(filepath.Join(parent, "outside", "target"))
			if string(got) != "keep" {
				t.Fatalf("target outside was overwritten: %q", got)
			}
			if ents, _ := os.ReadDir(filepath.Join(parent, "outside")); len(ents) != 1 {
				t.Fatalf("something was written outside: %v", ents)
			}
		})
	}
}

func TestExtractCapsExpandedBytes(t *testing.T) {
	// A header claiming more than the cap is refused before any byte is read.
	b := archive(t, entry{name: "big", size: MaxExpandedBytes + 1})
	if err := Validate(bytes.NewReader(b)); !IsInvalid(err) || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("Validate: %v", err)
	}
}

func TestExtractKeepsInsideLinks(t *testing.T) {
	dst := t.TempDir()
	b := archive(t,
		entry{name: "src/a.py", body: "print(1)"},
		entry{name: "link.py", link: "src/a.py", flag: tar.TypeSymlink},
		entry{name: "src/up", link: "../link.py", flag: tar.TypeSymlink},
	)
	if err := Extract(bytes.NewReader(b), dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "src", "up"))
	if err != nil || string(got) != "print(1)" {
		t.Fatalf("read through links: %q %v", got, err)
	}
}
