package api

import (
	"io"
	"os"
)

// Progress hears how a transfer goes: done bytes so far of total (-1 when
// not known). It may be called from another goroutine than the caller's.
type Progress func(done, total int64)

// progressReader calls fn as bytes are read from r.
type progressReader struct {
	r           io.Reader
	done, total int64
	fn          Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.fn(p.done, p.total)
	}
	return n, err
}

// sizedReader is a body whose length is known though its type does not
// tell it: Request sends it as the Content-Length.
type sizedReader struct {
	io.Reader
	n int64
}

// sizeOf is the length of what r will read, if r can tell (a
// bytes.Reader, a file, anything with Size), or -1.
func sizeOf(r io.Reader) int64 {
	switch s := r.(type) {
	case interface{ Len() int }:
		return int64(s.Len())
	case interface{ Stat() (os.FileInfo, error) }:
		if st, err := s.Stat(); err == nil && st.Mode().IsRegular() {
			return st.Size()
		}
	case interface{ Size() int64 }:
		return s.Size()
	}
	return -1
}
