package analysis

import (
	"math"

	"github.com/pave-platform/pave/internal/stats"
)

// The error judge's floor acceptance: "the canary fails at most ErrorFloor
// more often than stable". It compares two confidence sequences, one per
// version, computed on the current step's window:
//
//	upper(canary, β/2) ≤ lower(stable, β/2) + ErrorFloor
//
// A confidence sequence holds the true rate at every sample count at once
// with probability 1-δ, so the engine may look every second. Each bound
// inverts a mixture martingale: for a candidate rate p, the Bernoulli
// likelihood of the window under a prior on the rate, divided by its
// likelihood at p, is a non-negative martingale with mean 1 while the
// version fails at rate p; by Ville's inequality it ever exceeds 1/δ with
// probability at most δ. The bounds are the rates p at which it equals
// 1/δ (Robbins, 1970; Howard et al., 2021).
//
// Then, whatever stable's rate: if the canary's exceeds it by ErrorFloor
// or more, the acceptance fires only when the canary's bound lies below
// its true rate or stable's above its, which happens, over the whole
// step however often it is looked at, with probability at most β/2 + β/2.
//
// The prior is an equal mixture of two Beta distributions (a mixture of
// martingales with fixed weights is one): Jeffreys' Beta(½, ½), which
// serves any rate, and Beta(½, 1/(2·floor)), whose mass lies near the
// floor, where the decision is made. A service with no errors at all is
// then accepted after 5,605 canary requests at an even split with the
// default floor (0.1%) and β = 5%: fewer than the 5,992 of the Chernoff
// bound this rule replaced, which was valid at one look only and took
// stable's observed rate for its true one.

// rateSeq is the mixture prior of a confidence sequence on an error rate.
type rateSeq struct {
	a, b [2]float64 // the two Beta priors' parameters
}

// newRateSeq is the prior for the given floor (0: Jeffreys' alone,
// twice).
func newRateSeq(floor float64) rateSeq {
	b2 := 0.5
	if floor > 0 {
		b2 = math.Max(0.5, 0.5/floor)
	}
	return rateSeq{a: [2]float64{0.5, 0.5}, b: [2]float64{0.5, b2}}
}

// logMarginal is the log of the prior mixture's likelihood of s failures
// in n requests (without the binomial coefficient, which cancels).
func (r rateSeq) logMarginal(s, n float64) float64 {
	terms := make([]float64, len(r.a))
	for i := range terms {
		a, b := r.a[i], r.b[i]
		terms[i] = logBeta(a+s, b+n-s) - logBeta(a, b)
	}
	return logMeanExp(terms)
}

func logBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// bounds returns the confidence sequence's lower and upper bound of the
// error rate of a version that served c, each holding at every sample
// count with probability at least 1-delta (the two together too: they
// come from one martingale; a one-sided mixture would be a little
// tighter, at the cost of a second computation).
func (r rateSeq) bounds(c stats.Counts, delta float64) (lower, upper float64) {
	if c.Requests == 0 {
		return 0, 1
	}
	n, s := float64(c.Requests), float64(min(c.Errors, c.Requests))
	// The martingale at p is exp(logMarginal + nll(p)); p is in the
	// sequence while it is below 1/delta, i.e. nll(p) < level. nll is
	// convex with its minimum at the observed rate, where the martingale
	// is at most 1, so the sequence is an interval around it.
	level := math.Log(1/delta) - r.logMarginal(s, n)
	nll := func(p float64) float64 {
		v := 0.0
		if s > 0 {
			v -= s * math.Log(p)
		}
		if n > s {
			v -= (n - s) * math.Log1p(-p)
		}
		return v
	}
	hat := s / n
	lower, upper = 0, 1
	if s > 0 { // below hat: lo is always outside, hi inside
		lo, hi := 0.0, hat
		for range 60 {
			if mid := (lo + hi) / 2; nll(mid) >= level {
				lo = mid
			} else {
				hi = mid
			}
		}
		lower = lo
	}
	if s < n { // above hat: hi is always outside, lo inside
		lo, hi := hat, 1.0
		for range 60 {
			if mid := (lo + hi) / 2; nll(mid) >= level {
				hi = mid
			} else {
				lo = mid
			}
		}
		upper = hi
	}
	return lower, upper
}

// floorAccepts is the floor acceptance on one window: the canary's upper
// bound and stable's lower bound, each at β/2, and whether the first lies
// within the second plus ErrorFloor.
func (c Config) floorAccepts(canary, stable stats.Counts) (canaryUpper, stableLower float64, ok bool) {
	seq := newRateSeq(c.ErrorFloor)
	_, canaryUpper = seq.bounds(canary, c.Beta/2)
	stableLower, _ = seq.bounds(stable, c.Beta/2)
	ok = canary.Requests > 0 && c.ErrorFloor > 0 && canaryUpper <= stableLower+c.ErrorFloor
	return canaryUpper, stableLower, ok
}

// floorSamples is the fewest canary requests at which the floor
// acceptance fires when the canary fails at rate pc and stable at ps,
// stable serving stablePerCanary requests for each of the canary's (+Inf
// without a floor, or never). Both bounds tighten with the counts, so a
// bisection on the canary's count finds it.
func (c Config) floorSamples(pc, ps, stablePerCanary float64) float64 {
	if c.ErrorFloor <= 0 || stablePerCanary <= 0 || pc >= ps+c.ErrorFloor {
		return math.Inf(1)
	}
	ok := func(n uint64) bool {
		ns := uint64(math.Round(stablePerCanary * float64(n)))
		_, _, ok := c.floorAccepts(stats.Counts{Requests: n, Errors: uint64(math.Round(pc * float64(n)))},
			stats.Counts{Requests: ns, Errors: uint64(math.Round(ps * float64(ns)))})
		return ok
	}
	lo, hi := uint64(1), uint64(1)
	for !ok(hi) {
		if hi > 1<<40 {
			return math.Inf(1)
		}
		lo, hi = hi, hi*2
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return float64(hi)
}
