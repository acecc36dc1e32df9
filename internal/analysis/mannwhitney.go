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

// latencyFinding judges the latency e-process of one scope (logE, see
// sequential.go and budget.go) on the current step's window. A rollback
// needs the e-process at 1/alpha and, as in Kayenta, an effect that
// matters: the rank effect above 0.5+LatencyTolerance and a p50 or p99
// shift of at least LatencyFloorMs (both only ever withhold a rollback, so
// the α bound stands). Acceptance before the last step needs the
// Mann-Whitney band below the tolerance; it decides promotions, never
// rollbacks.
func (c Config) latencyFinding(scope string, logE, alpha float64, canary, stable stats.Counts, requireAccept bool) Finding {
	upper := math.Log(1 / alpha)
	f := Finding{Judge: JudgeLatency, Scope: scope, Verdict: Pass, Numbers: map[string]float64{
		"tolerance": c.LatencyTolerance, "z": c.LatencyZ, "logE": logE, "failAt": upper, "alpha": alpha,
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
	hi := effect + c.LatencyZ*se
	quant := fmt.Sprintf("canary p50 %.0f ms p99 %.0f ms vs stable p50 %.0f ms p99 %.0f ms; P(canary slower) %.3f ± %.3f; log e-value %.2f of %.2f",
		f.Numbers["canaryP50Ms"], f.Numbers["canaryP99Ms"], f.Numbers["stableP50Ms"], f.Numbers["stableP99Ms"], effect, c.LatencyZ*se, logE, upper)
	shift := math.Max(f.Numbers["canaryP50Ms"]-f.Numbers["stableP50Ms"], f.Numbers["canaryP99Ms"]-f.Numbers["stableP99Ms"])
	f.Numbers["floorMs"], f.Numbers["shiftMs"] = c.LatencyFloorMs, shift
	matters := effect > limit && (c.LatencyFloorMs == 0 || shift >= c.LatencyFloorMs)
	nc := float64(canary.Requests)
	switch {
	case logE >= upper && matters:
		f.Verdict = Fail
		f.Reason = fmt.Sprintf("latency%s: %s; the canary is slower (α per test %.2g) by more than the tolerated %.3f", where, quant, alpha, limit)
	case logE >= upper/2 && matters:
		f.Verdict = Hold
		f.Reason = fmt.Sprintf("latency%s suspect: %s; past half-way to a rollback, holding the step", where, quant)
		if step := latencyLogE(canary, stable); step > 0 && nc > 0 {
			f.Numbers["moreCanaryRequests"] = (upper - logE) / (step / nc)
		}
	case c.LatencyFloorMs > 0 && shift < c.LatencyFloorMs && canary.Requests >= c.MinSamples:
		f.Reason = fmt.Sprintf("latency%s: %s; the shift (%.1f ms) is below the %.0f ms floor", where, quant, shift, c.LatencyFloorMs)
	case requireAccept && hi >= limit:
		f.Verdict = Hold
		f.Reason = fmt.Sprintf("latency%s inconclusive: %s; not yet clearly below %.3f", where, quant, limit)
		if effect < limit && se > 0 {
			// The band narrows as 1/√n.
			need := nc * math.Pow(c.LatencyZ*se/(limit-effect), 2)
			f.Numbers["moreCanaryRequests"] = math.Max(0, need-nc)
		}
	default:
		f.Reason = fmt.Sprintf("latency%s: %s, within the tolerated %.3f", where, quant, limit)
	}
	return f
}
