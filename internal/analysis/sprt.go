package analysis

import (
	"fmt"
	"math"

	"github.com/pave-platform/pave/internal/stats"
)

// The error judge is a sequential probability ratio test on the failed
// requests of a window, conditioned on how many requests each version
// served. Given n_c canary and n_s stable requests, a failed request comes
// from the canary with probability θ0 = n_c/(n_c+n_s) when both versions
// fail equally often (H0), and θ1 = ρn_c/(ρn_c+n_s) when the canary fails ρ
// times as often (H1, ρ = ErrorRatio). The stable error rate cancels out,
// so the test needs no estimate of it, and it stays exact while stable's
// own error rate drifts: both versions are seen in the same window.
//
// The likelihood ratio is a non-negative martingale under H0, so by Ville's
// inequality it exceeds 1/α with probability at most α however often it is
// looked at (an always-valid test): the engine may evaluate it every second.
// Symmetrically, under H1 it falls below β with probability at most β.

// errorLLR is the log-likelihood ratio of H1 against H0 for one window in
// which the canary's share of requests was constant.
func (c Config) errorLLR(canary, stable stats.Counts) float64 {
	return errorLLRAt(c.ErrorRatio, canary, stable)
}

// errorLLRAt is errorLLR for the alternative "the canary fails rho times
// as often".
func errorLLRAt(rho float64, canary, stable stats.Counts) float64 {
	nc, ns := float64(canary.Requests), float64(stable.Requests)
	if nc == 0 || ns == 0 {
		return 0
	}
	t0 := nc / (nc + ns)
	t1 := rho * nc / (rho*nc + ns)
	return float64(canary.Errors)*math.Log(t1/t0) + float64(stable.Errors)*math.Log((1-t1)/(1-t0))
}

// The rollback side of the error judge is a mixture of two likelihood
// ratios, with equal weights: ρ = ErrorRatio and ρ² (3 and 9 by
// default), each a product over the release's steps (stored as its own
// test's evidence, budget.go). A fixed ρ = 3 needs about twice Wald's
// oracle sample size for a severe regression (an error rate 10 times
// stable's: each canary failure weighs log 3 instead of log 10); the
// mixture adapts to it at the cost of log 2 on the threshold: +5 points
// on a 0.5% service decides after about 100 canary requests instead of
// 150, and a regression of exactly ρ needs about 10% more. A mixture of
// test martingales with fixed weights is one, so the α budget holds.
// Acceptance (the lower boundary before the last step) stays the SPRT of
// ρ alone.

// errorHighRatio is the mixture's second alternative.
func (c Config) errorHighRatio() float64 { return c.ErrorRatio * c.ErrorRatio }

// errorHighKey names the ρ² part of a scope's error evidence.
func errorHighKey(scope string) string { return testKey(JudgeErrors+"/high", scope) }

// errorMixture is the log e-process of the error judge on one scope: the
// evidence of finished steps and the current step's, for both parts.
func (e Evidence) errorMixture(scope string, step, stepHigh float64) float64 {
	return logMeanExp([]float64{e.combined(testKey(JudgeErrors, scope), step), e.combined(errorHighKey(scope), stepHigh)})
}

// errorFinding judges the error e-process of one scope: logE is the log
// of the release's e-process for this test (budget.go), segment the log
// likelihood ratio since the current segment began, which the acceptance
// before the last step uses as Wald's lower boundary.
func (c Config) errorFinding(scope string, logE, segment, alpha float64, canary, stable stats.Counts, requireAccept bool) Finding {
	upper, lower := math.Log(1/alpha), math.Log(c.Beta)
	f := Finding{Judge: JudgeErrors, Scope: scope, Verdict: Pass, Numbers: map[string]float64{
		"llr": logE, "segmentLLR": segment, "failAt": upper, "acceptAt": lower, "alpha": alpha, "beta": c.Beta, "errorRatio": c.ErrorRatio,
		"canaryRequests": float64(canary.Requests), "canaryErrors": float64(canary.Errors), "canaryErrorRate": canary.ErrorRate(),
		"stableRequests": float64(stable.Requests), "stableErrors": float64(stable.Errors), "stableErrorRate": stable.ErrorRate(),
	}}
	where := ""
	if scope != TotalScope {
		where = " on route " + scope
	}
	rates := fmt.Sprintf("canary %.3f%% (%d/%d) vs stable %.3f%% (%d/%d)", 100*canary.ErrorRate(), canary.Errors, canary.Requests,
		100*stable.ErrorRate(), stable.Errors, stable.Requests)
	bound, stableLower, small := c.floorAccepts(canary, stable)
	f.Numbers["canaryErrorRateUpper"] = bound
	f.Numbers["stableErrorRateLower"] = stableLower
	f.Numbers["errorFloor"] = c.ErrorFloor
	drift := c.errorDrift(canary, stable)
	switch {
	case logE >= upper:
		f.Verdict = Fail
		f.Reason = fmt.Sprintf("error rate%s: %s; the evidence for a %gx (or %gx) error rate reached log e-value %.2f ≥ %.2f (α per test %.2g)",
			where, rates, c.ErrorRatio, c.errorHighRatio(), logE, upper, alpha)
	case logE >= upper/2:
		// Half-way to a rollback: the evidence leans towards a
		// regression, so the canary must not take more traffic yet.
		f.Verdict = Hold
		f.Reason = fmt.Sprintf("error rate%s suspect: %s; log e-value %.2f is past half of %.2f, holding the step", where, rates, logE, upper)
		if drift > 0 {
			f.Numbers["moreCanaryRequests"] = (upper - logE) / drift
		} else if drift < 0 {
			f.Numbers["moreCanaryRequests"] = (logE - upper/2) / -drift
		}
	case requireAccept && segment > lower && !small:
		f.Verdict = Hold
		f.Reason = fmt.Sprintf("error rate%s inconclusive: %s; log-likelihood ratio %.2f is not yet ≤ %.2f (β=%.2g)", where, rates, segment, lower, c.Beta)
		// As the evidence goes if the canary keeps its observed rate,
		// or, when that leads away from acceptance, if it is as good as
		// stable (the pooled rate): the figure a healthy canary needs.
		more := c.floorRequests(canary, stable)
		if drift >= 0 {
			drift = c.pooledDrift(canary, stable)
		}
		if drift < 0 {
			more = math.Min(more, (segment-lower)/-drift)
		}
		f.Numbers["moreCanaryRequests"] = more
	case requireAccept && segment > lower:
		f.Reason = fmt.Sprintf("error rate%s accepted: %s; the canary's rate is at most %.3f%% and stable's at least %.3f%% (confidence sequences, %.0f%% together), within the %.3f%% floor",
			where, rates, 100*bound, 100*stableLower, 100*(1-c.Beta), 100*c.ErrorFloor)
	case requireAccept:
		f.Reason = fmt.Sprintf("error rate%s accepted: %s; log-likelihood ratio %.2f ≤ %.2f", where, rates, segment, lower)
	default:
		f.Reason = fmt.Sprintf("error rate%s: %s; log e-value %.2f below %.2f", where, rates, logE, upper)
	}
	return f
}

// errorDrift is the expected change of the log-likelihood ratio per
// canary request at the window's observed rates (0 when there is nothing
// to go by).
func (c Config) errorDrift(canary, stable stats.Counts) float64 {
	if canary.Requests == 0 || stable.Requests == 0 || canary.Errors+stable.Errors == 0 {
		return 0
	}
	nc, ns := float64(canary.Requests), float64(stable.Requests)
	t0 := nc / (nc + ns)
	t1 := c.ErrorRatio * nc / (c.ErrorRatio*nc + ns)
	return (float64(canary.Errors)*math.Log(t1/t0) + float64(stable.Errors)*math.Log((1-t1)/(1-t0))) / nc
}

// pooledDrift is errorDrift with both versions failing at their pooled
// rate: how the evidence moves while the canary is as good as stable.
func (c Config) pooledDrift(canary, stable stats.Counts) float64 {
	n := canary.Requests + stable.Requests
	if canary.Requests == 0 || stable.Requests == 0 || canary.Errors+stable.Errors == 0 {
		return 0
	}
	p := float64(canary.Errors+stable.Errors) / float64(n)
	nc, ns := float64(canary.Requests), float64(stable.Requests)
	t0 := nc / (nc + ns)
	t1 := c.ErrorRatio * nc / (c.ErrorRatio*nc + ns)
	return p * (math.Log(t1/t0) + ns/nc*math.Log((1-t1)/(1-t0)))
}

// floorRequests is how many more canary requests, at the canary's
// observed rate (or the pooled one when that leads nowhere) and stable's,
// the floor acceptance needs, stable's count growing in proportion (+Inf
// when it cannot fire).
func (c Config) floorRequests(canary, stable stats.Counts) float64 {
	if canary.Requests == 0 || stable.Requests == 0 {
		return math.Inf(1)
	}
	r, ps := canary.ErrorRate(), stable.ErrorRate()
	if r >= ps+c.ErrorFloor {
		r = float64(canary.Errors+stable.Errors) / float64(canary.Requests+stable.Requests) // as if the canary were as good as stable
		ps = r
	}
	n := c.floorSamples(r, ps, float64(stable.Requests)/float64(canary.Requests))
	return math.Max(0, n-float64(canary.Requests))
}

// WaldASN is Wald's approximation of the expected number of samples a
// Bernoulli SPRT of p0 against p1 needs when the true rate is p, for the
// error bounds alpha and beta: the statistical limit that an oracle knowing
// the stable rate p0 and testing exactly the true alternative attains.
func WaldASN(p0, p1, p, alpha, beta float64) float64 {
	a, b := math.Log((1-beta)/alpha), math.Log(beta/(1-alpha))
	win, loss := math.Log(p1/p0), math.Log((1-p1)/(1-p0))
	drift := p*win + (1-p)*loss
	if drift == 0 {
		return math.Inf(1)
	}
	// Probability of ending at the upper boundary, by Wald's identity with
	// the exponent h solving E[exp(h·z)] = 1; for p = p1 (h = -1) and
	// p = p0 (h = 1) it is 1-beta and alpha.
	var pu float64
	switch {
	case p == p1:
		pu = 1 - beta
	case p == p0:
		pu = alpha
	default:
		h := solveH(p, win, loss)
		ea, eb := math.Exp(h*a), math.Exp(h*b)
		pu = (1 - eb) / (ea - eb)
	}
	return (pu*a + (1-pu)*b) / drift
}

// solveH finds h ≠ 0 with p·e^{h·win} + (1-p)·e^{h·loss} = 1, by bisection.
func solveH(p, win, loss float64) float64 {
	g := func(h float64) float64 { return p*math.Exp(h*win) + (1-p)*math.Exp(h*loss) - 1 }
	drift := p*win + (1-p)*loss
	// The non-zero root has the opposite sign of the drift.
	lo, hi := 1e-9, 50.0
	if drift > 0 {
		lo, hi = -50, -1e-9
	}
	for range 200 {
		mid := (lo + hi) / 2
		if (g(mid) > 0) == (g(hi) > 0) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return (lo + hi) / 2
}
