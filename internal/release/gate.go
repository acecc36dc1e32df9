package release

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// The health gate between two waves. The finished wave's clusters serve
// the canary at full load except for a small control share that stays on
// stable (gateHoldback), so the gate compares canary and stable within
// the same clusters, in the same window, as every step does. Clusters in
// other datacenters differ in more than the version (distance, load,
// dependencies): the canary of a finished wave against stable in the
// clusters still to come is reported in the decision, never judged.

// JudgeCrossCluster names the finding that reports, without judging, the
// canary in the finished wave against stable in the waves to come.
const JudgeCrossCluster = "cross-cluster"

// gateHoldback is the share stable keeps in the finished wave during the
// gate: the first step's weight, at least 1% (a control that small still
// gets samples) and at most 10% (the gate is a soak at nearly full load).
func (r *Release) gateHoldback() int64 {
	return min(max(int64(r.Spec.Steps[0]), traffic.Total/100), traffic.Total/10)
}

// enterGate moves a wave whose steps are done to its gate: the canary
// takes all but the holdback, the window and the cross-cluster report
// start from the counters now, and the judges begin a new segment.
func (e *Engine) enterGate(ctx context.Context, r *Release, seams map[string]Cluster, next int) error {
	r.Status.Gate = true
	gateSnap, err := e.measure(ctx, r, seams)
	if err != nil {
		r.Status.Gate = false
		return err
	}
	cross, err := e.measureCross(ctx, r, seams)
	if err != nil {
		r.Status.Gate = false
		return err
	}
	h := r.gateHoldback()
	r.setWeights(traffic.Weights{r.Canary(): traffic.Total - h, r.Status.Stable: h})
	r.Status.Step = next
	r.Status.StepStarted = e.clock.Now().UTC()
	r.Status.StepBaseline = pick(gateSnap, r.Canary(), r.Status.Stable)
	r.Status.CrossBaseline = cross
	r.Status.HoldSince = time.Time{}
	r.Status.Evidence = r.Status.Evidence.StartSegment()
	r.Status.Message = fmt.Sprintf("%sgate: %s serves all but %s (kept on %s as the control) for %s before wave %d (%s)", r.waveLabel(), r.Canary(),
		traffic.Weights{r.Status.Stable: h}.String(), r.Status.Stable, r.Spec.WaveGate.D(), r.Status.Wave+2, strings.Join(r.Status.WaveClusters(r.Status.Wave+1), ", "))
	return nil
}

// reconcileGate judges a finished wave's gate with the release's
// evidence; a regression rolls back everywhere, a quiet gate folds its
// window into the evidence and starts the next wave, a new segment.
func (e *Engine) reconcileGate(ctx context.Context, r *Release, ver *int64, seams map[string]Cluster, window analysis.Window) error {
	d := r.Spec.Analysis.Evaluate(r.Status.Evidence, window, false)
	if f, ok := e.crossClusterFinding(ctx, r, seams); ok {
		d.Findings = append(d.Findings, f)
	}
	if d.Verdict == analysis.Fail {
		return e.end(ctx, r, ver, RolledBack, fmt.Sprintf("rolled back at the gate after wave %d: %s", r.Status.Wave+1, d.Reason), &d)
	}
	if r.Status.Phase == Paused || e.clock.Now().Sub(r.Status.StepStarted) < r.Spec.WaveGate.D() {
		return e.noteDecision(ctx, r, ver, d)
	}
	if d.Verdict == analysis.Hold {
		// A suspicious (or still too thin) gate holds the next wave back,
		// like a step; past maxHold a person decides.
		now := e.clock.Now().UTC()
		if r.Status.HoldSince.IsZero() {
			r.Status.HoldSince = now
		}
		if held := now.Sub(r.Status.HoldSince); held > r.Spec.MaxHold.D() {
			r.Status.Phase = Paused
			r.Status.Message = fmt.Sprintf("paused for a person: inconclusive for %s at the gate after wave %d: %s", held.Round(time.Second), r.Status.Wave+1, d.Reason)
			r.Status.HoldSince = time.Time{}
			r.Status.Decision, r.Status.DecisionAt = &d, now
			return e.commit(ctx, r, ver, "paused", map[string]any{"reason": r.Status.Message, "decision": d})
		}
		return e.noteDecision(ctx, r, ver, d)
	}
	snap, err := e.measureAfterGate(ctx, r, seams)
	if err != nil {
		return err // nothing stored: the gate is simply passed again next time
	}
	r.Status.Decision, r.Status.DecisionAt = &d, e.clock.Now().UTC()
	r.Status.Evidence = r.Spec.Analysis.Extend(r.Status.Evidence, window).StartSegment()
	r.Status.Wave++
	r.Status.Gate = false
	r.Status.CrossBaseline = nil
	e.enterStep(r, 0, snap)
	if err := e.commit(ctx, r, ver, "wave", map[string]any{"wave": r.Status.Wave + 1, "clusters": r.Status.WaveClusters(r.Status.Wave), "gate": d}); err != nil {
		return err
	}
	return e.applyWeights(ctx, r, ver)
}

// measureAfterGate reads the counters the next wave's first step starts
// from, as measure will see them once the gate is over.
func (e *Engine) measureAfterGate(ctx context.Context, r *Release, seams map[string]Cluster) (stats.Snapshot, error) {
	next := *r
	next.Status.Clusters = append([]ClusterStatus(nil), r.Status.Clusters...)
	next.Status.Wave++
	next.Status.Gate = false
	return e.measure(ctx, &next, seams)
}

// measureCross sums the canary over the finished waves' clusters and
// stable over the clusters still to come.
func (e *Engine) measureCross(ctx context.Context, r *Release, seams map[string]Cluster) (stats.Snapshot, error) {
	out := stats.Snapshot{r.Canary(): {}, r.Status.Stable: {}}
	for _, cs := range r.Status.Clusters {
		if cs.Wave == r.Status.Wave {
			continue // judged within the cluster
		}
		snap, err := seams[cs.Name].Metrics.Snapshot(ctx, r.Spec.Service)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: read metrics of %s: %w", cs.Name, r.Spec.Service, err)
		}
		if cs.Wave > r.Status.Wave {
			out[r.Status.Stable] = out[r.Status.Stable].Add(snap[r.Status.Stable])
		}
	}
	// The canary of the wave just finished, where it now serves nearly
	// alone: the cross-cluster view compares that with stable elsewhere.
	for _, cs := range r.Status.Clusters {
		if cs.Wave != r.Status.Wave {
			continue
		}
		snap, err := seams[cs.Name].Metrics.Snapshot(ctx, r.Spec.Service)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: read metrics of %s: %w", cs.Name, r.Spec.Service, err)
		}
		out[r.Canary()] = out[r.Canary()].Add(snap[r.Canary()])
	}
	return out, nil
}

// crossClusterFinding reports the canary in the finished wave against
// stable in the waves to come over the gate's window. Its verdict is
// always pass: the difference mixes the version with the datacenter.
func (e *Engine) crossClusterFinding(ctx context.Context, r *Release, seams map[string]Cluster) (analysis.Finding, bool) {
	if r.Status.CrossBaseline == nil {
		return analysis.Finding{}, false
	}
	now, err := e.measureCross(ctx, r, seams)
	if err != nil || reset(now, r.Status.CrossBaseline) {
		return analysis.Finding{}, false
	}
	c := now[r.Canary()].Sub(r.Status.CrossBaseline[r.Canary()]).Total
	s := now[r.Status.Stable].Sub(r.Status.CrossBaseline[r.Status.Stable]).Total
	var later []string
	for k := r.Status.Wave + 1; k < r.Status.Waves(); k++ {
		later = append(later, r.Status.WaveClusters(k)...)
	}
	zero := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return v
	}
	f := analysis.Finding{Judge: JudgeCrossCluster, Scope: analysis.TotalScope, Verdict: analysis.Pass, Numbers: map[string]float64{
		"canaryRequests": float64(c.Requests), "canaryErrorRate": c.ErrorRate(), "canaryP50Ms": zero(c.Quantile(0.5)), "canaryP99Ms": zero(c.Quantile(0.99)),
		"stableRequests": float64(s.Requests), "stableErrorRate": s.ErrorRate(), "stableP50Ms": zero(s.Quantile(0.5)), "stableP99Ms": zero(s.Quantile(0.99)),
	}}
	f.Reason = fmt.Sprintf("reported, not judged: %s in %s %.3f%% errors, p50/p99 %.0f/%.0f ms vs %s in %s %.3f%%, %.0f/%.0f ms; "+
		"clusters differ in more than the version, so the gate judges canary and stable within %s",
		r.Canary(), strings.Join(r.Status.WaveClusters(r.Status.Wave), ", "), 100*c.ErrorRate(), f.Numbers["canaryP50Ms"], f.Numbers["canaryP99Ms"],
		r.Status.Stable, strings.Join(later, ", "), 100*s.ErrorRate(), f.Numbers["stableP50Ms"], f.Numbers["stableP99Ms"],
		strings.Join(r.Status.WaveClusters(r.Status.Wave), ", "))
	return f, true
}

// stepSamplesStillNeeded adds the step's own minimum (spec.stepSamples)
// to the judges' estimate of the canary requests still needed.
func (r *Release) stepSamplesStillNeeded(d *analysis.Decision, window analysis.Window) {
	if d.Verdict == analysis.Fail {
		return
	}
	if have := stepCanaryRequests(window); have < r.Spec.StepSamples {
		d.MoreCanaryRequests = max(d.MoreCanaryRequests, r.Spec.StepSamples-have)
	}
}
