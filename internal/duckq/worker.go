package duckq

import (
	"bufio"
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/forge-mlops/forge"
)

// A user's query can make DuckDB allocate far past its memory_limit inside
// one chunk of work (repeat('x', 10000000) over 2048 rows is 20 GB), where
// neither the limit nor an interrupt reaches it. With EngineOptions.Isolate
// such queries run in worker processes: the same binary started again with
// workerEnv set, bounded by the operating system (RLIMIT_DATA), so that an
// allocation past the bound fails inside DuckDB, which reports it as out of
// memory, and a deadline is kept by killing the process.
//
// The worker is entered from this package's init, before main or TestMain
// run, so that every binary that links duckq (forge, and the tests of any
// package that starts a server) can serve as its own worker.
const workerEnv = "FORGE_DUCKQ_WORKER"

func init() {
	// The value types Rows.Values gives, as gob must know them inside []any.
	gob.Register(time.Time{})
	gob.Register([]any{})
	gob.Register(map[string]any{})
	if os.Getenv(workerEnv) == "1" {
		os.Exit(serveWorker(os.Stdin, os.Stdout))
	}
}

// workerHello is the first message a worker writes, so that a binary that
// does not know the protocol (it would print something else, or nothing) is
// noticed and killed instead of being waited for.
const workerHello = "forge-duckq-worker/1"

// workerSetup is the first message the engine sends: the bounds of the
// worker's one DuckDB instance.
type workerSetup struct {
	Memory    string // DuckDB's memory_limit for the instance
	TempDir   string
	DataLimit uint64 // RLIMIT_DATA of the process, bytes; 0: none
}

// workerRequest is one query.
type workerRequest struct {
	Query   string
	Tables  map[string]string
	Limit   int
	Threads int // the engine's slot's threads; 0: DuckDB's default
}

// workerReply is one message of a query's answer: first Columns (or Err),
// then Rows in batches, and last Done with Truncated (or Err).
type workerReply struct {
	Hello     string
	Columns   []Column
	Rows      [][]any
	Done      bool
	Truncated bool
	Err       *workerError
}

type workerError struct {
	Kind forge.Kind
	Msg  string
}

func (e *workerError) err() error {
	if e.Kind == forge.Internal {
		return fmt.Errorf("%s", e.Msg)
	}
	return forge.Errorf(e.Kind, "%s", e.Msg)
}

func toWorkerError(err error) *workerError {
	if forge.KindOf(err) == forge.Internal {
		return &workerError{Kind: forge.Internal, Msg: err.Error()}
	}
	return &workerError{Kind: forge.KindOf(err), Msg: forge.Message(err)}
}

// workerBatch is how many rows a worker sends in one message.
const workerBatch = 256

// serveWorker answers queries read from in until it is closed, and returns
// the process's exit code.
func serveWorker(in io.Reader, out io.Writer) int {
	bw := bufio.NewWriter(out)
	enc := gob.NewEncoder(bw)
	dec := gob.NewDecoder(bufio.NewReader(in))
	send := func(r workerReply) error {
		if err := enc.Encode(r); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := send(workerReply{Hello: workerHello}); err != nil {
		return 1
	}
	var setup workerSetup
	if err := dec.Decode(&setup); err != nil {
		return 1
	}
	if setup.DataLimit > 0 {
		lim := &syscall.Rlimit{Cur: setup.DataLimit, Max: setup.DataLimit}
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, lim); err != nil {
			fmt.Fprintln(os.Stderr, "duckdb worker: limit memory:", err)
			return 1
		}
	}
	eng := &Engine{opts: EngineOptions{TempDir: setup.TempDir},
		budget: &budget{slots: make(chan struct{}, 1), memory: setup.Memory}}
	defer eng.Close()
	for {
		var req workerRequest
		if err := dec.Decode(&req); err != nil {
			return 0 // the engine closed the pipe: it is done with this worker
		}
		// The engine's budget gave the query its threads; this process runs
		// one query at a time.
		eng.budget.threads, eng.budget.total = req.Threads, req.Threads
		if err := answer(eng, req, send); err != nil {
			// The pipe broke (the engine is gone or gave up on us), or a
			// value could not be encoded.
			fmt.Fprintln(os.Stderr, "duckdb worker:", err)
			return 1
		}
	}
}

// answer runs one query and sends its result; the error is the pipe's.
// The instance is closed before the last message, so that the engine,
// once it has read it, may give the memory's slot to another query.
func answer(eng *Engine, req workerRequest, send func(workerReply) error) error {
	rows, err := eng.Query(context.Background(), req.Query, req.Tables, req.Limit)
	if err != nil {
		return send(workerReply{Err: toWorkerError(err)})
	}
	end, err := stream(rows, send)
	rows.Close()
	if err != nil {
		return err
	}
	return send(end)
}

// stream sends the columns and the rows but the last batch, which it
// returns in the closing message; the error is the pipe's.
func stream(rows *Rows, send func(workerReply) error) (workerReply, error) {
	if err := send(workerReply{Columns: rows.Columns}); err != nil {
		return workerReply{}, err
	}
	batch := make([][]any, 0, workerBatch)
	for rows.Next() {
		batch = append(batch, wireValues(rows.Values()))
		if len(batch) == workerBatch {
			if err := send(workerReply{Rows: batch}); err != nil {
				return workerReply{}, err
			}
			batch = batch[:0]
		}
	}
	end := workerReply{Rows: batch, Done: true, Truncated: rows.Truncated()}
	if err := rows.Err(); err != nil {
		end.Err = toWorkerError(err)
	}
	return end, nil
}

// wireValues copies a row (Values reuses its slice) into types gob carries;
// a value of a type it does not know is sent as its text.
func wireValues(vals []any) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = wireValue(v)
	}
	return out
}

func wireValue(v any) any {
	switch x := v.(type) {
	case nil, bool, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint,
		float32, float64, string, []byte, time.Time:
		return v
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = wireValue(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = wireValue(e)
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = wireValue(e)
		}
		return out
	}
	return fmt.Sprint(v)
}
