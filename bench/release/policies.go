package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// Outcome of one simulated release.
type Outcome struct {
	// Phase is how it ended: promoted, rolled_back, failed, paused (held
	// for a person) or timeout (still running when the simulation ended).
	Phase string
	// DecidedAt is seconds from the canary's first weight to the end.
	DecidedAt float64
	// CanaryFailed counts failed requests the new version served until
	// the decision (the blast radius).
	CanaryFailed uint64
	// CanarySamples counts requests the new version served until then.
	CanarySamples uint64
	Reason        string
}

// Scenario is the canary's behaviour and the traffic level.
type Scenario struct {
	Name   string
	RPS    float64
	Runs   int
	Canary func(route int) Behaviour
	// Bad says whether the canary is worse than stable (it must be caught).
	Bad bool
}

// Pave's policy: the real release engine with the defaults of a spec, its
// clock driven by the simulation.
func runPave(sc Scenario, seed uint64, maxSeconds int) Outcome {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &simClock{now: t0}
	router := &simRouter{w: traffic.Weights{"v1": traffic.Total}}
	tr := NewTraffic(sc.RPS, seed, sc.Canary)
	eng := release.NewEngine(newMemStore(), router, simTarget{}, tr, release.WithClock(clock))
	r := release.New("shop", "v2")
	r.Spec.Binary = "/bin/shop-v2"
	r.Spec.Steps = []release.Percent{10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000}
	r, err := eng.Create(ctx, r)
	if err != nil {
		panic(err)
	}
	start := -1
	for sec := 0; sec <= maxSeconds; sec++ {
		clock.now = t0.Add(time.Duration(sec) * time.Second)
		if err := eng.ReconcileOne(ctx, r.Metadata.Name); err != nil {
			panic(fmt.Sprintf("reconcile at %ds: %v", sec, err))
		}
		cur, err := eng.Get(ctx, r.Metadata.Name)
		if err != nil {
			panic(err)
		}
		if start < 0 && cur.Status.Step >= 0 {
			start = sec
		}
		if cur.Status.Phase.Terminal() || cur.Status.Phase == release.Paused {
			o := Outcome{Phase: string(cur.Status.Phase), DecidedAt: float64(sec - start), Reason: cur.Status.Message,
				CanaryFailed: tr.Failed["v2"]}
			if c, ok := tr.counts["v2"]; ok {
				o.CanarySamples = c.Total.Requests
			}
			return o
		}
		tr.Second(router.w["v2"])
	}
	return Outcome{Phase: "timeout", DecidedAt: float64(maxSeconds - start), CanaryFailed: tr.Failed["v2"]}
}

// Flagger's documented Istio example (docs.flagger.app, Istio canary
// deployments): analysis every 1m, threshold 5 failed checks, stepWeight
// 10 up to maxWeight 50, request-success-rate ≥ 99% and request-duration
// p99 ≤ 500 ms, each over the last 1m. Its sequence, as its event log
// shows it: weight 10 once the canary is ready; at each interval a passing
// check advances the weight by 10 and a failing one counts towards the
// threshold (the count is not reset by later passes); at the threshold,
// all traffic goes back to the primary. After a passing check at 50%, the
// canary spec is copied to the primary, and one interval later all
// traffic is routed to the primary, now running the new version. A window
// without canary requests fails the check ("no values found").
const (
	flaggerInterval  = 60
	flaggerThreshold = 5
	flaggerStep      = 10
	flaggerMax       = 50
	flaggerMinRate   = 99.0
	flaggerMaxP99    = 500.0
)

func runFlagger(sc Scenario, seed uint64, maxSeconds int) Outcome {
	tr := NewTraffic(sc.RPS, seed, sc.Canary)
	weight, failed := flaggerStep, 0
	copied := false
	var windowStart stats.Version
	for sec := 0; sec <= maxSeconds; sec++ {
		if sec > 0 && sec%flaggerInterval == 0 {
			now := tr.Window("v2")
			w := now.Total.Sub(windowStart.Total)
			windowStart = stats.Version{Total: copyCounts(now.Total)}
			if copied {
				// Routing all traffic to the primary, which runs the
				// new version.
				return Outcome{Phase: string(release.Promoted), DecidedAt: float64(sec), CanaryFailed: tr.Failed["v2"], CanarySamples: now.Total.Requests}
			}
			ok, why := flaggerCheck(w)
			switch {
			case !ok:
				failed++
				if failed >= flaggerThreshold {
					return Outcome{Phase: string(release.RolledBack), DecidedAt: float64(sec), CanaryFailed: tr.Failed["v2"],
						CanarySamples: now.Total.Requests, Reason: why}
				}
			case weight >= flaggerMax:
				copied = true // the primary rolls out the new spec; traffic stays
			default:
				weight += flaggerStep
			}
		}
		tr.Second(int64(weight) * 10_000)
	}
	return Outcome{Phase: "timeout", DecidedAt: float64(maxSeconds), CanaryFailed: tr.Failed["v2"]}
}

func flaggerCheck(w stats.Counts) (bool, string) {
	if w.Requests == 0 {
		return false, "no values found for request-success-rate"
	}
	rate := 100 * (1 - w.ErrorRate())
	if rate < flaggerMinRate {
		return false, fmt.Sprintf("request-success-rate %.2f%% < %.0f%%", rate, flaggerMinRate)
	}
	if p99 := w.Quantile(0.99); p99 > flaggerMaxP99 {
		return false, fmt.Sprintf("request-duration p99 %.0f ms > %.0f ms", p99, flaggerMaxP99)
	}
	return true, ""
}

// waldOptimum is the SPRT's expected number of canary samples to reject,
// for an oracle knowing stable's error rate and the true canary rate.
func waldOptimum(canaryRate, alpha, beta float64) float64 {
	return analysis.WaldASN(stableErrorRate, canaryRate, canaryRate, alpha, beta)
}
