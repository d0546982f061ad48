package engine

import (
	"math"

	"github.com/skuwatch/skuwatch/state"
)

// Demand statistics are exponentially weighted: the overall daily mean
// forgets over about four weeks, each weekday's mean over about six of its
// own weeks. Early on the weight is 1/n (a plain average), so a young key is
// not dominated by its first day.
const (
	alphaAll     = 1.0 / 28
	alphaWeekday = 1.0 / 6
	// maxGapDays bounds the zero days folded in one step; after eight weeks
	// without a sale the means have decayed to a few percent anyway.
	maxGapDays = 56
	// minDispersion is the negative binomial shape assumed at most: SKU-store
	// daily demand is rarely less overdispersed than this, and a variance
	// estimated from a few weeks can be far too small by chance.
	minDispersion = 5
	// minWeekdayDays is how many of its own days a weekday needs before its
	// mean is trusted.
	minWeekdayDays = 3
)

const nsPerDay = int64(24 * 60 * 60 * 1e9)

// dayOf is the UTC day number of a unix-nanosecond time.
func dayOf(t int64) int32 {
	if t < 0 {
		return int32((t+1)/nsPerDay - 1)
	}
	return int32(t / nsPerDay)
}

// weekday of a day number: day 0 (1970-01-01) was a Thursday (4).
func weekday(day int32) int { return int((int64(day)%7 + 7 + 4) % 7) }

// rollDemand moves the statistics forward to day, folding the finished day
// and every zero-sale day between. Days with an empty shelf are censored
// (stock-outs hide demand) and left out; empty says the shelf is empty now,
// and the ledger has not moved since the last event, so the gap was too.
func rollDemand(d *state.Demand, day int32, empty, firstSeen bool) {
	if firstSeen {
		d.Day, d.Censored = day, empty
		return
	}
	if day <= d.Day {
		return
	}
	if !d.Censored {
		fold(d, d.Day, d.Today)
	}
	gap := int(day - d.Day - 1)
	if gap > maxGapDays {
		gap = maxGapDays
	}
	if !empty {
		for i := 1; i <= gap; i++ {
			fold(d, day-int32(gap)-1+int32(i), 0)
		}
	}
	d.Day, d.Today, d.Censored = day, 0, empty
}

func fold(d *state.Demand, day int32, x float64) {
	d.Days++
	a := math.Max(alphaAll, 1/float64(d.Days))
	d.Mean += a * (x - d.Mean)
	d.Sq += a * (x*x - d.Sq)
	w := weekday(day)
	d.WDays[w]++
	aw := math.Max(alphaWeekday, 1/float64(d.WDays[w]))
	d.WMean[w] += aw * (x - d.WMean[w])
	d.WSq[w] += aw * (x*x - d.WSq[w])
}

// expectation returns the expected units for a whole day like day and the
// standard deviation of daily units. The expectation is the larger of the
// weekday's mean and the overall mean, so a busy weekday pattern (weekends)
// raises it and never lowers it; the variance is at least that of a negative
// binomial with shape minDispersion.
func expectation(d *state.Demand, day int32) (mean, sd float64) {
	mean = d.Mean
	v := d.Sq - d.Mean*d.Mean
	if w := weekday(day); d.WDays[w] >= minWeekdayDays {
		mean = math.Max(mean, d.WMean[w])
		v = math.Max(v, d.WSq[w]-d.WMean[w]*d.WMean[w])
	}
	return mean, math.Sqrt(math.Max(v, mean+mean*mean/minDispersion))
}
