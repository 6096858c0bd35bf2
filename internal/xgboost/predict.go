package xgboost

import (
	"errors"
	"math"

	"github.com/forge-mlops/forge"
)

// objective is what prediction needs from an XGBoost objective: how
// base_score maps to a margin (XGBoost's ProbToMargin) and how margins map to
// outputs (its PredTransform).
type objective struct {
	name       string
	multiclass bool
	baseMargin func(base float32) (float32, error)
	// transform turns one row's margins into its outputs; margins and out may
	// be the same slice.
	transform func(margins, out []float32)
	argmax    bool // multi:softmax: one output per row, the class index
}

func (o *objective) outputs(numGroup int) int {
	if o.argmax {
		return 1
	}
	return numGroup
}

var objectives = map[string]*objective{}

func init() {
	for _, o := range []objective{
		{name: "reg:squarederror", baseMargin: identity},
		{name: "reg:squaredlogerror", baseMargin: identity},
		{name: "reg:pseudohubererror", baseMargin: identity},
		{name: "reg:absoluteerror", baseMargin: identity},
		{name: "reg:linear", baseMargin: identity},
		{name: "rank:pairwise", baseMargin: identity},
		{name: "rank:ndcg", baseMargin: identity},
		{name: "rank:map", baseMargin: identity},
		{name: "binary:logitraw", baseMargin: identity}, // unlike binary:logistic, no logit
		{name: "binary:logistic", baseMargin: logit, transform: sigmoid},
		{name: "reg:logistic", baseMargin: logit, transform: sigmoid},
		{name: "binary:hinge", baseMargin: identity, transform: hinge},
		{name: "count:poisson", baseMargin: logOf, transform: exp},
		{name: "reg:gamma", baseMargin: logOf, transform: exp},
		{name: "reg:tweedie", baseMargin: logOf, transform: exp},
		{name: "multi:softprob", multiclass: true, baseMargin: identity, transform: softmax},
		{name: "multi:softmax", multiclass: true, baseMargin: identity, argmax: true},
	} {
		objectives[o.name] = &o
	}
}

func identity(b float32) (float32, error) { return b, nil }

func logit(b float32) (float32, error) {
	if !(b > 0 && b < 1) {
		return 0, errors.New("a logistic objective needs base_score in (0, 1)")
	}
	// XGBoost computes -log(1/base - 1) in float32.
	return -float32(math.Log(float64(1/b - 1))), nil
}

func logOf(b float32) (float32, error) {
	if !(b > 0) {
		return 0, errors.New("a log-link objective needs base_score > 0")
	}
	return float32(math.Log(float64(b))), nil
}

func sigmoid(margins, out []float32) {
	for i, x := range margins {
		// As XGBoost's common::Sigmoid: the clamp keeps exp finite.
		out[i] = 1 / (1 + float32(math.Exp(float64(min(-x, 88.7)))))
	}
}

func exp(margins, out []float32) {
	for i, x := range margins {
		out[i] = float32(math.Exp(float64(x)))
	}
}

func hinge(margins, out []float32) {
	for i, x := range margins {
		out[i] = 0
		if x > 0 {
			out[i] = 1
		}
	}
}

// softmax follows XGBoost's common::Softmax: float32 exponentials of the
// margins less their maximum, summed in float64.
func softmax(margins, out []float32) {
	mx := margins[0]
	for _, x := range margins[1:] {
		mx = max(mx, x)
	}
	var sum float64
	for i, x := range margins {
		e := float32(math.Exp(float64(x - mx)))
		out[i] = e
		sum += float64(e)
	}
	s := float32(sum)
	for i := range out[:len(margins)] {
		out[i] /= s
	}
}

// argmax is the first index of the largest value, as std::max_element.
func argmax(v []float32) int {
	best := 0
	for i, x := range v[1:] {
		if x > v[best] {
			best = i + 1
		}
	}
	return best
}

// Predict evaluates nrows rows, stored row-major in rows (NumFeature values
// each, NaN for a missing value), and writes OutputsPerRow values per row to
// out: a probability for binary:logistic, class probabilities for
// multi:softprob, the class index for multi:softmax, the value for
// regression. These are the numbers XGBoost's predict() returns.
func (m *Model) Predict(rows []float32, nrows int, out []float32) error {
	if err := m.checkShapes(rows, nrows, out, m.OutputsPerRow()); err != nil {
		return err
	}
	k := m.numGroup
	if !m.obj.argmax {
		m.margin(rows, nrows, out)
		if m.obj.transform != nil {
			for r := range nrows {
				o := out[r*k : (r+1)*k]
				m.obj.transform(o, o)
			}
		}
		return nil
	}
	// multi:softmax: margins go to a scratch buffer, one block at a time.
	var stack [block * 32]float32
	buf := stack[:]
	if block*k > len(buf) {
		buf = make([]float32, block*k)
	}
	nf := m.info.NumFeature
	for r := 0; r < nrows; r += block {
		n := min(block, nrows-r)
		b := buf[:n*k]
		m.margin(rows[r*nf:(r+n)*nf], n, b)
		for j := range n {
			out[r+j] = float32(argmax(b[j*k : (j+1)*k]))
		}
	}
	return nil
}

// PredictMargin is Predict before the objective's transform: XGBoost's
// predict(output_margin=True). It writes NumClass values per row for
// multi:* models and one otherwise.
func (m *Model) PredictMargin(rows []float32, nrows int, out []float32) error {
	if err := m.checkShapes(rows, nrows, out, m.numGroup); err != nil {
		return err
	}
	m.margin(rows, nrows, out)
	return nil
}

func (m *Model) checkShapes(rows []float32, nrows int, out []float32, perRow int) error {
	nf := m.info.NumFeature
	if nrows < 0 || len(rows) != nrows*nf {
		return forge.Errorf(forge.Invalid, "xgboost: %d input values for %d rows of %d features", len(rows), nrows, nf)
	}
	if len(out) != nrows*perRow {
		return forge.Errorf(forge.Invalid, "xgboost: output has room for %d values, %d rows need %d", len(out), nrows, nrows*perRow)
	}
	return nil
}

// block is how many rows walk a tree together. A walk is a chain of
// dependent loads; interleaving several rows' chains keeps the core busy
// while each waits on memory.
const block = 8

// margin writes the margins of nrows rows to out, numGroup per row.
func (m *Model) margin(rows []float32, nrows int, out []float32) {
	nf, k := m.info.NumFeature, m.numGroup
	for i := range out[:nrows*k] {
		out[i] = m.baseMargin
	}
	for r := 0; r < nrows; r += block {
		n := min(block, nrows-r)
		m.addTrees(rows[r*nf:(r+n)*nf], n, out[r*k:(r+n)*k])
	}
}

// addTrees adds every tree's leaf value to the margins in out for n <= block
// rows. Each row's margin is summed in float32 in tree order, as XGBoost's
// CPU predictor does; the order matters for matching it bit for bit.
func (m *Model) addTrees(rows []float32, n int, out []float32) {
	nodes, leaves := m.nodes, m.leaves
	nf, k := m.info.NumFeature, m.numGroup
	var at [block]int32
	for t, root := range m.roots {
		for j := range n {
			at[j] = root
		}
		// Leaves point to themselves, so walking depth steps is safe for
		// rows that reach a shallow leaf early.
		for range m.depths[t] {
			for j := range n {
				nd := &nodes[at[j]]
				v := rows[j*nf+int(nd.feat)]
				next := nd.left // v < cond goes left, as in XGBoost
				if v >= nd.cond {
					next++
				}
				if v != v {
					next = nd.missing
				}
				at[j] = next
			}
		}
		g := int(m.groups[t])
		for j := range n {
			out[j*k+g] += leaves[at[j]]
		}
	}
}
