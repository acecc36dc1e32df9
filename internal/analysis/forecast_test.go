package analysis

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

func defaultSteps(minSeconds float64, minSamples uint64, shares ...float64) []StepPlan {
	out := make([]StepPlan, len(shares))
	for i, s := range shares {
		out[i] = StepPlan{Share: s, MinSeconds: minSeconds, MinSamples: minSamples, Final: i == len(shares)-1}
	}
	return out
}

func TestForecastFollowsTheJudgesRequirements(t *testing.T) {
	c := DefaultConfig()
	e := NewEvidence(1)
	steps := defaultSteps(10, 100, 0.01, 0.05, 0.10, 0.25, 0.50)

	// A busy service with errors: every step but the last waits for the
	// minimum samples or time; the last for the error test's acceptance,
	// at Wald's expected sample size over the healthy drift.
	busy := c.Forecast(e, Load{Rate: 100, ErrorRate: 0.005}, steps)
	if busy[0].Judge != "min-samples" || busy[0].Seconds != 100 {
		t.Errorf("1%% of 100 req/s: %+v, want 100 s for 100 samples", busy[0])
	}
	last := busy[4]
	if last.Judge != JudgeErrors {
		t.Fatalf("final step: %+v, want the error judge's acceptance", last)
	}
	// The drift per canary request at an even split, 0.5% errors, ρ=3:
	// p·(ln(0.75/0.5) + ln(0.25/0.5)). Earlier steps moved it already.
	drift := 0.005 * (math.Log(1.5) + math.Log(0.5))
	var earlier float64
	for i, s := range steps[:4] {
		earlier += busy[i].Seconds * 100 * s.Share * c.healthyDrift(s.Share, 0.005)
	}
	a := c.alphaTotal(e)
	target := (1-a)*math.Log(c.Beta) + a*math.Log(1/a)
	if want := (target - earlier) / drift; math.Abs(last.Samples-want) > 1 {
		t.Errorf("final step samples %.1f, want %.1f", last.Samples, want)
	}

	// Without errors the ratio test has nothing to count: the canary's
	// upper bound (a confidence sequence at β/2) must come within the
	// floor of stable's lower bound, 0: exactly when the judge's own
	// acceptance first fires, about 5,600 canary requests at the even
	// split.
	clean := c.Forecast(e, Load{Rate: 1000}, steps)
	n := uint64(math.Round(clean[4].Samples))
	accepts := func(n uint64) bool {
		_, _, ok := c.floorAccepts(stats.Counts{Requests: n}, stats.Counts{Requests: n})
		return ok
	}
	if clean[4].Judge != JudgeErrors || !accepts(n) || accepts(n-1) || n < 5000 || n > 6000 {
		t.Errorf("no errors: final %+v, want the first count the floor acceptance fires at (about 5,600)", clean[4])
	}
	// 10 requests/s: the first step needs 100 canary requests at 0.1/s.
	slow := c.Forecast(e, Load{Rate: 10}, steps)
	if slow[0].Seconds != 1000 || slow[0].Judge != "min-samples" {
		t.Errorf("1%% of 10 req/s: %+v, want 1000 s for 100 samples", slow[0])
	}
	// No traffic: never.
	if none := c.Forecast(e, Load{}, steps); !math.IsInf(none[0].Seconds, 1) {
		t.Errorf("no traffic: %+v", none[0])
	}
	// The mirror's copies count: a shadow step (share 0) at 5 copies/s,
	// and the later steps go faster with them.
	mirrored := []StepPlan{{Share: 0, Mirrored: true, MinSamples: 100}}
	for _, s := range steps {
		s.Mirrored = true
		mirrored = append(mirrored, s)
	}
	m := c.Forecast(e, Load{Rate: 10, Mirrored: 5}, mirrored)
	if m[0].Seconds != 20 || m[1].Seconds >= slow[0].Seconds/10 {
		t.Errorf("with the mirror: shadow %+v, first step %+v (without %+v)", m[0], m[1], slow[0])
	}
	// Without a latency floor the Mann-Whitney band sets the last step of
	// a service whose errors decide early.
	c.LatencyFloorMs = 0
	lat := c.Forecast(e, Load{Rate: 10, ErrorRate: 0.5}, defaultSteps(0, 0, 0.5))
	k := c.LatencyZ / c.LatencyTolerance
	if want := k * k / 12 * (1/5.0 + 1/5.0); lat[0].Judge != JudgeLatency || math.Abs(lat[0].Seconds-want) > 1e-9 {
		t.Errorf("no latency floor: %+v, want %.2f s", lat[0], want)
	}
}

// TestForecastMatchesTheJudges runs the real judges on simulated final
// steps of healthy canaries and compares the canary requests they took to
// accept with the forecast's figure.
func TestForecastMatchesTheJudges(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	e := NewEvidence(1)
	rng := rand.New(rand.NewPCG(20, 20))
	for _, p := range []float64{0.005, 0.02, 0.05} {
		want := c.Forecast(e, Load{Rate: 100, ErrorRate: p}, []StepPlan{{Share: 0.5, Final: true}})[0].Samples
		runs := 200
		if raceEnabled {
			runs = 80 // the first 80 of the same stream; the mean's noise stays well inside ±30%
		}
		var sum float64
		for range runs {
			var w Window
			for n := 1; ; n++ {
				for range 5 {
					w.Canary.Total.Observe(status(rng, p), 10)
					w.Stable.Total.Observe(status(rng, p), 10)
				}
				if d := c.Evaluate(e, w, true); d.Verdict == Pass {
					break
				} else if d.Verdict == Fail || n > 100000 {
					t.Fatalf("p=%v: %s", p, d.Reason)
				}
			}
			sum += float64(w.Canary.Total.Requests)
		}
		mean := sum / float64(runs)
		t.Logf("error rate %.1f%%: the judges accepted after %.0f canary requests on average, forecast %.0f", 100*p, mean, want)
		if mean < 0.7*want || mean > 1.3*want {
			t.Errorf("error rate %.1f%%: judges %.0f, forecast %.0f: more than 30%% apart", 100*p, mean, want)
		}
	}
}

func status(rng *rand.Rand, p float64) int {
	if rng.Float64() < p {
		return 500
	}
	return 200
}
