package sweep

import (
	"math"
	"math/rand/v2"
	"sort"
)

// TPE with Optuna 3.1's defaults (TPESampler): random for the first
// startupTrials complete or pruned trials, then a Parzen estimator l(x)
// over the best gamma(n) trials and g(x) over the rest, both with a prior
// kernel of weight priorWeight and Optuna's magic clip; eiCandidates draws
// from l, keeping the one with the highest l(x)/g(x). Univariate (the
// default) does this for each parameter alone, with bandwidths from the
// gaps between neighbours; multivariate for all at once, with Scott's
// rule bandwidths, as TPESampler(multivariate=True).
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
	names := s.paramNames()
	if s.Multivariate {
		return s.sampleTPE(r, names, done, below, above, true)
	}
	out := map[string]string{}
	for _, name := range names {
		for k, v := range s.sampleTPE(r, []string{name}, done, below, above, false) {
			out[k] = v
		}
	}
	return out
}

// sampleTPE draws eiCandidates points of the named parameters from l (the
// estimator over the good trials), keeping the one with the highest
// l(x)/g(x), as Optuna's _ParzenEstimator: one kernel per observation over
// every named parameter at once (multivariate), or one parameter alone.
// Trials with a value not in a parameter's range (a changed spec) are
// left out.
func (s *Spec) sampleTPE(r *rand.Rand, names []string, done []Observation, below, above []int, multivariate bool) map[string]string {
	ps := make([]*Param, len(names))
	for i, n := range names {
		ps[i] = s.Parameters[n]
	}
	obs := func(ids []int) [][]float64 {
		var rows [][]float64
	trials:
		for _, i := range ids {
			row := make([]float64, len(names))
			for d, p := range ps {
				x, ok := p.internal(done[i].Params[names[d]])
				if !ok {
					continue trials
				}
				row[d] = x
			}
			rows = append(rows, row)
		}
		return rows
	}
	l, g := newMixture(ps, obs(below), multivariate), newMixture(ps, obs(above), multivariate)
	var best []float64
	bestScore := math.Inf(-1)
	for range eiCandidates {
		x := l.sample(r)
		if sc := l.logPDF(x) - g.logPDF(x); sc > bestScore || best == nil {
			best, bestScore = x, sc
		}
	}
	out := make(map[string]string, len(names))
	for d, p := range ps {
		if p.Type == "categorical" {
			out[names[d]] = p.choices[int(best[d])]
		} else {
			out[names[d]] = p.toValue(best[d])
		}
	}
	return out
}

// mixture is a Parzen estimator over one or more parameters: kernel k
// (one per observation, then the prior) has weight w[k] and, for each
// parameter, a truncated normal or a categorical distribution.
type mixture struct {
	w    []float64 // summing to 1
	logW []float64
	dims []*parzen
}

// parzen is one parameter's side of every kernel.
type parzen struct {
	p      *Param
	mu, sd []float64
	lo, hi float64
	q      float64     // 1 for a linear int: its pdf is the mass of [x-0.5, x+0.5]
	cat    [][]float64 // per kernel, the probability of each choice
	logCat [][]float64
	logC   []float64 // per kernel: -log(sqrt(2 pi)) - log mass on [lo, hi] (no -log(sd): see parzen)
	logAcc []float64 // per kernel: log mass on [lo, hi]
}

// newMixture builds the estimator over rows (in trial order) as Optuna
// 3.1's _ParzenEstimator does with its defaults: consider_prior, prior
// weight 1, consider_magic_clip, not consider_endpoints, default_weights.
func newMixture(ps []*Param, rows [][]float64, multivariate bool) *mixture {
	n := len(rows)
	w := append(weights(n), priorWeight)
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	m := &mixture{w: w, logW: make([]float64, len(w))}
	for i := range w {
		w[i] /= sum
		m.logW[i] = math.Log(w[i])
	}
	// Scott's rule, as Optuna (and BOHB) use for multivariate TPE.
	sigma0 := 0.0
	if multivariate {
		sigma0 = 0.2 * math.Pow(float64(max(n, 1)), -1/(float64(len(ps))+4))
	}
	for d, p := range ps {
		xs := make([]float64, n)
		for i, row := range rows {
			xs[i] = row[d]
		}
		m.dims = append(m.dims, p.parzen(xs, multivariate, sigma0))
	}
	return m
}

// parzen is the parameter's side of the kernels over observations xs.
func (p *Param) parzen(xs []float64, multivariate bool, sigma0 float64) *parzen {
	n := len(xs)
	e := &parzen{p: p}
	if p.Type == "categorical" {
		k := len(p.choices)
		for i := 0; i <= n; i++ {
			row := make([]float64, k)
			for c := range row {
				row[c] = priorWeight / float64(n+1)
			}
			if i < n {
				row[int(xs[i])]++
			}
			t := 0.0
			for _, v := range row {
				t += v
			}
			logs := make([]float64, k)
			for c := range row {
				row[c] /= t
				logs[c] = math.Log(row[c])
			}
			e.cat, e.logCat = append(e.cat, row), append(e.logCat, logs)
		}
		return e
	}
	lo, hi := p.bounds()
	e.lo, e.hi = lo, hi
	if p.Type == "int" && !p.Log {
		e.q = 1
	}
	// The prior kernel is one of the mus: it is a neighbour when the
	// bandwidths are the gaps between neighbours (univariate).
	mus := append(append([]float64(nil), xs...), 0.5*(lo+hi))
	sds := make([]float64, n+1)
	if multivariate {
		for i := range sds {
			sds[i] = sigma0 * (hi - lo)
		}
	} else {
		order := make([]int, n+1)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return mus[order[a]] < mus[order[b]] })
		ends := make([]float64, n+3)
		ends[0], ends[n+2] = lo, hi
		for i, o := range order {
			ends[i+1] = mus[o]
		}
		// Each kernel takes the larger gap to its neighbours, the ends of
		// the range counting as neighbours, except that the outermost
		// take the gap on their inner side only.
		sorted := make([]float64, n+1)
		for i := range sorted {
			sorted[i] = math.Max(ends[i+1]-ends[i], ends[i+2]-ends[i+1])
		}
		if n+3 >= 4 {
			sorted[0] = ends[2] - ends[1]
			sorted[n] = ends[n+1] - ends[n]
		}
		for i, o := range order {
			sds[o] = sorted[i]
		}
	}
	maxSD, minSD := hi-lo, (hi-lo)/math.Min(100, 1+float64(n+1))
	for i := range sds {
		sds[i] = math.Min(math.Max(sds[i], minSD), maxSD)
	}
	sds[n] = hi - lo
	if hi == lo {
		for i := range sds {
			sds[i] = 1
		}
	}
	e.mu, e.sd = mus, sds
	// A kernel's density is Optuna 3.1's: its _truncnorm.logpdf leaves
	// out -log(sd), so a kernel counts in proportion to its bandwidth. A
	// true density (with 1/sd) did worse in bench/sweeps: median best on
	// Hartmann-6 -2.02 against Optuna's -2.75 over 10 seeds; this form
	// reaches -2.74 (multivariate -2.98, Optuna -3.00). Ints scored by their
	// mass (q) are true probabilities, as in Optuna.
	e.logC, e.logAcc = make([]float64, n+1), make([]float64, n+1)
	for k := range mus {
		// Eight sds inside both ends, the mass is 1 to 1e-15.
		if (hi-e.mu[k])/e.sd[k] < 8 || (e.mu[k]-lo)/e.sd[k] < 8 {
			mass := phi((hi-e.mu[k])/e.sd[k]) - phi((lo-e.mu[k])/e.sd[k])
			e.logAcc[k] = math.Log(math.Max(mass, 1e-300))
		}
		e.logC[k] = -math.Log(math.Sqrt(2*math.Pi)) - e.logAcc[k]
	}
	return e
}

func (m *mixture) pick(r *rand.Rand) int {
	u, acc := r.Float64(), 0.0
	for i, w := range m.w {
		acc += w
		if u < acc {
			return i
		}
	}
	return len(m.w) - 1
}

// sample draws a point: one kernel, then each parameter from it. A
// numeric value is snapped to what the parameter can take (an int), as
// Optuna's _transform_from_uniform does before it scores candidates.
func (m *mixture) sample(r *rand.Rand) []float64 {
	k := m.pick(r)
	x := make([]float64, len(m.dims))
	for d, e := range m.dims {
		x[d] = e.sample(r, k)
	}
	return x
}

func (e *parzen) sample(r *rand.Rand, k int) float64 {
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
	x = math.Min(math.Max(x, e.lo), e.hi)
	if e.p.Type == "int" {
		// Round to the int it stands for and back to the sampling space.
		v := x
		if e.p.Log {
			v = math.Exp(x)
		}
		v = math.Min(math.Max(math.Round(v), *e.p.Min), *e.p.Max)
		if e.p.Log {
			return math.Log(v)
		}
		return v
	}
	return x
}

// logPDF is the log density of the point: the log of the sum over kernels
// of their weight times the product of each parameter's density.
func (m *mixture) logPDF(x []float64) float64 {
	terms := make([]float64, len(m.w))
	copy(terms, m.logW)
	for d, e := range m.dims {
		for k := range terms {
			terms[k] += e.logComponent(k, x[d])
		}
	}
	return logSumExp(terms)
}

func (e *parzen) logComponent(k int, x float64) float64 {
	if e.cat != nil {
		return e.logCat[k][int(x)]
	}
	if e.hi == e.lo {
		return 0
	}
	if z := (x - e.mu[k]) / e.sd[k]; e.q > 0 && math.Abs(z) > 10 {
		// Far from the kernel the mass of [x-q/2, x+q/2] is q times the
		// density; its term is below exp(-45) times the prior's (whose sd
		// is the whole range), so the cheaper form changes nothing.
		return math.Log(e.q/e.sd[k]) + e.logC[k] - 0.5*z*z
	}
	if e.q > 0 {
		ub, lb := math.Min(x+e.q/2, e.hi), math.Max(x-e.q/2, e.lo)
		mass := phi((ub-e.mu[k])/e.sd[k]) - phi((lb-e.mu[k])/e.sd[k])
		return math.Log(math.Max(mass, 1e-300)) - e.logAcc[k]
	}
	z := (x - e.mu[k]) / e.sd[k]
	return e.logC[k] - 0.5*z*z
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
		// A term 40 below the largest adds under 4e-18 of it.
		if x > m-40 {
			s += math.Exp(x - m)
		}
	}
	return m + math.Log(s)
}
