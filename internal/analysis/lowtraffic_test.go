package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/stats"
)

// The low-traffic Monte-Carlo checks drive the judges as the release
// engine does for a service at 10 requests/s with a shadow step: a look
// every second; a shadow step of at least 60 s where the canary gets no
// user, only copies of stable's requests (each answered by the canary
// and by two stables, compared field by field); then steps of 1, 5, 10,
// 25 and 50% with the mirror still on, each step's window extended
// until the judges decide (at least 10 s and 100 canary samples, users'
// and mirrored), the 50% step needing acceptance; a step's window folded
// into the evidence when it passes; 900 s of budget in all. Every answer
// carries two noise fields that differ between any two answers,
// stable's as well as the canary's, at different rates.

type lowCanary struct {
	extraErrors float64 // added to the canary's error rate
	wrongRate   float64 // share of the canary's 200s on lowRoutes[0] with a changed $.total
}

type lowRoute struct {
	name  string
	share float64
}

var lowRoutes = []lowRoute{{"GET /v1/orders/{id}", 0.6}, {"GET /v1/items", 0.4}}

// lowAnswer is one version's answer, reduced to what is compared.
type lowAnswer struct {
	status          int
	servedAt, cache int
	total           int
}

func (a lowAnswer) diff(b lowAnswer) []string {
	switch {
	case a.status != b.status:
		return []string{shadow.StatusPath}
	case a.status != 200:
		return nil
	}
	var out []string
	if a.servedAt != b.servedAt {
		out = append(out, "$.servedAt")
	}
	if a.cache != b.cache {
		out = append(out, "$.cache")
	}
	if a.total != b.total {
		out = append(out, "$.total")
	}
	return out
}

type lowOutcome struct {
	failAt   int // seconds since the start, -1 if not failed
	promoted bool
	reason   string
	// userFailures counts failed requests and wrong answers the canary
	// served to users until the decision.
	userFailures int
}

func lowRun(seed uint64, cfg Config, rps int, c lowCanary) lowOutcome {
	rng := rand.New(rand.NewPCG(seed, 20))
	e := NewEvidence(1).WithFields(cfg.MaxFields)
	const stableErr, budget = 0.005, 900
	shares := []float64{0, 0.01, 0.05, 0.10, 0.25, 0.50} // the shadow step, then the steps
	answer := func(canary bool, route int) (lowAnswer, float64) {
		p := stableErr
		if canary {
			p += c.extraErrors
		}
		ms := 50 * math.Exp(0.6*rng.NormFloat64())
		if rng.Float64() < p {
			return lowAnswer{status: 500}, ms
		}
		a := lowAnswer{status: 200, servedAt: rng.IntN(3), total: 0}
		if rng.Float64() < 0.1 {
			a.cache = 1
		}
		if canary && route == 0 && c.wrongRate > 0 && rng.Float64() < c.wrongRate {
			a.total = 1
		}
		return a, ms
	}
	out := lowOutcome{failAt: -1}
	sec := 0
	for k, share := range shares {
		final := k == len(shares)-1
		minTime := 10
		if k == 0 {
			minTime = 60
		}
		w := Window{Canary: stats.Version{Routes: map[string]stats.Counts{}}, Stable: stats.Version{Routes: map[string]stats.Counts{}},
			Mirrored: &Mirrored{Canary: stats.Version{Routes: map[string]stats.Counts{}}, Stable: stats.Version{Routes: map[string]stats.Counts{}},
				Secondary: stats.Version{Routes: map[string]stats.Counts{}}, Fields: map[string]shadow.FieldCounts{}}}
		observe := func(v *stats.Version, route string, status int, ms float64) {
			v.Total.Observe(status, ms)
			rc := v.Routes[route]
			rc.Observe(status, ms)
			v.Routes[route] = rc
		}
		bump := func(route, path string, f func(*shadow.FieldCounts)) {
			key := route + " " + path
			fc, ok := w.Mirrored.Fields[key]
			if !ok {
				fc = shadow.FieldCounts{Route: route, Path: path}
			}
			f(&fc)
			w.Mirrored.Fields[key] = fc
		}
		for stepSec := 1; ; stepSec++ {
			sec++
			if sec > budget {
				out.reason = "budget ended undecided: paused for a person"
				return out
			}
			for range rps {
				ri := 0
				if rng.Float64() >= lowRoutes[0].share {
					ri = 1
				}
				route := lowRoutes[ri].name
				if rng.Float64() < share {
					a, ms := answer(true, ri)
					observe(&w.Canary, route, a.status, ms)
					if a.status != 200 || a.total != 0 {
						out.userFailures++
					}
					continue
				}
				a, ms := answer(false, ri)
				observe(&w.Stable, route, a.status, ms)
				// The mirror: a copy to the canary and two to stable.
				p, pms := answer(false, ri)
				s, sms := answer(false, ri)
				cn, cms := answer(true, ri)
				observe(&w.Mirrored.Stable, route, p.status, pms)
				observe(&w.Mirrored.Secondary, route, s.status, sms)
				observe(&w.Mirrored.Canary, route, cn.status, cms)
				w.Mirrored.Exchanges++
				dc, ds := p.diff(cn), p.diff(s)
				for _, d := range dc {
					if slices.Contains(ds, d) {
						bump(route, d, func(f *shadow.FieldCounts) { f.Both++ })
					} else {
						bump(route, d, func(f *shadow.FieldCounts) { f.CanaryOnly++ })
					}
				}
				for _, d := range ds {
					if !slices.Contains(dc, d) {
						bump(route, d, func(f *shadow.FieldCounts) { f.StableOnly++ })
					}
				}
			}
			d := cfg.Evaluate(e, w, final)
			if d.Verdict == Fail {
				out.failAt, out.reason = sec, d.Reason
				return out
			}
			samples := w.Canary.Total.Requests + w.Mirrored.Canary.Total.Requests
			if d.Verdict == Pass && stepSec >= minTime && samples >= 100 {
				break
			}
		}
		e = cfg.Extend(e, w)
	}
	out.promoted = true
	return out
}

// Healthy (A/A) releases at 10 requests/s with a shadow step, the mirror
// on through every step, windows extended until the judges decide, two
// noise fields in every answer: the rate of false rollbacks stays within
// α (0.05 here, so that the number of runs can show a violation), and
// nearly all are promoted within the budget.
func TestMonteCarloLowTrafficShadowAAWithinAlpha(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Alpha = 0.05
	runs := 200
	if raceEnabled {
		runs = 30
	}
	fails, promoted := 0, 0
	for i, o := range eachRun(runs, func(i int) lowOutcome { return lowRun(2000+uint64(i), cfg, 10, lowCanary{}) }) {
		switch {
		case o.failAt >= 0:
			fails++
			t.Logf("false rollback, seed %d at %ds: %s", 2000+i, o.failAt, o.reason)
		case o.promoted:
			promoted++
		}
	}
	t.Logf("A/A at 10 req/s with a shadow step: %d of %d rolled back, %d promoted (α = %.2f)", fails, runs, promoted, cfg.Alpha)
	if limit := cfg.Alpha*float64(runs) + 3*math.Sqrt(cfg.Alpha*(1-cfg.Alpha)*float64(runs)); float64(fails) > limit {
		t.Fatalf("A/A false rollbacks %d of %d exceed α=%.2f (limit %.1f)", fails, runs, cfg.Alpha, limit)
	}
	if !raceEnabled && float64(fails)/float64(runs) > cfg.Alpha {
		t.Fatalf("A/A false-rollback rate %.3f above α=%.2f", float64(fails)/float64(runs), cfg.Alpha)
	}
	if float64(promoted) < 0.9*float64(runs) {
		t.Errorf("only %d of %d healthy releases promoted within the budget", promoted, runs)
	}
}

// Bad releases at 10 requests/s with a shadow step, at the default α:
// +5 points of errors and a wrong answer (a changed $.total on 5% of one
// route's answers) are caught, as docs/release.md states, in at least
// 1-β of the runs (all of them in this sample), and in the shadow step:
// no user-facing failure.
func TestMonteCarloLowTrafficShadowCatchesBadReleases(t *testing.T) {
	t.Parallel()
	runs := 40
	if raceEnabled {
		runs = 8
	}
	for _, c := range []struct {
		name   string
		canary lowCanary
	}{
		{"errors +5 points", lowCanary{extraErrors: 0.05}},
		{"wrong answer on 5% of one route", lowCanary{wrongRate: 0.05}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			caught, users := 0, 0
			var at []int
			for i, o := range eachRun(runs, func(i int) lowOutcome { return lowRun(7000+uint64(i), cfg, 10, c.canary) }) {
				users += o.userFailures
				if o.failAt >= 0 {
					caught++
					at = append(at, o.failAt)
				} else {
					t.Logf("seed %d not caught: promoted %v %s", 7000+i, o.promoted, o.reason)
				}
			}
			t.Logf("%s: caught %d of %d (median %d s), %d user-facing failures", c.name, caught, runs, medianInt(append(at, 0)[:max(1, len(at))]), users)
			if caught != runs {
				t.Errorf("%s: caught %d of %d, want all", c.name, caught, runs)
			}
			if float64(caught) < (1-cfg.Beta)*float64(runs) {
				t.Errorf("%s: caught %d of %d, below 1-β", c.name, caught, runs)
			}
			if users != 0 {
				t.Errorf("%s: %d user-facing failures; the shadow step should catch it before any user", c.name, users)
			}
		})
	}
}
