package analysis

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

// The confidence sequence holds the true rate at every look: over 400
// streams of 5,000 requests, looked at after every request, its bounds
// leave the true rate at some point in at most δ of them.
func TestRateSequenceCoversAtEveryLook(t *testing.T) {
	t.Parallel()
	const delta = 0.05
	runs, n := 400, 5000
	if raceEnabled {
		runs, n = 100, 1000
	}
	seq := newRateSeq(0.01)
	for _, p := range []float64{0.002, 0.015, 0.2} {
		missed := 0
		for _, m := range eachRun(runs, func(i int) bool {
			rng := rand.New(rand.NewPCG(uint64(i), 31))
			var c stats.Counts
			for range n {
				c.Observe(status(rng, p), 1)
				if lo, hi := seq.bounds(c, delta); p < lo || p > hi {
					return true
				}
			}
			return false
		}) {
			if m {
				missed++
			}
		}
		t.Logf("rate %.3f: the sequence missed it in %d of %d streams (δ = %.2f)", p, missed, runs, delta)
		if missed > int(delta*float64(runs)) {
			t.Errorf("rate %.3f: missed in %d of %d streams, above δ=%.2f", p, missed, runs, delta)
		}
	}
	// The bounds bracket the observed rate and narrow with the count.
	lo1, hi1 := seq.bounds(stats.Counts{Requests: 1000, Errors: 10}, delta)
	lo2, hi2 := seq.bounds(stats.Counts{Requests: 100000, Errors: 1000}, delta)
	if !(lo1 < 0.01 && 0.01 < hi1 && lo1 < lo2 && hi2 < hi1 && lo2 < 0.01 && 0.01 < hi2) {
		t.Errorf("bounds 1000/10: [%v, %v], 100000/1000: [%v, %v]", lo1, hi1, lo2, hi2)
	}
	if lo, hi := seq.bounds(stats.Counts{}, delta); lo != 0 || hi != 1 {
		t.Errorf("no requests: [%v, %v], want [0, 1]", lo, hi)
	}
}

// stepRun drives the judges through a release's steps as the engine
// does: a look every second, each step's window folded into the evidence
// when it passes (after minSeconds), the last step having to accept the
// canary, a pause when maxSeconds run out.
type stepPlan struct {
	share      float64
	minSeconds int
}

// stepOutcome is how a simulated release ended and when.
type stepOutcome struct {
	verdict  string // "promoted", "rolled back", "paused"
	seconds  int
	viaFloor bool // the last step was accepted by the floor acceptance
}

func stepRun(seed uint64, cfg Config, rps int, stableP, canaryP float64, steps []stepPlan, maxSeconds int) stepOutcome {
	rng := rand.New(rand.NewPCG(seed, 20))
	e := NewEvidence(1)
	sec := 0
	for i, st := range steps {
		final := i == len(steps)-1
		var w Window
		for t := 1; ; t++ {
			if sec >= maxSeconds {
				return stepOutcome{verdict: "paused", seconds: sec}
			}
			sec++
			for range rps {
				if rng.Float64() < st.share {
					w.Canary.Total.Observe(status(rng, canaryP), 10)
				} else {
					w.Stable.Total.Observe(status(rng, stableP), 10)
				}
			}
			d := cfg.Evaluate(e, w, final)
			if d.Verdict == Fail {
				return stepOutcome{verdict: "rolled back", seconds: sec}
			}
			if d.Verdict == Pass && t >= st.minSeconds {
				if final {
					_, _, floor := cfg.floorAccepts(w.Canary.Total, w.Stable.Total)
					return stepOutcome{verdict: "promoted", seconds: sec, viaFloor: floor}
				}
				break
			}
		}
		e = cfg.Extend(e, w)
	}
	return stepOutcome{verdict: "promoted", seconds: sec}
}

// The tuned low-traffic release of the benchmark (10 req/s, steps 5% and
// 50%, errorFloor 1 point): a canary exactly at the tolerance (stable
// 0.5%, canary 1.5%) looked at every second. The floor acceptance alone
// fires in at most β of the releases, and so does the whole release's
// promotion: its ratio test's alternative (3×) is the same canary.
//
// With 400 runs the count's standard deviation at a true rate of β = 5%
// is 4.4, so a rule at β would exceed 20 about half the time and one at
// 2β (40 expected) almost never stays within it. The old floor rule
// (the canary's Chernoff bound at β against stable's observed rate) is
// run on the same streams: it fires more often than β.
func TestFloorAcceptanceAtTheToleranceWithinBeta(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ErrorFloor = 0.01
	const stableP, canaryP = 0.005, 0.015
	runs, horizon := 400, 900
	if raceEnabled {
		runs = 200 // the first 200 of the same streams
	}
	limit := int(cfg.Beta * float64(runs))

	// The floor acceptance alone, looked at every second of a final step
	// at 50% (5 canary requests a second).
	var fired, oldFired int
	for _, o := range eachRun(runs, func(i int) [2]bool {
		rng := rand.New(rand.NewPCG(uint64(i), 86))
		var canary, stable stats.Counts
		var out [2]bool
		for range horizon {
			for range 10 {
				if rng.Float64() < 0.5 {
					canary.Observe(status(rng, canaryP), 10)
				} else {
					stable.Observe(status(rng, stableP), 10)
				}
			}
			if _, _, ok := cfg.floorAccepts(canary, stable); ok {
				out[0] = true
			}
			if oldFloorAccepts(cfg, canary, stable) {
				out[1] = true
			}
			if out[0] && out[1] {
				break
			}
		}
		return out
	}) {
		if o[0] {
			fired++
		}
		if o[1] {
			oldFired++
		}
	}
	t.Logf("canary at the tolerance, %d s at 50%% of 10 req/s: floor acceptance fired in %d of %d runs (β = %.2f); the old rule in %d",
		horizon, fired, runs, cfg.Beta, oldFired)
	if fired > limit {
		t.Errorf("floor acceptance fired in %d of %d runs, above β·runs = %d", fired, runs, limit)
	}
	if oldFired <= fired {
		t.Errorf("the old rule fired in %d runs, the new in %d: the streams do not tell them apart", oldFired, fired)
	}

	// The whole release through the steps: promotions of that canary.
	steps := []stepPlan{{0.05, 10}, {0.50, 10}}
	v := countVerdicts(eachRun(runs, func(i int) stepOutcome {
		return stepRun(5000+uint64(i), cfg, 10, stableP, canaryP, steps, horizon)
	}))
	t.Logf("canary at the tolerance through the steps, %d s: %d promoted (%d with the floor acceptance holding), %d rolled back, %d paused of %d",
		horizon, v.promoted, v.byFloor, v.rolled, v.paused, runs)
	if v.promoted > limit {
		t.Errorf("promoted %d of %d canaries at the tolerance, above β·runs = %d", v.promoted, runs, limit)
	}
}

// verdicts counts step runs by how they ended.
type verdicts struct {
	promoted, byFloor, rolled, paused int // byFloor: promoted with the floor acceptance holding
}

func countVerdicts(outs []stepOutcome) (v verdicts) {
	for _, o := range outs {
		switch o.verdict {
		case "promoted":
			v.promoted++
			if o.viaFloor {
				v.byFloor++
			}
		case "rolled back":
			v.rolled++
		default:
			v.paused++
		}
	}
	return v
}

// oldFloorAccepts is the rule before session 11, kept to show what the
// test above tells apart: a Chernoff bound on the canary's rate at β,
// compared with stable's observed rate as if it were known.
func oldFloorAccepts(c Config, canary, stable stats.Counts) bool {
	if canary.Requests == 0 {
		return false
	}
	l := math.Log(1 / c.Beta)
	e := float64(canary.Errors)
	bound := math.Min(1, (e+l+math.Sqrt(2*e*l+l*l))/float64(canary.Requests))
	return bound <= stable.ErrorRate()+c.ErrorFloor
}

// Healthy canaries are still promoted: a service with 0.5% errors at 100
// req/s, and one with no errors at all (the floor acceptance is all that
// can accept it), each within its forecast's time.
func TestHealthyAndErrorFreeCanariesArePromoted(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	runs := 100
	if raceEnabled {
		runs = 20
	}
	steps := []stepPlan{{0.01, 10}, {0.05, 10}, {0.10, 10}, {0.25, 10}, {0.50, 10}}
	for _, p := range []float64{0.005, 0} {
		var plan []StepPlan
		for i, s := range steps {
			plan = append(plan, StepPlan{Share: s.share, MinSeconds: float64(s.minSeconds), Final: i == len(steps)-1})
		}
		var forecast float64
		for _, n := range cfg.Forecast(NewEvidence(1), Load{Rate: 100, ErrorRate: p}, plan) {
			forecast += n.Seconds
		}
		var promoted, floor int
		var secs []int
		for _, o := range eachRun(runs, func(i int) stepOutcome {
			return stepRun(7000+uint64(i), cfg, 100, p, p, steps, 3600)
		}) {
			if o.verdict == "promoted" {
				promoted++
				secs = append(secs, o.seconds)
				if o.viaFloor {
					floor++
				}
			}
		}
		med := medianInt(secs)
		t.Logf("stable and canary at %.1f%% errors, 100 req/s: %d of %d promoted (%d by the floor), median %d s, forecast %.0f s",
			100*p, promoted, runs, floor, med, forecast)
		if promoted < runs*95/100 {
			t.Errorf("%.1f%% errors: %d of %d promoted, want at least 95%%", 100*p, promoted, runs)
		}
		if float64(med) > 1.3*forecast || float64(med) < 0.7*forecast {
			t.Errorf("%.1f%% errors: median %d s, forecast %.0f s: more than 30%% apart", 100*p, med, forecast)
		}
		if p == 0 && floor != promoted {
			t.Errorf("no errors: %d of %d promotions by the floor acceptance, want all", floor, promoted)
		}
	}
}
