package sweep

import (
	"math"
	"math/rand/v2"
	"sort"
)

// TPE with Optuna's defaults (TPESampler, univariate): random for the
// first startupTrials completed trials, then for each parameter a Parzen
// estimator l(x) over the best gamma(n) trials and g(x) over the rest,
// both with a prior kernel of weight priorWeight and Optuna's magic clip;
// eiCandidates draws from l, keeping the one with the highest l(x)/g(x).
const (
	startupTrials = 10
	eiCandidates  = 24
	priorWeight   = 1.0
)

// gamma is Optuna's default_gamma: how many trials count as good.
func gamma(n int) int { return min(int(math.Ceil(0.1*float64(n))), 25) }

// weights is Optuna's default_weights for n observations in trial order:
// flat for up to 25, else a ramp from 1/n for the oldest.
func weights(n int) []float64 {
	w := make([]float64, n)
	if n < 25 {
		for i := range w {
			w[i] = 1
		}
		return w
	}
	ramp := n - 25
	for i := 0; i < ramp; i++ {
		if ramp == 1 {
			w[i] = 1 / float64(n)
		} else {
			w[i] = 1/float64(n) + (1-1/float64(n))*float64(i)/float64(ramp-1)
		}
	}
	for i := ramp; i < n; i++ {
		w[i] = 1
	}
	return w
}

func (s *Spec) tpe(number int, history []Observation) map[string]string {
	var done []Observation
	for _, o := range history {
		if (o.Complete || o.Pruned) && !math.IsNaN(o.Value) {
			done = append(done, o)
		}
	}
	if len(done) < startupTrials {
		return s.random(number)
	}
	// Split by objective (stable, so ties keep trial order), then keep
	// each side in trial order for the weights. As Optuna 3.1 does,
	// complete trials rank before pruned ones, and pruned ones by how far
	// they got, then by their last value.
	idx := make([]int, len(done))
	for i := range idx {
		idx[i] = i
	}
	less := func(a, b Observation) bool {
		if a.Complete != b.Complete {
			return a.Complete
		}
		if !a.Complete && a.Step != b.Step {
			return a.Step > b.Step
		}
		return a.Value < b.Value
	}
	sort.SliceStable(idx, func(a, b int) bool { return less(done[idx[a]], done[idx[b]]) })
	nb := gamma(len(done))
	below, above := append([]int(nil), idx[:nb]...), append([]int(nil), idx[nb:]...)
	sort.Ints(below)
	sort.Ints(above)

	r := s.rng(number, 1)
	out := map[string]string{}
	for _, name := range s.paramNames() {
		p := s.Parameters[name]
		obs := func(ids []int) []float64 {
			var xs []float64
			for _, i := range ids {
				if x, ok := p.internal(done[i].Params[name]); ok {
					xs = append(xs, x)
				}
			}
			return xs
		}
		l, g := p.parzen(obs(below)), p.parzen(obs(above))
		best, bestScore := 0.0, math.Inf(-1)
		for range eiCandidates {
			x := l.sample(r)
			if sc := l.logPDF(x) - g.logPDF(x); sc > bestScore {
				best, bestScore = x, sc
			}
		}
		if p.Type == "categorical" {
			out[name] = p.choices[int(best)]
		} else {
			out[name] = p.toValue(best)
		}
	}
	return out
}

// parzen is a mixture: truncated normals on [lo, hi] for a numeric
// parameter, or categorical distributions over the choices.
type parzen struct {
	w      []float64 // mixture weights, summing to 1
	mu, sd []float64
	lo, hi float64
	cat    [][]float64 // per kernel, the probability of each choice
	logC   []float64   // per kernel: log weight - log(sd sqrt(2 pi)) - log mass on [lo, hi]
}

// parzen builds the estimator over observations xs (in trial order) as
// Optuna's _ParzenEstimator does with consider_prior, prior_weight 1,
// consider_magic_clip and not consider_endpoints.
func (p *Param) parzen(xs []float64) *parzen {
	n := len(xs)
	w := append(weights(n), priorWeight)
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	for i := range w {
		w[i] /= sum
	}
	e := &parzen{w: w}
	if p.Type == "categorical" {
		k := len(p.choices)
		kernels := n + 1
		for i := 0; i <= n; i++ {
			row := make([]float64, k)
			for c := range row {
				row[c] = priorWeight / float64(kernels)
			}
			if i < n {
				row[int(xs[i])]++
			}
			t := 0.0
			for _, v := range row {
				t += v
			}
			for c := range row {
				row[c] /= t
			}
			e.cat = append(e.cat, row)
		}
		return e
	}
	lo, hi := p.bounds()
	e.lo, e.hi = lo, hi
	// Each kernel's bandwidth is the larger gap to its neighbours, the
	// range's ends counting as neighbours; with two or more observations
	// the outermost take the gap on their inner side only.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return xs[order[a]] < xs[order[b]] })
	ends := make([]float64, n+2)
	ends[0], ends[n+1] = lo, hi
	for i, o := range order {
		ends[i+1] = xs[o]
	}
	sorted := make([]float64, n)
	for i := 0; i < n; i++ {
		sorted[i] = math.Max(ends[i+1]-ends[i], ends[i+2]-ends[i+1])
	}
	if n+2 >= 4 {
		sorted[0] = ends[2] - ends[1]
		sorted[n-1] = ends[n] - ends[n-1]
	}
	e.mu, e.sd = make([]float64, n+1), make([]float64, n+1)
	for i, o := range order {
		e.mu[o], e.sd[o] = xs[o], sorted[i]
	}
	e.mu[n], e.sd[n] = 0.5*(lo+hi), hi-lo
	maxSD, minSD := hi-lo, (hi-lo)/math.Min(100, 1+float64(n+1))
	for i := range e.sd {
		e.sd[i] = math.Min(math.Max(e.sd[i], minSD), maxSD)
	}
	if hi == lo {
		for i := range e.sd {
			e.sd[i] = 1
		}
	}
	e.logC = make([]float64, len(e.w))
	for k, w := range e.w {
		mass := phi((hi-e.mu[k])/e.sd[k]) - phi((lo-e.mu[k])/e.sd[k])
		e.logC[k] = math.Log(w) - math.Log(e.sd[k]*math.Sqrt(2*math.Pi)) - math.Log(math.Max(mass, 1e-300))
	}
	return e
}

func (e *parzen) pick(r *rand.Rand) int {
	u, acc := r.Float64(), 0.0
	for i, w := range e.w {
		acc += w
		if u < acc {
			return i
		}
	}
	return len(e.w) - 1
}

func (e *parzen) sample(r *rand.Rand) float64 {
	k := e.pick(r)
	if e.cat != nil {
		u, acc := r.Float64(), 0.0
		for c, pr := range e.cat[k] {
			acc += pr
			if u < acc {
				return float64(c)
			}
		}
		return float64(len(e.cat[k]) - 1)
	}
	if e.hi == e.lo {
		return e.lo
	}
	// Inverse CDF of the normal truncated to [lo, hi].
	a, b := phi((e.lo-e.mu[k])/e.sd[k]), phi((e.hi-e.mu[k])/e.sd[k])
	u := a + r.Float64()*(b-a)
	u = math.Min(math.Max(u, 1e-300), 1-1e-16)
	x := e.mu[k] + e.sd[k]*math.Sqrt2*math.Erfinv(2*u-1)
	return math.Min(math.Max(x, e.lo), e.hi)
}

func (e *parzen) logPDF(x float64) float64 {
	if e.cat != nil {
		t := 0.0
		for k, w := range e.w {
			t += w * e.cat[k][int(x)]
		}
		return math.Log(t)
	}
	if e.hi == e.lo {
		return 0
	}
	terms := make([]float64, len(e.w))
	for k := range e.w {
		z := (x - e.mu[k]) / e.sd[k]
		terms[k] = e.logC[k] - 0.5*z*z
	}
	return logSumExp(terms)
}

func phi(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}
