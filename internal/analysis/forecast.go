package analysis

import (
	"math"

	"github.com/pave-platform/pave/internal/stats"
)

// Forecasting how long the judges need.
//
// Before a release starts, and while it runs, the engine asks how long
// each step will take to pass a canary that is as good as stable, at the
// service's recent traffic: a low-traffic service whose steps cannot
// decide within their time budget ends paused for a person, and saying
// so up front lets its owner add a shadow step or a longer budget first.
//
// The figures are the judges' own requirements, for a canary as good as
// stable (the healthy case, the one that should ship on its own):
//
//   - every step: MinSamples canary requests (no judge passes below) and
//     the engine's minimum time and samples per step;
//   - the step before 100% must accept the canary. The error judge
//     accepts when its sequential test's log-likelihood ratio since the
//     segment began falls to log β: the ratio drifts by the expected
//     per-request drift while both versions fail at stable's rate, and
//     Wald's approximation of the expected sample size under H0, with
//     the test's α and β, is the boundary it is expected to reach
//     ((1-a)·log β + a·log(1/a)) over that drift (see WaldASN). Or it
//     accepts once the canary's upper error bound lies within stable's
//     lower bound plus ErrorFloor (floorAccepts, confseq.go), which is what
//     a service with no errors at all needs (its ratio test has nothing to
//     count). The earlier one counts.
//   - the latency judge accepts at MinSamples when LatencyFloorMs is set
//     (a shift below the floor never holds a step); without a floor the
//     Mann-Whitney band z·se must lie below the tolerance, se² = (1/nc +
//     1/ns)/12 without ties (ties only narrow it).
//
// Mirrored copies (a release with a shadow step keeps its mirror on) add
// to the canary's and stable's samples as they do in Evaluate: the
// shadow step judges them alone, later steps with the live share.

// Load is a service's traffic as the judges of a step see it.
type Load struct {
	// Rate is the service's live requests per second, every version.
	Rate float64
	// ErrorRate is stable's error rate (0..1).
	ErrorRate float64
	// Mirrored is the copies per second a shadow step's mirror sends the
	// canary (and stable); 0 without a mirror.
	Mirrored float64
}

// StepPlan is one step the forecast covers.
type StepPlan struct {
	// Share is the canary's share (0..1) of the live requests; 0 for a
	// shadow step, which judges the mirrored copies alone.
	Share float64
	// Mirrored adds the mirror's copies to the step's samples.
	Mirrored bool
	// Final marks the step before 100%: the judges must accept the canary.
	Final bool
	// MinSeconds and MinSamples are the engine's minimum time and canary
	// requests for the step.
	MinSeconds float64
	MinSamples uint64
}

// Need is what one step needs, in expectation, to pass a canary as good
// as stable.
type Need struct {
	// Seconds is the expected time (+Inf: never at this load).
	Seconds float64
	// Samples is the canary requests (live and mirrored) seen by then.
	Samples float64
	// Judge names what sets the time: "min-samples", "min-time",
	// JudgeErrors or JudgeLatency.
	Judge string
}

// Forecast is the expected need of each step, in order, for a release
// whose evidence so far is e (its α per test, and the error test's
// likelihood ratio of the current segment, which the final step's
// acceptance continues).
func (c Config) Forecast(e Evidence, load Load, steps []StepPlan) []Need {
	out := make([]Need, len(steps))
	a := c.alphaTotal(e)
	segment := e.segment(testKey(JudgeErrors, TotalScope))
	for i, s := range steps {
		canary, stable := s.Share*load.Rate, (1-s.Share)*load.Rate
		var mirror float64
		if s.Mirrored {
			mirror = load.Mirrored
		}
		perSec := canary + mirror
		if perSec <= 0 {
			out[i] = Need{Seconds: math.Inf(1), Judge: "min-samples"}
			continue
		}
		n := Need{Seconds: s.MinSeconds, Judge: "min-time"}
		if t := float64(max(s.MinSamples, c.MinSamples)) / perSec; t > n.Seconds {
			n = Need{Seconds: t, Judge: "min-samples"}
		}
		// The error test's drift per second, over its strata
		// (errorStrata): the mirrored routes compare the canary's live
		// and mirrored answers with stable's live ones and the two
		// mirrored copies' (the mirror copies stable's live requests of
		// those routes, so stable answers 3 × mirror of them a second);
		// the other routes compare the live split alone.
		drift := canary * c.healthyDrift(s.Share, load.ErrorRate)
		if mirror > 0 {
			routed := math.Min(load.Rate, mirror/(1-s.Share)) // the mirrored routes' live requests
			mc := s.Share*routed + mirror
			drift = mc*c.healthyDrift(mc/(mc+3*mirror), load.ErrorRate) + s.Share*(load.Rate-routed)*c.healthyDrift(s.Share, load.ErrorRate)
		}
		if s.Final {
			target := (1-a)*math.Log(c.Beta) + a*math.Log(1/a)
			ratio := math.Inf(1)
			switch {
			case segment <= target:
				ratio = 0
			case drift < 0:
				ratio = (target - segment) / drift
			}
			// The floor acceptance compares the window's canary answers
			// with stable's: its live ones and, with a mirror, the two
			// mirrored copies'.
			floor := c.floorSamples(load.ErrorRate, load.ErrorRate, (stable+2*mirror)/perSec) / perSec
			if t := math.Min(ratio, floor); t > n.Seconds {
				n = Need{Seconds: t, Judge: JudgeErrors}
			}
			if c.LatencyFloorMs == 0 {
				if t := c.latencySeconds(perSec, stable+mirror); t > n.Seconds {
					n = Need{Seconds: t, Judge: JudgeLatency}
				}
			}
		}
		if !math.IsInf(n.Seconds, 1) {
			n.Samples = n.Seconds * perSec
			segment += drift * n.Seconds
		}
		out[i] = n
	}
	return out
}

// healthyDrift is the error test's expected log-likelihood ratio per
// canary request when the canary takes share of the requests and both
// versions fail at rate p: the judge's pooledDrift, fed the counts a
// long window at that share and rate would hold.
func (c Config) healthyDrift(share, p float64) float64 {
	if share <= 0 || share >= 1 || p <= 0 {
		return 0
	}
	const n = 1e9
	canary := stats.Counts{Requests: uint64(share * n), Errors: uint64(share * n * p)}
	stable := stats.Counts{Requests: uint64((1 - share) * n), Errors: uint64((1 - share) * n * p)}
	return c.pooledDrift(canary, stable)
}

// latencySeconds is the time until the latency band of a canary as fast
// as stable lies below the tolerance: z·√((1/nc + 1/ns)/12) ≤ tolerance.
func (c Config) latencySeconds(canaryPerSec, stablePerSec float64) float64 {
	if c.LatencyTolerance <= 0 || stablePerSec <= 0 {
		return math.Inf(1)
	}
	k := c.LatencyZ / c.LatencyTolerance
	return k * k / 12 * (1/canaryPerSec + 1/stablePerSec)
}
