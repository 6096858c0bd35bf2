package ort

import (
	"runtime"
	"sync"

	"github.com/forge-mlops/forge/internal/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Reusing ONNX Runtime values. Creating an input value and reading back an
// output value that ONNX Runtime allocated take more C calls than a small
// model's Run itself: on the 4-16-3 MLP they were 1.2 µs of a 3 µs request.
// For a model whose every input and output is numeric with only its first
// dimension dynamic (the batch), the output shapes follow from the batch
// size, so a session keeps ready-made input and output values per batch size
// and copies the request's data in and the results out.
const (
	// poolMaxElems bounds the elements of one binding's inputs and outputs
	// together (64 KiB of float32): larger runs are dominated by compute.
	poolMaxElems = 1 << 14
	// poolMaxSizes bounds how many batch sizes a session keeps values for,
	// and poolMaxKept how many bindings of one size: at most 16 x 8
	// bindings of 128 KiB (8-byte types), 16 MiB, per session.
	poolMaxSizes = 16
	poolMaxKept  = 8
)

// binding is one set of ONNX Runtime values for a batch size, over Go slices
// that ONNX Runtime reads and writes in place.
type binding struct {
	in, out         []ortgo.Value
	inData, outData []any
	outShapes       [][]int64
}

func (b *binding) destroy() {
	for _, v := range append(b.in, b.out...) {
		if v != nil {
			v.Destroy()
		}
	}
}

// pools holds a session's free bindings by batch size.
type pools struct {
	mu    sync.Mutex
	sizes map[int64]chan *binding
}

func (p *pools) get(s *Session, n int64) (*binding, bool) {
	p.mu.Lock()
	c, ok := p.sizes[n]
	if !ok && len(p.sizes) < poolMaxSizes {
		if p.sizes == nil {
			p.sizes = map[int64]chan *binding{}
		}
		c = make(chan *binding, min(max(runtime.GOMAXPROCS(0), 2), poolMaxKept))
		p.sizes[n] = c
		ok = true
	}
	p.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case b := <-c:
		return b, true
	default:
	}
	b, err := s.newBinding(n)
	return b, err == nil
}

// put keeps b for the next run, or frees it when enough are kept.
func (p *pools) put(n int64, b *binding) {
	p.mu.Lock()
	c := p.sizes[n]
	p.mu.Unlock()
	select {
	case c <- b:
	default:
		b.destroy()
	}
}

// drain frees every kept binding; the session is closing.
func (p *pools) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, c := range p.sizes {
		for len(c) > 0 {
			(<-c).destroy()
		}
		delete(p.sizes, n)
	}
}

// batchShape is a declared shape with its first dimension set to n.
func batchShape(decl []int64, n int64) []int64 {
	s := append([]int64(nil), decl...)
	s[0] = n
	return s
}

// poolable says whether the signature lets output shapes follow from the
// batch size: every tensor numeric, of known rank, with a dynamic first
// dimension and fixed others.
func poolable(sig onnx.Signature) bool {
	check := func(datatype string, shape []int64) bool {
		if datatype == "BYTES" || len(shape) == 0 || shape[0] != -1 {
			return false
		}
		if _, ok := dtypes[datatype]; !ok {
			return false
		}
		for _, d := range shape[1:] {
			if d < 0 {
				return false
			}
		}
		return true
	}
	for _, t := range append(append([]onnx.Tensor(nil), sig.Inputs...), sig.Outputs...) {
		if !check(t.Datatype, t.Shape) {
			return false
		}
	}
	return true
}

// batchOf returns the batch size of inputs when a pooled run can take them:
// every input given once, of its declared datatype, with the declared shape
// but for a common first dimension, and small enough. Anything else goes the
// general way, which also explains what is wrong.
func (s *Session) batchOf(inputs []Tensor) (int64, bool) {
	if !s.poolable || s.unpooled.Load() || len(inputs) != len(s.sig.Inputs) || len(inputs[0].Shape) == 0 {
		return 0, false
	}
	n := inputs[0].Shape[0]
	if n < 1 || n > poolMaxElems {
		return 0, false
	}
	elems := int64(0)
	// size adds the elements of a shape of the signature's batched to n to
	// elems, false past poolMaxElems (checked before each product, so
	// nothing overflows).
	size := func(decl []int64) (int64, bool) {
		total := n
		for _, d := range decl[1:] {
			if d > 0 && total > poolMaxElems/d {
				return 0, false
			}
			total *= d
		}
		elems += total
		return total, elems <= poolMaxElems
	}
	var seen [64]bool
	for _, in := range inputs {
		i, ok := s.inputAt[in.Name]
		if !ok || i >= len(seen) || seen[i] {
			return 0, false
		}
		seen[i] = true
		want := s.sig.Inputs[i]
		if in.Datatype != want.Datatype || len(in.Shape) != len(want.Shape) || in.Shape[0] != n {
			return 0, false
		}
		for j, d := range want.Shape[1:] {
			if in.Shape[j+1] != d {
				return 0, false
			}
		}
		want1, ok := size(want.Shape)
		if !ok {
			return 0, false
		}
		if l, ok := dtypes[in.Datatype].length(in.Data); !ok || int64(l) != want1 {
			return 0, false
		}
	}
	for _, t := range s.sig.Outputs {
		if _, ok := size(t.Shape); !ok {
			return 0, false
		}
	}
	return n, true
}

func (s *Session) newBinding(n int64) (*binding, error) {
	b := &binding{}
	// value makes one tensor of the signature, batched to n, over a new Go slice.
	value := func(t onnx.Tensor) (ortgo.Value, any, []int64, error) {
		shape := batchShape(t.Shape, n)
		data := dtypes[t.Datatype].make(int(elementsOf(shape)))
		v, err := dtypes[t.Datatype].newValue(ortgo.Shape(shape), data)
		return v, data, shape, err
	}
	for _, t := range s.sig.Inputs {
		v, data, _, err := value(t)
		if err != nil {
			b.destroy()
			return nil, err
		}
		b.in, b.inData = append(b.in, v), append(b.inData, data)
	}
	for _, t := range s.sig.Outputs {
		v, data, shape, err := value(t)
		if err != nil {
			b.destroy()
			return nil, err
		}
		b.out, b.outData, b.outShapes = append(b.out, v), append(b.outData, data), append(b.outShapes, shape)
	}
	return b, nil
}

func elementsOf(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// runPooled runs inputs (checked by batchOf) on kept values. ran is false
// when it could not: the session is closed, values could not be kept (16
// batch sizes already), or ONNX Runtime refused the run (refused), which the
// general path then reports or, if it succeeds there, shows the outputs do
// not follow the batch size.
func (s *Session) runPooled(n int64, inputs []Tensor) (out []Tensor, ran, refused bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ortSes == nil {
		return nil, false, false
	}
	b, ok := s.pools.get(s, n)
	if !ok {
		return nil, false, false
	}
	for _, in := range inputs {
		i := s.inputAt[in.Name]
		dtypes[in.Datatype].copy(b.inData[i], in.Data)
	}
	if err := s.ortSes.Run(b.in, b.out); err != nil {
		b.destroy()
		return nil, false, true
	}
	out = make([]Tensor, len(b.out))
	for i, t := range s.sig.Outputs {
		out[i] = Tensor{Name: t.Name, Datatype: t.Datatype, Shape: append([]int64(nil), b.outShapes[i]...),
			Data: dtypes[t.Datatype].clone(b.outData[i])}
	}
	s.pools.put(n, b)
	return out, true, false
}
