package analysis

import (
	"math"

	"github.com/pave-platform/pave/internal/stats"
)

// The latency judge's sequential test follows Lindon, Sanden and Shirikian,
// "Rapid Regression Detection in Software Deployments through Sequential
// Testing" (KDD 2022): requests of both versions arrive as counting
// processes whose intensity may vary over time in any way (load, time of
// day, a warming cache), but which share it while both versions serve the
// same traffic. Conditioned on a request having landed in latency bucket
// j, the version that served it is then the canary with probability
// θ0 = n_c/(n_c+n_s), the canary's share of the window, in every bucket,
// if and only if both versions have the same latency distribution. The
// drift cancels out, as stable's error rate does in the error judge.
//
// The alternative is stochastic order, "the canary is slower": the odds
// that a request of bucket j came from the canary grow with its latency,
//
//	logit P(canary | j) = logit θ0 + b·(ln ms_j − ln m),   b > 0,
//
// which is exactly the form a shift of a log-normal latency takes (the
// log density ratio is linear in ln ms), with m the median of both
// versions' requests in the window. For each b the product over requests
// of P_b(version | bucket) / P_0(version | bucket) is a likelihood ratio
// with expectation 1 under equality; a mixture over a grid of b (from
// 0.05 to 40 log-odds per e-fold of latency, equal weights) is one too,
// and adapts to the size of the slowdown without knowing it in advance.
// The mixture's log is the step's log e-value; steps multiply (budget.go).
//
// The test needs only the step's bucket counts, so the engine computes it
// from the step's baseline counters and the current ones: nothing else is
// stored, and a restarted engine continues the same test.

// latencySlopes is the mixture's grid of b.
var latencySlopes = latencySlopesArray[:]

var latencySlopesArray = func() (out [24]float64) {
	lo, hi := math.Log(0.05), math.Log(40)
	for i := range out {
		out[i] = math.Exp(lo + (hi-lo)*float64(i)/float64(len(out)-1))
	}
	return out
}()

// bucketLogMs is the log of each latency bucket's geometric midpoint.
var bucketLogMs = func() []float64 {
	b := stats.LatencyBounds
	out := make([]float64, len(b)+1)
	out[0] = math.Log(b[0] / math.Sqrt(b[1]/b[0]))
	for i := 1; i < len(b); i++ {
		out[i] = math.Log(math.Sqrt(b[i-1] * b[i]))
	}
	out[len(b)] = math.Log(b[len(b)-1] * math.Sqrt(b[len(b)-1]/b[len(b)-2]))
	return out
}()

// latencyLogE is the log e-value of "the canary is slower" over one window.
func latencyLogE(canary, stable stats.Counts) float64 {
	n := max(len(canary.Latency), len(stable.Latency))
	at := func(l []uint64, i int) float64 {
		if i < len(l) {
			return float64(l[i])
		}
		return 0
	}
	var nc, ns float64
	for i := range n {
		nc += at(canary.Latency, i)
		ns += at(stable.Latency, i)
	}
	if nc == 0 || ns == 0 {
		return 0
	}
	t0 := nc / (nc + ns)
	// The centre: the bucket holding the median of both versions' requests.
	var seen float64
	centre := 0
	for i := range n {
		seen += at(canary.Latency, i) + at(stable.Latency, i)
		if seen >= (nc+ns)/2 {
			centre = i
			break
		}
	}
	// The buckets that hold requests, with their distance from the centre:
	// the mixture below visits them once per slope (this is the judges'
	// hottest loop, run at every look on every scope).
	type bucket struct{ c, s, x float64 }
	var buf [64]bucket
	used := buf[:0]
	for i := range n {
		if c, s := at(canary.Latency, i), at(stable.Latency, i); c+s > 0 {
			used = append(used, bucket{c, s, logMs(i) - logMs(centre)})
		}
	}
	base, logT0, log1mT0 := math.Log(t0/(1-t0)), math.Log(t0), math.Log(1-t0)
	var terms [len(latencySlopesArray)]float64
	for k, b := range latencySlopes {
		var l float64
		for _, u := range used {
			eta := base + b*u.x
			ls := logSigmoid(eta) // and log σ(-η) = log σ(η) - η
			l += u.c*(ls-logT0) + u.s*(ls-eta-log1mT0)
		}
		terms[k] = l
	}
	return logMeanExp(terms[:])
}

func logMs(i int) float64 {
	if i < len(bucketLogMs) {
		return bucketLogMs[i]
	}
	return bucketLogMs[len(bucketLogMs)-1]
}

// logSigmoid is log(1/(1+e^-x)), stable for large |x|.
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}
