package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Drainer serves an http.Server and stops it in the order that loses no
// request on a keep-alive connection. http.Server.Shutdown alone closes
// the connections that are idle between two requests at once, and a
// client that sent its next request on one at that moment sees a reset;
// Drainer first stops accepting, then answers the next request on every
// open connection with "Connection: close", so that the server closes it
// after a whole answer and the client knows not to reuse it, and only then
// shuts down what is left: connections no client used meanwhile.
type Drainer struct {
	srv     *http.Server
	ln      net.Listener
	stopped atomic.Bool // the listener is closed
	closing atomic.Bool // answers say "Connection: close"

	mu   sync.Mutex
	open map[net.Conn]http.ConnState
}

// closeWindow bounds how long Shutdown waits for every open connection to
// carry one more answer before it closes those left idle.
const closeWindow = time.Second

// NewDrainer prepares srv to be served on ln. It wraps srv.Handler and
// chains srv.ConnState, so call it once srv is set up, before Serve.
func NewDrainer(srv *http.Server, ln net.Listener) *Drainer {
	d := &Drainer{srv: srv, ln: &onceCloseListener{Listener: ln}, open: map[net.Conn]http.ConnState{}}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.closing.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
	hook := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		d.mu.Lock()
		if st == http.StateClosed || st == http.StateHijacked {
			delete(d.open, c)
		} else {
			d.open[c] = st
		}
		d.mu.Unlock()
		if hook != nil {
			hook(c, st)
		}
	}
	return d
}

// Serve serves until Shutdown, which makes it return http.ErrServerClosed.
func (d *Drainer) Serve() error {
	err := d.srv.Serve(d.ln)
	if d.stopped.Load() {
		return http.ErrServerClosed
	}
	return err
}

// Shutdown stops accepting, lets every open connection finish its request
// and carry one more answer (with "Connection: close") for up to a second,
// then shuts the server down, waiting for requests still in flight until
// ctx ends; past that it closes what is left and returns ctx's error.
// Readiness should say no before Shutdown, long enough for load balancers
// to stop sending new connections: those that reach a closed listener are
// refused, not reset.
func (d *Drainer) Shutdown(ctx context.Context) error {
	// The listener closes before any answer says "Connection: close", so
	// that a client told to reconnect is refused, never queued on a
	// listener about to close (which resets what is queued).
	d.stopped.Store(true)
	lnErr := d.ln.Close()
	d.closing.Store(true)
	window := time.NewTimer(closeWindow)
	defer window.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for d.openConns() > 0 {
		select {
		case <-tick.C:
		case <-window.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if err := d.srv.Shutdown(ctx); err != nil {
		d.srv.Close()
		return err
	}
	if errors.Is(lnErr, net.ErrClosed) {
		lnErr = nil
	}
	return lnErr
}

func (d *Drainer) openConns() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.open)
}

// onceCloseListener lets both Shutdown and http.Server close the listener.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
