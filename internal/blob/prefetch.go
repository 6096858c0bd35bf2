package blob

import (
	"io"
	"sync"
)

// prefetch reads ahead of its consumer in a goroutine, a few chunks at
// most, so that fetching the next bytes from the network overlaps hashing
// (and sending) the ones before: a verified S3 read then goes at the
// speed of the slower of the two, not of their sum.
type prefetch struct {
	src    io.ReadCloser
	chunks chan chunk
	free   chan []byte
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	cur    chunk
	off    int
	done   bool
	err    error
}

type chunk struct {
	b   []byte
	err error
}

const (
	prefetchChunk = 1 << 20
	prefetchDepth = 4
)

// chunkPool keeps the chunks of finished reads for the next ones.
var chunkPool = sync.Pool{New: func() any { return make([]byte, prefetchChunk) }}

func newPrefetch(src io.ReadCloser) *prefetch {
	p := &prefetch{src: src, chunks: make(chan chunk, prefetchDepth), free: make(chan []byte, prefetchDepth+1), stop: make(chan struct{})}
	for range prefetchDepth + 1 {
		p.free <- chunkPool.Get().([]byte)
	}
	p.wg.Add(1)
	go p.fill()
	return p
}

func (p *prefetch) fill() {
	defer close(p.chunks)
	defer p.wg.Done()
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.stop:
			return
		}
		n, err := io.ReadFull(p.src, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case p.chunks <- chunk{b[:n], err}:
		case <-p.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *prefetch) Read(b []byte) (int, error) {
	for p.off == len(p.cur.b) {
		if p.done {
			return 0, p.err
		}
		if p.cur.b != nil {
			p.free <- p.cur.b[:cap(p.cur.b)]
			p.cur.b = nil
		}
		c, ok := <-p.chunks
		if !ok {
			p.done, p.err = true, io.ErrUnexpectedEOF
			continue
		}
		p.cur, p.off = c, 0
		if c.err != nil {
			p.done, p.err = true, c.err
		}
	}
	n := copy(b, p.cur.b[p.off:])
	p.off += n
	if p.off == len(p.cur.b) && p.done {
		return n, p.err
	}
	return n, nil
}

// Close stops the goroutine and closes the source (which ends a read
// the goroutine is blocked in).
func (p *prefetch) Close() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		err = p.src.Close()
		// Once fill is gone, no chunk is in use but the ones here.
		p.wg.Wait()
		for c := range p.chunks {
			chunkPool.Put(c.b[:cap(c.b)])
		}
		if p.cur.b != nil {
			chunkPool.Put(p.cur.b[:cap(p.cur.b)])
			p.cur.b = nil
		}
		for {
			select {
			case b := <-p.free:
				chunkPool.Put(b)
			default:
				return
			}
		}
	})
	return err
}
