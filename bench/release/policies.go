package main

import (
	"context"
	"fmt"
	"math"
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
	// CanarySamples counts requests the new version served until then
	// (users' and, with a shadow step, mirrored copies: the samples the
	// judges saw); CanaryServed the users' alone, and CanaryWrong the
	// wrong answers (200 with a changed field) users got from it.
	CanarySamples uint64
	CanaryServed  uint64
	CanaryWrong   uint64
	Reason        string
}

// Scenario is the canary's behaviour and the traffic level.
type Scenario struct {
	Name string
	// Seq, when above 0, is 1 + the scenario's position in the whole
	// benchmark, which its runs' seeds derive from (0: its position in
	// the list given to Run): a -only subset then repeats the whole run's
	// figures for its scenarios.
	Seq    int
	RPS    float64
	Runs   int
	Canary func(route int) Behaviour
	// Bad says whether the canary is worse than stable (it must be caught).
	Bad bool
	// Drift multiplies both versions' latency and errors by a factor of
	// the simulated second (load rising over the release).
	Drift func(sec int) float64
	// SecondDC, when set, adds a second cluster in another datacenter
	// (released in a second wave, each cluster at RPS): what that
	// datacenter adds for both versions, and the canary's behaviour there
	// (nil: as in the first).
	SecondDC     *Behaviour
	SecondCanary func(route int) Behaviour
	// Shadow gives Pave's release a shadow step (spec.shadow, 1m): the
	// mirror copies stable's idempotent requests to the canary from the
	// start and stays on through the steps. The baselines have no
	// equivalent (Flagger mirrors only in its blue/green mode, and judges
	// the canary's metrics alone there); they run as without it.
	Shadow bool
	// MaxDuration, when set, is Pave's spec.maxDuration: undecided steps
	// hold within it rather than pausing after maxHold.
	MaxDuration time.Duration
	// NoAutoShadow sets spec.autoShadow: false: a release with a time
	// budget at low traffic does not add a shadow step of its own.
	NoAutoShadow bool
	// Steps and ErrorFloor, when set, replace Pave's steps (below 100%)
	// and spec.analysis.errorFloor: a release tuned for low traffic.
	Steps      []release.Percent
	ErrorFloor float64
	// Profile releases with release.NoMirrorProfile: the settings
	// docs/release.md recommends at low traffic without a mirror.
	Profile bool
	// SeedsOf names the scenario whose seeds this one's runs use: the
	// same simulated traffic, to compare two configurations run by run.
	SeedsOf string
}

// forecastTraffic is what `pave up`'s metrics store tells the engine
// when the release is created (release.TrafficSource): the service's
// requests/s, stable's failures, and the rate of each route, before any
// canary.
func (sc Scenario) forecastTraffic() release.TrafficFunc {
	return func(context.Context, string) (release.Traffic, error) {
		clusters := 1.0
		errors := stableErrorRate
		if sc.SecondDC != nil {
			clusters = 2
			errors += sc.SecondDC.ErrorRate / 2
		}
		rate := sc.RPS * clusters
		t := release.Traffic{Rate: rate, Errors: rate * errors, Routes: map[string]float64{}, Source: "the simulated metrics store, last 5m"}
		for _, r := range Routes {
			t.Routes[r.Name] = rate * r.Share
		}
		return t, nil
	}
}

// traffics returns the scenario's clusters' traffic simulators.
func (sc Scenario) traffics(seed uint64) []*Traffic {
	tr := NewTraffic(sc.RPS, seed, sc.Canary)
	tr.Drift = sc.Drift
	tr.Shadow = newShadow(seed, sc.Canary, tr.Env)
	out := []*Traffic{tr}
	if sc.SecondDC != nil {
		canary := sc.Canary
		if sc.SecondCanary != nil {
			canary = sc.SecondCanary
		}
		t2 := NewTraffic(sc.RPS, seed^0x5bd1e995, canary)
		t2.Drift, t2.Env = sc.Drift, *sc.SecondDC
		t2.Shadow = newShadow(seed^0x5bd1e995, canary, t2.Env)
		out = append(out, t2)
	}
	return out
}

// Pave's policy: the real release engine with the defaults of a spec, its
// clock driven by the simulation; with two datacenters, one cluster per
// wave, as `pave release` does by default.
func runPave(sc Scenario, seed uint64, maxSeconds int) Outcome {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &simClock{now: t0}
	trs := sc.traffics(seed)
	var routers []*simRouter
	var clusters release.Clusters
	for i, tr := range trs {
		rt := &simRouter{w: traffic.Weights{"v1": traffic.Total}}
		routers = append(routers, rt)
		clusters = append(clusters, release.Cluster{Name: fmt.Sprintf("dc%d", i+1), Router: rt, Target: simTarget{}, Metrics: tr, Pairs: tr.Shadow})
	}
	eng := release.NewFleetEngine(newMemStore(), clusters, release.WithClock(clock), release.WithTraffic(sc.forecastTraffic()))
	r := release.New("shop", "v2")
	r.Spec.Binary = "/bin/shop-v2"
	r.Spec.Steps = []release.Percent{10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000}
	if sc.Shadow {
		r.Spec.Shadow = &release.ShadowSpec{}
	}
	r.Spec.MaxDuration = release.Duration(sc.MaxDuration)
	if sc.NoAutoShadow {
		r.Spec.AutoShadow = new(bool)
	}
	if sc.Steps != nil {
		r.Spec.Steps = append(append([]release.Percent(nil), sc.Steps...), 1_000_000)
	}
	if sc.ErrorFloor > 0 {
		r.Spec.Analysis.ErrorFloor = sc.ErrorFloor
	}
	if sc.Profile {
		release.NoMirrorProfile(&r.Spec)
	}
	r.Default()
	r, err := eng.Create(ctx, r)
	if err != nil {
		panic(err)
	}
	outcome := func(phase string, at int, reason string) Outcome {
		o := Outcome{Phase: phase, DecidedAt: float64(at), Reason: reason}
		for _, tr := range trs {
			o.CanaryFailed += tr.Failed["v2"]
			o.CanaryServed += tr.Served["v2"]
			o.CanaryWrong += tr.Wrong["v2"]
			o.CanarySamples += tr.Served["v2"]
			if snap, _ := tr.Shadow.Pairs(ctx, ""); snap.Canary.Total.Requests > 0 {
				o.CanarySamples += snap.Canary.Total.Requests
			}
		}
		return o
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
		// The release's clock starts when the new version is ready: at
		// its first weight, or at its shadow step.
		if start < 0 && !cur.Status.Started.IsZero() {
			start = sec
		}
		if cur.Status.Phase.Terminal() || cur.Status.Phase == release.Paused {
			return outcome(string(cur.Status.Phase), sec-start, cur.Status.Message)
		}
		for i, tr := range trs {
			tr.Second(routers[i].w["v2"], routers[i].mirror)
		}
	}
	return outcome("timeout", maxSeconds-start, "")
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
type flaggerConfig struct {
	Name string
	// Interval is the analysis interval (seconds); Threshold the failed
	// checks that roll back; Steps the canary weights in turn.
	Interval, Threshold int
	Steps               []int
	// MetricWindow is the range of the metric queries (the metrics'
	// interval, 1m in the documented checks), in seconds.
	MetricWindow int
}

// flaggerExample is the documented Istio example.
var flaggerExample = flaggerConfig{Name: "flagger", Interval: 60, Threshold: 5, Steps: []int{10, 20, 30, 40, 50}, MetricWindow: 60}

// flaggerTight is Flagger configured as tightly as its documentation
// allows (analysis.stepWeights, a 10 s interval, threshold 2), with the
// same metric checks over their documented 1m range.
var flaggerTight = flaggerConfig{Name: "flagger-tight", Interval: 10, Threshold: 2, Steps: []int{1, 5, 10, 25, 50}, MetricWindow: 60}

const (
	flaggerMinRate = 99.0
	flaggerMaxP99  = 500.0
)

// runFlagger simulates Flagger on each cluster (a Flagger per cluster,
// started together, as a fleet without waves would run it): the release
// rolls back if any cluster's Flagger does, and is promoted when all are.
func runFlagger(fc flaggerConfig, sc Scenario, seed uint64, maxSeconds int) Outcome {
	trs := sc.traffics(seed)
	var outs []Outcome
	for _, tr := range trs {
		outs = append(outs, flaggerOne(fc, tr, maxSeconds))
	}
	out := outs[0]
	for _, o := range outs[1:] {
		switch {
		case o.Phase == string(release.RolledBack) && (out.Phase != string(release.RolledBack) || o.DecidedAt < out.DecidedAt):
			out = o
		case out.Phase == string(release.Promoted) && o.Phase == string(release.Promoted) && o.DecidedAt > out.DecidedAt:
			out.DecidedAt = o.DecidedAt
		case out.Phase == string(release.Promoted) && o.Phase != string(release.Promoted):
			out = o
		}
	}
	out.CanaryFailed, out.CanarySamples, out.CanaryServed, out.CanaryWrong = 0, 0, 0, 0
	for _, tr := range trs {
		out.CanaryFailed += tr.Failed["v2"]
		out.CanarySamples += tr.Window("v2").Total.Requests
		out.CanaryServed += tr.Served["v2"]
		out.CanaryWrong += tr.Wrong["v2"]
	}
	return out
}

// flaggerOne is one Flagger, as its event log shows it: the first weight
// once the canary is ready; at each interval a passing check advances the
// weight and a failing one counts towards the threshold (the count is
// not reset by later passes); at the threshold, all traffic goes back to
// the primary. After a passing check at the last weight, the canary spec
// is copied to the primary, and one interval later all traffic is routed
// to the primary, now running the new version. A window without canary
// requests fails the check ("no values found").
func flaggerOne(fc flaggerConfig, tr *Traffic, maxSeconds int) Outcome {
	step, failed := 0, 0
	copied := false
	// The canary's counters at each past second, for the metric window.
	history := []stats.Counts{copyCounts(tr.Window("v2").Total)}
	for sec := 0; sec <= maxSeconds; sec++ {
		if sec > 0 && sec%fc.Interval == 0 {
			now := tr.Window("v2")
			from := history[max(0, len(history)-1-fc.MetricWindow)]
			w := now.Total.Sub(from)
			if copied {
				return Outcome{Phase: string(release.Promoted), DecidedAt: float64(sec)}
			}
			ok, why := flaggerCheck(w)
			switch {
			case !ok:
				failed++
				if failed >= fc.Threshold {
					return Outcome{Phase: string(release.RolledBack), DecidedAt: float64(sec), Reason: why}
				}
			case step == len(fc.Steps)-1:
				copied = true // the primary rolls out the new spec; traffic stays
			default:
				step++
			}
		}
		tr.Second(int64(fc.Steps[step])*10_000, nil)
		history = append(history, copyCounts(tr.Window("v2").Total))
	}
	return Outcome{Phase: "timeout", DecidedAt: float64(maxSeconds)}
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

// windowBound is the fewest canary samples any level-alpha sequential
// test can expect to need to reject "the canary fails as often as
// stable" when the canary fails at p1 and stable at p0, if it compares
// the canary with stable's answers of the same window (k of them per
// canary answer) and knows neither rate, as the engine's tests do so that
// stable's own drift never reads as a regression: log(1/α) over the
// Kullback-Leibler divergence per canary sample from the truth to the
// closest point of that composite null (both Poisson at the pooled rate
// λ = (p1 + k·p0)/(1+k)), Lai's lower bound for sequential tests
// (asymptotic in α; Wald's known-p0 SPRT is the k → ∞ limit).
func windowBound(p0, p1, k, alpha float64) float64 {
	lambda := (p1 + k*p0) / (1 + k)
	kl := func(p float64) float64 { return p*math.Log(p/lambda) - p + lambda }
	return math.Log(1/alpha) / (kl(p1) + k*kl(p0))
}
