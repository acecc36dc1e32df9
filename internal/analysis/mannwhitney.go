package analysis

import (
	"fmt"
	"math"

	"github.com/pave-platform/pave/internal/stats"
)

// The latency judge is a Mann-Whitney U test on the latency histograms. It
// estimates the probability of superiority A = P(canary slower) + ½P(tie)
// from the bucket counts (requests in one bucket tie), which is 0.5 when
// both versions are alike whatever the shape of their distributions. As in
// Kayenta, a difference only counts when it is larger than a tolerance on
// that effect size: with enough traffic every difference is significant,
// and few differences matter. The canary fails when the whole confidence
// band of A lies above 0.5+tolerance and passes (when acceptance is
// required) when the whole band lies below it.

// MannWhitney returns the probability of superiority of a over b and its
// standard error under the null hypothesis (with the tie correction).
func MannWhitney(a, b stats.Counts) (effect, se float64) {
	var na, nb float64
	for _, n := range a.Latency {
		na += float64(n)
	}
	for _, n := range b.Latency {
		nb += float64(n)
	}
	if na == 0 || nb == 0 {
		return math.NaN(), math.NaN()
	}
	var u, below, ties float64
	for i := 0; i < len(a.Latency) || i < len(b.Latency); i++ {
		var ca, cb float64
		if i < len(a.Latency) {
			ca = float64(a.Latency[i])
		}
		if i < len(b.Latency) {
			cb = float64(b.Latency[i])
		}
		u += ca * (below + cb/2)
		below += cb
		t := ca + cb
		ties += t*t*t - t
	}
	n := na + nb
	variance := na * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance < 0 {
		variance = 0
	}
	return u / (na * nb), math.Sqrt(variance) / (na * nb)
}

func (c Config) latencyFinding(scope string, canary, stable stats.Counts, requireAccept bool) Finding {
	f := Finding{Judge: JudgeLatency, Scope: scope, Verdict: Pass, Numbers: map[string]float64{
		"tolerance": c.LatencyTolerance, "z": c.LatencyZ,
		"canaryP50Ms": nanZero(canary.Quantile(0.5)), "canaryP99Ms": nanZero(canary.Quantile(0.99)),
		"stableP50Ms": nanZero(stable.Quantile(0.5)), "stableP99Ms": nanZero(stable.Quantile(0.99)),
	}}
	where := ""
	if scope != TotalScope {
		where = " on route " + scope
	}
	effect, se := MannWhitney(canary, stable)
	if math.IsNaN(effect) {
		f.Reason = "latency" + where + ": no samples on one side yet"
		if requireAccept {
			f.Verdict = Hold
			f.Reason = "latency" + where + " inconclusive: no samples on one side yet"
		}
		return f
	}
	f.Numbers["effect"], f.Numbers["stdErr"] = effect, se
	limit := 0.5 + c.LatencyTolerance
	lo, hi := effect-c.LatencyZ*se, effect+c.LatencyZ*se
	quant := fmt.Sprintf("canary p50 %.0f ms p99 %.0f ms vs stable p50 %.0f ms p99 %.0f ms; P(canary slower) %.3f ± %.3f",
		f.Numbers["canaryP50Ms"], f.Numbers["canaryP99Ms"], f.Numbers["stableP50Ms"], f.Numbers["stableP99Ms"], effect, c.LatencyZ*se)
	shift := math.Max(f.Numbers["canaryP50Ms"]-f.Numbers["stableP50Ms"], f.Numbers["canaryP99Ms"]-f.Numbers["stableP99Ms"])
	f.Numbers["floorMs"], f.Numbers["shiftMs"] = c.LatencyFloorMs, shift
	switch {
	case c.LatencyFloorMs > 0 && shift < c.LatencyFloorMs && canary.Requests >= c.MinSamples:
		f.Reason = fmt.Sprintf("latency%s: %s; the shift (%.1f ms) is below the %.0f ms floor", where, quant, shift, c.LatencyFloorMs)
	case lo > limit && canary.Requests < c.MinSamples:
		// The normal approximation of U is poor on a handful of samples
		// and the judge looks every second: wait for the minimum.
		f.Verdict = Hold
		f.Reason = fmt.Sprintf("latency%s suspect, waiting for %d samples (%d so far): %s", where, c.MinSamples, canary.Requests, quant)
	case lo > limit:
		f.Verdict = Fail
		f.Reason = fmt.Sprintf("latency%s: %s is above the tolerated %.3f", where, quant, limit)
	case requireAccept && hi >= limit:
		f.Verdict = Hold
		f.Reason = fmt.Sprintf("latency%s inconclusive: %s; not yet clearly below %.3f", where, quant, limit)
	default:
		f.Reason = fmt.Sprintf("latency%s: %s, within the tolerated %.3f", where, quant, limit)
	}
	return f
}
