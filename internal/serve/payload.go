package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
)

// Datasets is what payload logging needs of the datasets service.
type Datasets interface {
	Add(ctx context.Context, name string, r io.Reader, info datasets.AddInfo) (datasets.Version, bool, error)
}

// PayloadOptions configures payload logging: a sample of requests and their
// responses, one row per request row with every tensor element in its own
// column, appended to a dataset per model (a new version each flush), so
// `forge data diff` can compare what a model sees over time.
type PayloadOptions struct {
	Datasets Datasets
	Engine   *duckq.Engine
	// SampleRate is the share of requests logged, 0 to 1, for versions
	// whose LoadOptions do not set their own. 0: off.
	SampleRate float64
	// DatasetPrefix names the datasets: prefix + model (default "payloads.").
	DatasetPrefix string
	// FlushRows and FlushInterval say when buffered rows are written
	// (default 10,000 rows, 30s: each flush is a dataset version, whose fixed cost the rows share).
	FlushRows     int
	FlushInterval time.Duration
	// QueueSize bounds the payloads waiting to be buffered (default 4096);
	// when full, new ones are dropped and counted, never waited for.
	QueueSize int
	TempDir   string
}

type payload struct {
	dataset, deployment string
	columns             []string // names of the input elements; nil: in_NAME_J
	model, version, id  string
	at                  time.Time
	inputs, outputs     []forge.Tensor
	sink                PayloadSink // the route's, or nil
}

// payloadLog takes sampled payloads off the request path through a
// bounded channel and writes them from one goroutine.
type payloadLog struct {
	opts          PayloadOptions
	log           *slog.Logger
	ch            chan payload
	dropped, rows prometheus.Counter
	flushNow      chan chan struct{}
	done          chan struct{}
}

func newPayloadLog(opts PayloadOptions, log *slog.Logger, reg prometheus.Registerer) *payloadLog {
	if opts.DatasetPrefix == "" {
		opts.DatasetPrefix = "payloads."
	}
	if opts.FlushRows <= 0 {
		opts.FlushRows = 10000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 30 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	p := &payloadLog{
		opts: opts, log: log, ch: make(chan payload, opts.QueueSize),
		dropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "forge_payload_log_dropped_total", Help: "Sampled payloads dropped because the payload log's queue was full."}),
		rows:     prometheus.NewCounter(prometheus.CounterOpts{Name: "forge_payload_log_rows_total", Help: "Payload rows written to datasets."}),
		flushNow: make(chan chan struct{}),
		done:     make(chan struct{}),
	}
	if reg != nil {
		reg.MustRegister(p.dropped, p.rows)
	}
	go p.run()
	return p
}

// offer samples one finished request. Tensors are copied, since the
// request's buffers go back to their pools when it returns.
func (p *payloadLog) offer(rate float64, v *version, req *Request, resp *Response) {
	if rate <= 0 || (rate < 1 && rand.Float64() >= rate) {
		return
	}
	p.enqueue(payload{dataset: p.opts.DatasetPrefix + badDatasetChars.ReplaceAllString(v.name, "_"),
		model: v.name, version: v.version, id: req.ID, at: time.Now(),
		inputs: cloneTensors(req.Inputs), outputs: cloneTensors(resp.Outputs)})
}

// RoutePayloads logs a share of one route's (a deployment's) requests to a
// dataset of its own, whatever the versions behind it log.
type RoutePayloads struct {
	Rate    float64
	Dataset string
	// Columns name the request's input elements, flattened in order (the
	// reference dataset's columns); nil, or too few: in_NAME_J.
	Columns []string
	// Sink, when set, also gets every logged row (see PayloadSink).
	Sink PayloadSink
}

// offerRoute samples one finished request of route name.
func (p *payloadLog) offerRoute(rp *RoutePayloads, name string, v *version, req *Request, resp *Response) {
	if rp.Rate <= 0 || (rp.Rate < 1 && rand.Float64() >= rp.Rate) {
		return
	}
	p.enqueue(payload{dataset: rp.Dataset, deployment: name, columns: rp.Columns, sink: rp.Sink,
		model: v.name, version: v.version, id: req.ID, at: time.Now(),
		inputs: cloneTensors(req.Inputs), outputs: cloneTensors(resp.Outputs)})
}

func (p *payloadLog) enqueue(pl payload) {
	select {
	case p.ch <- pl:
	default:
		p.dropped.Inc()
	}
}

func (p *payloadLog) run() {
	defer close(p.done)
	buf := map[string]*pending{} // by dataset
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	flushAll := func() {
		for m, q := range buf {
			p.flush(m, q.payloads)
		}
		clear(buf)
	}
	// Payloads wait as their tensors (a few pointers each, cheap for the
	// GC to scan) and become rows of fields only when written.
	add := func(pl payload) *pending {
		if pl.sink != nil {
			publish(pl.sink, pl)
		}
		q := buf[pl.dataset]
		if q == nil {
			q = &pending{}
			buf[pl.dataset] = q
		}
		q.payloads = append(q.payloads, pl)
		q.rows += batchRows(pl)
		return q
	}
	for {
		select {
		case pl, ok := <-p.ch:
			if !ok {
				flushAll()
				return
			}
			if q := add(pl); q.rows >= p.opts.FlushRows {
				p.flush(pl.dataset, q.payloads)
				delete(buf, pl.dataset)
			}
		case <-tick.C:
			flushAll()
		case ack := <-p.flushNow:
			for len(p.ch) > 0 {
				add(<-p.ch)
			}
			flushAll()
			close(ack)
		}
	}
}

// sync writes the payloads logged so far.
func (p *payloadLog) sync() {
	ack := make(chan struct{})
	select {
	case p.flushNow <- ack:
		<-ack
	case <-p.done:
	}
}

func (p *payloadLog) close() {
	close(p.ch)
	<-p.done
}

var badDatasetChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// flush writes rows as JSON lines, converts them to Parquet with DuckDB and
// adds that as the next version of the model's dataset. A failure is
// logged: payload logging never fails a request.
// pending are the payloads of one dataset not written yet.
type pending struct {
	payloads []payload
	rows     int
}

func (p *payloadLog) flush(name string, pls []payload) {
	var rows [][]field
	for _, pl := range pls {
		rows = append(rows, flatten(pl)...)
	}
	if len(rows) == 0 {
		return
	}
	if err := p.write(name, rows); err != nil {
		p.log.Warn("payload log: write dataset", "dataset", name, "rows", len(rows), "err", err)
		return
	}
	p.rows.Add(float64(len(rows)))
}

func (p *payloadLog) write(name string, rows [][]field) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(p.opts.TempDir, "forge-payloads-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "rows.jsonl")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, r := range rows {
		writeRow(w, r)
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, "rows.parquet")
	if _, err := p.opts.Engine.Convert(ctx, duckq.Source{Path: src, Format: duckq.FormatJSONL}, dst, duckq.ConvertOptions{}); err != nil {
		return fmt.Errorf("convert to parquet: %w", err)
	}
	pq, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer pq.Close()
	_, _, err = p.opts.Datasets.Add(ctx, name, pq, datasets.AddInfo{Source: "payload log",
		Description: fmt.Sprintf("%d sampled inference rows", len(rows)), CreatedBy: "forge serve"})
	return err
}

// field is one column of a logged row; rows keep their column order.
type field struct {
	name  string
	value any
}

// flatten gives one row per request row: the batch axis is split when
// every tensor has it, and each row's elements go to columns named
// in_NAME_J / out_NAME_J (in_NAME / out_NAME when a row has one element),
// or, for a deployment's log, the inputs to its columns, in order.
func flatten(pl payload) [][]field {
	n := batchDim(pl)
	rows := batchRows(pl)
	out := make([][]field, rows)
	ts := pl.at.UTC().Format(time.RFC3339Nano)
	for r := range out {
		row := []field{{"timestamp", ts}, {"model", pl.model}, {"version", pl.version}, {"request_id", pl.id}}
		if pl.deployment != "" {
			// The row's place in its request, which feedback names.
			row = append(row, field{"deployment", pl.deployment}, field{"row", r})
		}
		k := 0 // the input element's index in the flattened row
		for _, side := range []struct {
			prefix string
			ts     []forge.Tensor
		}{{"in_", pl.inputs}, {"out_", pl.outputs}} {
			for _, t := range side.ts {
				per := dataLen(t.Data)
				if n >= 0 {
					per /= rows
				}
				for j := range per {
					col := side.prefix + t.Name
					if per > 1 {
						col += "_" + strconv.Itoa(j)
					}
					if side.prefix == "in_" {
						if k < len(pl.columns) {
							col = pl.columns[k]
						}
						k++
					}
					row = append(row, field{col, element(t.Data, r*per+j)})
				}
			}
		}
		out[r] = row
	}
	return out
}

// batchDim is the first dimension every tensor of pl shares, or < 0.
func batchDim(pl payload) int64 {
	n := int64(-1)
	for _, t := range append(pl.inputs[:len(pl.inputs):len(pl.inputs)], pl.outputs...) {
		if len(t.Shape) == 0 || (n >= 0 && t.Shape[0] != n) {
			return -2
		}
		n = t.Shape[0]
	}
	return n
}

// batchRows is how many rows pl logs.
func batchRows(pl payload) int {
	if n := batchDim(pl); n >= 0 {
		return int(n)
	}
	return 1
}

func writeRow(w *bufio.Writer, row []field) {
	w.WriteByte('{')
	for i, f := range row {
		if i > 0 {
			w.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		w.Write(k)
		w.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil { // NaN and infinities have no JSON form
			v = []byte("null")
		}
		w.Write(v)
	}
	w.WriteString("}\n")
}

// element returns data[i] as a value JSON can hold (NaN becomes nil).
func element(data any, i int) any {
	switch d := data.(type) {
	case []float32:
		if math.IsNaN(float64(d[i])) {
			return nil
		}
		return d[i]
	case []float64:
		if math.IsNaN(d[i]) {
			return nil
		}
		return d[i]
	case []int8:
		return d[i]
	case []int16:
		return d[i]
	case []int32:
		return d[i]
	case []int64:
		return d[i]
	case []uint8:
		return d[i]
	case []uint16:
		return d[i]
	case []uint32:
		return d[i]
	case []uint64:
		return d[i]
	case []bool:
		return d[i]
	case []string:
		return d[i]
	}
	return nil
}

func cloneTensors(ts []forge.Tensor) []forge.Tensor {
	out := make([]forge.Tensor, len(ts))
	for i, t := range ts {
		out[i] = forge.Tensor{Name: t.Name, Datatype: t.Datatype, Shape: append([]int64(nil), t.Shape...), Data: cloneData(t.Data)}
	}
	return out
}

func cloneData(data any) any {
	switch d := data.(type) {
	case []float32:
		return append([]float32(nil), d...)
	case []float64:
		return append([]float64(nil), d...)
	case []int8:
		return append([]int8(nil), d...)
	case []int16:
		return append([]int16(nil), d...)
	case []int32:
		return append([]int32(nil), d...)
	case []int64:
		return append([]int64(nil), d...)
	case []uint8:
		return append([]uint8(nil), d...)
	case []uint16:
		return append([]uint16(nil), d...)
	case []uint32:
		return append([]uint32(nil), d...)
	case []uint64:
		return append([]uint64(nil), d...)
	case []bool:
		return append([]bool(nil), d...)
	case []string:
		// Strings may share the request body's bytes.
		out := make([]string, len(d))
		for i, s := range d {
			out[i] = string(append([]byte(nil), s...))
		}
		return out
	}
	return data
}
