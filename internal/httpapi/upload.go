package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/forge-mlops/forge"
)

// ErrClientGone marks an error caused by the client going away before it
// was answered (a closed connection in the middle of its body). WriteError
// answers it with 499, nginx's "client closed request", so the access log
// and the metrics tell it from a server fault.
var ErrClientGone = errors.New("the client closed the connection")

// UploadDeadlines replaces the server's fixed read and write timeouts, for
// one request, with deadlines that move with progress: the request may take
// as long as it needs while bytes keep arriving, but not idle without one
// byte for longer than idle; the response may be written until write after
// the last byte came. A 16 GiB upload over a slow link is honest work; one
// that stalls is cut with a forge.Invalid error saying so.
func UploadDeadlines(idle, write time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		if idle <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := &progressReader{body: r.Body, rc: http.NewResponseController(w), idle: idle, write: write}
			p.extend(time.Now())
			r.Body = p
			next.ServeHTTP(w, r)
		})
	}
}

type progressReader struct {
	body        io.ReadCloser
	rc          *http.ResponseController
	idle, write time.Duration
	extended    time.Time // when the deadlines were last moved
}

// extend moves the deadlines on from now. Errors are ignored: a writer
// that cannot set deadlines (a test recorder) has none to move.
func (p *progressReader) extend(now time.Time) {
	p.extended = now
	p.rc.SetReadDeadline(now.Add(p.idle))
	if p.write > 0 {
		p.rc.SetWriteDeadline(now.Add(p.write))
	}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	if n > 0 {
		// Moving the deadline costs a timer reset; a few times per idle
		// period is enough.
		if now := time.Now(); now.Sub(p.extended) > p.idle/8 {
			p.extend(now)
		}
	}
	switch {
	case err == nil || err == io.EOF:
		return n, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, forge.WrapError(forge.Invalid, err, "the upload stalled: no data for %s", p.idle)
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return n, err
	}
	return n, fmt.Errorf("%w: %w", ErrClientGone, err)
}

func (p *progressReader) Close() error { return p.body.Close() }
