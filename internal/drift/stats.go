package drift

import "math"

// kolmogorovSF is the survival function of the Kolmogorov distribution
// (scipy.stats.kstwobign.sf): the limit of P(sqrt(n)·D > x). Two series
// are used, each where it converges fast.
func kolmogorovSF(x float64) float64 {
	if x <= 0 {
		return 1
	}
	if x < 1 {
		// 1 - sqrt(2π)/x · Σ exp(-(2k-1)²π²/(8x²))
		s := 0.0
		for k := 1; k <= 50; k++ {
			t := math.Exp(-float64((2*k-1)*(2*k-1)) * math.Pi * math.Pi / (8 * x * x))
			s += t
			if t < 1e-18 {
				break
			}
		}
		return 1 - math.Sqrt(2*math.Pi)/x*s
	}
	// 2 Σ (-1)^(k-1) exp(-2k²x²)
	s := 0.0
	for k := 1; k <= 100; k++ {
		t := math.Exp(-2 * float64(k*k) * x * x)
		if k%2 == 1 {
			s += t
		} else {
			s -= t
		}
		if t < 1e-18 {
			break
		}
	}
	return math.Max(0, math.Min(1, 2*s))
}

// ksPValue is the asymptotic two-sided p-value of a two-sample KS
// statistic d between samples of n and m values (Smirnov's limit).
func ksPValue(d float64, n, m int64) float64 {
	en := float64(n) * float64(m) / float64(n+m)
	return kolmogorovSF(math.Sqrt(en) * d)
}

// chi2SF is P(X > x) for X chi-squared with k degrees of freedom
// (scipy.stats.chi2.sf): the regularized upper incomplete gamma Q(k/2, x/2).
func chi2SF(x float64, k int) float64 {
	if k <= 0 {
		return math.NaN()
	}
	if math.IsInf(x, 1) {
		return 0
	}
	if x <= 0 {
		return 1
	}
	return gammaQ(float64(k)/2, x/2)
}

// gammaQ is the regularized upper incomplete gamma function, by its series
// below a+1 and by Lentz's continued fraction above.
func gammaQ(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, del, ap := 1/a, 1/a, a
		for range 10000 {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*1e-17 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-17 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// chiSquare is scipy.stats.chisquare(obs, exp): the statistic and its
// p-value with len(obs)-1 degrees of freedom. An expected count of 0 with
// an observed one gives an infinite statistic and p-value 0.
func chiSquare(obs, exp []float64) (stat, p float64) {
	for i := range obs {
		diff := obs[i] - exp[i]
		if exp[i] == 0 {
			if diff != 0 {
				stat = math.Inf(1)
			}
			continue
		}
		stat += diff * diff / exp[i]
	}
	if len(obs) < 2 {
		return stat, 1 // one category: nothing can have moved
	}
	return stat, chi2SF(stat, len(obs)-1)
}

// jensenShannon is scipy.spatial.distance.jensenshannon(p, q) with the
// natural log: the square root of the Jensen-Shannon divergence of the two
// distributions, each normalized to sum to 1.
func jensenShannon(p, q []float64) float64 {
	sp, sq := 0.0, 0.0
	for i := range p {
		sp += p[i]
		sq += q[i]
	}
	if sp == 0 || sq == 0 {
		return math.NaN()
	}
	js := 0.0
	for i := range p {
		a, b := p[i]/sp, q[i]/sq
		m := (a + b) / 2
		if a > 0 {
			js += a * math.Log(a/m)
		}
		if b > 0 {
			js += b * math.Log(b/m)
		}
	}
	return math.Sqrt(math.Max(0, js/2))
}

// psi is the population stability index of current against reference bin
// fractions. An empty bin's fraction becomes psiEpsilon on either side, as
// Evidently does (np.place(percents, percents == 0, 0.0001)), so that its
// log stays finite.
func psi(ref, cur []float64) float64 {
	s := 0.0
	for i := range ref {
		a, b := ref[i], cur[i]
		if a == 0 {
			a = psiEpsilon
		}
		if b == 0 {
			b = psiEpsilon
		}
		s += (a - b) * math.Log(a/b)
	}
	return s
}

const psiEpsilon = 1e-4
