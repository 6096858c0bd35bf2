package duckq

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	"github.com/duckdb/duckdb-go/v2"
)

// errClosed is what an open gets after the engine's Close.
var errClosed = errors.New("the query engine is closed")

// instance is a DuckDB instance whose per-connection setup (memory and
// thread share, sandbox) is chosen when it is taken into use.
type instance struct {
	connector *duckdb.Connector
	ctx       context.Context
	setup     []string
}

func newInstance() (*instance, error) {
	in := &instance{}
	c, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		for _, stmt := range in.setup {
			if _, err := execer.ExecContext(in.ctx, stmt, nil); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	in.connector = c
	return in, nil
}

// spares keeps one DuckDB instance made ahead, not yet configured: making
// an instance costs about 10 ms, a good part of a small query, and taking
// the spare moves that off the query's path. The spare is outside the
// budget: an instance that has run nothing holds a few MB and idle threads.
type spares struct {
	mu     sync.Mutex
	spare  *instance
	making bool // a goroutine is making the next spare
	closed bool
	wg     sync.WaitGroup
}

// take returns the spare instance, or a new one when there is none, and
// starts making the next spare.
func (s *spares) take() (*instance, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	in := s.spare
	s.spare = nil
	if !s.making {
		s.making = true
		s.wg.Add(1)
		go s.make()
	}
	s.mu.Unlock()
	if in != nil {
		return in, nil
	}
	return newInstance()
}

// make makes the next spare. On an error there is none; the next take makes
// its own instance and reports the error.
func (s *spares) make() {
	defer s.wg.Done()
	next, err := newInstance()
	s.mu.Lock()
	s.making = false
	if err == nil && !s.closed && s.spare == nil {
		s.spare, next = next, nil
	}
	s.mu.Unlock()
	if next != nil {
		next.connector.Close()
	}
}

// close frees the spare and waits for the one being made.
func (s *spares) close() error {
	s.mu.Lock()
	s.closed = true
	in := s.spare
	s.spare = nil
	s.mu.Unlock()
	s.wg.Wait()
	if in != nil {
		return in.connector.Close()
	}
	return nil
}
