package rules

import (
	"math"

	"github.com/expr-lang/expr"
)

// functions are the helpers rule expressions may call besides expr's
// built-ins. Each is pure and deterministic.
var functions = []expr.Option{
	expr.Function("nb_tail", func(p ...any) (any, error) {
		return NBTail(p[0].(float64), p[1].(float64), p[2].(float64)), nil
	}, new(func(float64, float64, float64) float64)),
}

// NBTail is P(X ≥ x) for daily units X with the given mean and standard
// deviation: negative binomial when overdispersed (sd² > mean), the usual
// fit for SKU-store demand, and Poisson otherwise. It is the chance that a
// day like this sells at least x by luck alone.
func NBTail(x, mean, sd float64) float64 {
	k := math.Ceil(x)
	if k <= 0 {
		return 1
	}
	if mean <= 0 {
		return 0
	}
	v := sd * sd
	var logPMF func(k float64) float64
	var ratio func(k float64) float64 // P(k+1)/P(k)
	if v <= mean*1.0001 {
		logPMF = func(k float64) float64 {
			lg, _ := math.Lgamma(k + 1)
			return k*math.Log(mean) - mean - lg
		}
		ratio = func(k float64) float64 { return mean / (k + 1) }
	} else {
		p, r := mean/v, mean*mean/(v-mean)
		logPMF = func(k float64) float64 {
			a, _ := math.Lgamma(k + r)
			b, _ := math.Lgamma(r)
			c, _ := math.Lgamma(k + 1)
			return a - b - c + r*math.Log(p) + k*math.Log(1-p)
		}
		ratio = func(k float64) float64 { return (k + r) / (k + 1) * (1 - p) }
	}
	if k <= mean {
		// The tail holds most of the mass: 1 − CDF is accurate enough here.
		cdf, t := 0.0, math.Exp(logPMF(0))
		for i := 0.0; i < k; i++ {
			cdf += t
			t *= ratio(i)
		}
		return math.Max(0, 1-cdf)
	}
	sum, t := 0.0, math.Exp(logPMF(k))
	for i := k; i < k+10000 && t > sum*1e-12; i++ {
		sum += t
		t *= ratio(i)
	}
	return math.Min(1, sum)
}
