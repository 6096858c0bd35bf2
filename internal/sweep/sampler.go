package sweep

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Observation is a finished trial as the samplers see it: its parameters
// and, when it completed, its objective (lower is better: a maximized
// objective is negated by the caller).
type Observation struct {
	Params   map[string]string
	Value    float64
	Complete bool // false: failed, or still running
	// Pruned trials count with their last intermediate value at Step,
	// after every complete one, as Optuna's TPE ranks them.
	Pruned bool
	Step   int64
	// Cancelled trials (a stopped sweep's) do not count: a grid runs
	// their points again.
	Cancelled bool
}

// Suggest returns trial number's parameters. It is a function of the spec
// (its seed), the number and the history, so a sweep resumed after a
// restart suggests what it would have.
func (s *Spec) Suggest(number int, history []Observation) map[string]string {
	switch s.Algorithm {
	case "grid":
		return s.nextGridPoint(history)
	case "tpe":
		return s.tpe(number, history)
	}
	return s.random(number)
}

// nextGridPoint is the first combination that no trial of the history
// but a cancelled one has.
func (s *Spec) nextGridPoint(history []Observation) map[string]string {
	names := s.paramNames()
	key := func(p map[string]string) string {
		k := ""
		for _, n := range names {
			k += p[n] + "\x00"
		}
		return k
	}
	used := map[string]bool{}
	for _, o := range history {
		if !o.Cancelled {
			used[key(o.Params)] = true
		}
	}
	n := int(s.gridSize())
	for i := range n {
		if p := s.gridPoint(i); !used[key(p)] {
			return p
		}
	}
	return s.gridPoint(0)
}

// gridPoint is the number-th combination, the first parameter (by name)
// changing slowest.
func (s *Spec) gridPoint(number int) map[string]string {
	names := s.paramNames()
	out := make(map[string]string, len(names))
	for i := len(names) - 1; i >= 0; i-- {
		p := s.Parameters[names[i]]
		n := int(p.size())
		k := number % n
		number /= n
		switch p.Type {
		case "categorical":
			out[names[i]] = p.choices[k]
		default:
			out[names[i]] = p.format(*p.Min + float64(k))
		}
	}
	return out
}

func (s *Spec) rng(number int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed*0x9e3779b97f4a7c15+stream, uint64(number)))
}

func (s *Spec) random(number int) map[string]string {
	r := s.rng(number, 0)
	out := map[string]string{}
	for _, n := range s.paramNames() {
		out[n] = s.Parameters[n].sample(r)
	}
	return out
}

// bounds is the parameter's range in the space samplers work in: logged
// for a log scale, widened by half a step each side for an int (as
// Optuna does).
func (p *Param) bounds() (lo, hi float64) {
	lo, hi = *p.Min, *p.Max
	if p.Type == "int" {
		lo, hi = lo-0.5, hi+0.5
	}
	if p.Log {
		lo, hi = math.Log(lo), math.Log(hi)
	}
	return lo, hi
}

// toValue maps a point of the sampling space back to the parameter.
func (p *Param) toValue(x float64) string {
	if p.Log {
		x = math.Exp(x)
	}
	x = math.Min(math.Max(x, *p.Min), *p.Max)
	return p.format(x)
}

// internal maps a parameter's text back to the sampling space (numeric) or
// to its choice's index (categorical); ok is false for a value that is not
// one of the parameter's, as after a spec change.
func (p *Param) internal(v string) (float64, bool) {
	if p.Type == "categorical" {
		for i, c := range p.choices {
			if c == v {
				return float64(i), true
			}
		}
		return 0, false
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || x < *p.Min || x > *p.Max {
		return 0, false
	}
	if p.Log {
		x = math.Log(x)
	}
	return x, true
}

func (p *Param) sample(r *rand.Rand) string {
	if p.Type == "categorical" {
		return p.choices[r.IntN(len(p.choices))]
	}
	lo, hi := p.bounds()
	return p.toValue(lo + r.Float64()*(hi-lo))
}
