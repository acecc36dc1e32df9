package release

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// Reconcile makes one pass over every release that still needs work, one
// after another (Run reconciles them in parallel). It
// reads everything from the state store and compares it with the router,
// the target and the metrics, so it may be called any number of times, by
// a fresh engine after a crash as well.
func (e *Engine) Reconcile(ctx context.Context) error {
	names, err := e.pendingWork(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := e.ReconcileOne(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// ReconcileOne drives one release one step further, if it can. It holds
// the lock of the release's service throughout, so it never interleaves
// with another change to that service's releases.
func (e *Engine) ReconcileOne(ctx context.Context, name string) error {
	var r Release
	ver, unlock, err := e.lockRelease(ctx, name, &r)
	if err != nil {
		return err
	}
	defer unlock()
	switch r.Status.Phase {
	case Pending:
		return e.reconcilePending(ctx, &r, &ver)
	case Progressing, Paused:
		return e.reconcileRunning(ctx, &r, &ver)
	default:
		return e.reconcileEnded(ctx, &r, &ver)
	}
}

func (e *Engine) reconcilePending(ctx context.Context, r *Release, ver *int64) error {
	now := e.clock.Now().UTC()
	s := r.Spec
	seams, err := e.seams(ctx, r)
	if err != nil {
		return err
	}
	late := now.Sub(r.Metadata.CreationTimestamp) > s.ReadyTimeout.D()
	// The new version runs in every cluster of the release before any of
	// them gives it traffic, so a later wave never waits for a build.
	var errs, waiting []error
	for _, cs := range r.Status.Clusters {
		t := seams[cs.Name].Target
		if err := t.Deploy(ctx, Deployment{Service: s.Service, Version: s.Version, Replicas: s.Replicas, Source: s.Source, Binary: s.Binary, Image: s.Image, Env: s.Env}); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: deploy %s@%s: %w", cs.Name, s.Service, s.Version, err))
			continue
		}
		ready, have, want, err := t.Status(ctx, s.Service, s.Version)
		switch {
		case err != nil:
			waiting = append(waiting, fmt.Errorf("cluster %s: %w", cs.Name, err))
		case !ready:
			waiting = append(waiting, fmt.Errorf("cluster %s: %d of %d replicas ready", cs.Name, have, want))
		}
	}
	if len(errs) > 0 {
		if late {
			return e.failPending(ctx, r, ver, fmt.Sprintf("could not deploy %s@%s within %s: %v", s.Service, s.Version, s.ReadyTimeout.D(), errors.Join(errs...)))
		}
		return fmt.Errorf("retrying: %w", errors.Join(errs...))
	}
	if len(waiting) > 0 {
		// A version that keeps exiting fails now, with its cause.
		f := diagnose(ctx, seams, r.Status.Clusters, s.Service, s.Version)
		if crashLooping(f) {
			r.Status.Failure = f
			return e.failPending(ctx, r, ver, fmt.Sprintf("%s@%s keeps exiting before it is ready%s", s.Service, s.Version, failureText(f)))
		}
		if late {
			r.Status.Failure = f
			return e.failPending(ctx, r, ver, fmt.Sprintf("%s@%s was not ready within %s (%v)%s", s.Service, s.Version, s.ReadyTimeout.D(), errors.Join(waiting...), failureText(f)))
		}
		return nil
	}
	// Ready at full size: testers may reach it by header before it gets
	// any weight (the gateway honours X-Pave-Version).
	r.Status.HeaderRoute = "X-Pave-Version: " + s.Version
	r.Status.Started = now
	if r.Status.Stable == "" || int64(s.Steps[0]) == traffic.Total {
		msg := fmt.Sprintf("first release of %s: %s takes all traffic", s.Service, s.Version)
		if r.Status.Stable != "" {
			msg = fmt.Sprintf("a single 100%% step: %s takes all traffic without analysis", s.Version)
		}
		e.promote(r, msg)
		if err := e.commit(ctx, r, ver, "promoted", map[string]string{"reason": r.Status.Message}); err != nil {
			return err
		}
		return e.applyWeights(ctx, r, ver)
	}
	r.Status.Phase = Progressing
	r.Status.Evidence = analysis.NewEvidence(analysis.Segments(r.Status.Waves()))
	snap, err := e.measure(ctx, r, seams)
	if err != nil {
		return err
	}
	if s.Shadow != nil {
		e.enterShadow(r, snap)
		if err := e.commit(ctx, r, ver, "shadow", map[string]any{"duration": s.Shadow.Duration, "samples": s.Shadow.Samples, "headerRoute": r.Status.HeaderRoute}); err != nil {
			return err
		}
		return e.applyWeights(ctx, r, ver)
	}
	e.enterStep(r, 0, snap)
	if err := e.commit(ctx, r, ver, "step", map[string]any{"step": 0, "weight": s.Steps[0], "headerRoute": r.Status.HeaderRoute}); err != nil {
		return err
	}
	return e.applyWeights(ctx, r, ver)
}

func (e *Engine) failPending(ctx context.Context, r *Release, ver *int64, msg string) error {
	e.retire(r, Failed, msg)
	r.Status.ScaleDownAt = e.clock.Now().UTC() // it never had traffic
	e.log.Warn("release failed", "release", r.Metadata.Name, "reason", msg)
	return e.commit(ctx, r, ver, "failed", map[string]string{"reason": msg})
}

// enterStep records step k's weights and the counters its window starts from.
func (e *Engine) enterStep(r *Release, k int, snap stats.Snapshot) {
	w := int64(r.Spec.Steps[k])
	r.setWeights(traffic.Weights{r.Status.Stable: traffic.Total - w, r.Canary(): w})
	r.Status.Step = k
	r.Status.StepStarted = e.clock.Now().UTC()
	r.Status.StepBaseline = pick(snap, r.Canary(), r.Status.Stable)
	r.Status.HoldSince = time.Time{}
	r.Status.Message = r.waveLabel() + fmt.Sprintf("step %d of %d: %s on %s", k+1, len(r.Spec.Steps), r.Spec.Steps[k], r.Canary())
}

func (e *Engine) reconcileRunning(ctx context.Context, r *Release, ver *int64) error {
	now := e.clock.Now().UTC()
	if r.Status.Phase == Paused && r.Status.ManualTraffic {
		return nil // a person holds the traffic until the release is resumed
	}
	seams, err := e.seams(ctx, r)
	if err != nil {
		return err
	}
	// Level-triggered: whatever happened before, every router must carry
	// the recorded weights.
	if err := e.applyWeights(ctx, r, ver); err != nil {
		return e.holdOrRollBack(ctx, r, ver, err)
	}
	for _, cs := range r.Status.Clusters {
		ready, have, want, err := seams[cs.Name].Target.Status(ctx, r.Spec.Service, r.Canary())
		if err == nil && !ready {
			f := diagnose(ctx, seams, []ClusterStatus{cs}, r.Spec.Service, r.Canary())
			r.Status.Failure = f
			return e.end(ctx, r, ver, RolledBack, fmt.Sprintf("cluster %s: %s lost readiness: %d of %d replicas ready%s", cs.Name, r.Canary(), have, want, failureText(f)), nil)
		}
	}
	if why := e.abortingAlert(ctx, r); why != "" { // spec.analysis.abortOnAlerts (alerts.go)
		return e.end(ctx, r, ver, RolledBack, why, nil)
	}
	snap, err := e.measure(ctx, r, seams)
	if err != nil {
		return e.holdOrRollBack(ctx, r, ver, err)
	}
	if reset(snap, r.Status.StepBaseline) {
		// The data plane restarted (its counters are cumulative since its
		// start): the evidence of finished steps stands, the current
		// step's window starts again.
		r.Status.StepBaseline = pick(snap, r.Canary(), r.Status.Stable)
		return e.commit(ctx, r, ver, "counters-reset", nil)
	}
	window := analysis.Window{
		Canary: snap[r.Canary()].Sub(r.Status.StepBaseline[r.Canary()]),
		Stable: snap[r.Status.Stable].Sub(r.Status.StepBaseline[r.Status.Stable]),
	}
	if err := e.syncMirror(ctx, r, seams); err != nil {
		return e.holdOrRollBack(ctx, r, ver, err)
	}
	mirrored, restarted, err := e.mirroredWindow(ctx, r, seams)
	if err != nil {
		return e.holdOrRollBack(ctx, r, ver, err)
	}
	if restarted {
		return e.commit(ctx, r, ver, "", nil) // the new window's counters first
	}
	window.Mirrored = mirrored
	r.forecastRunning(now, window) // status.forecast (forecast.go)
	if r.Status.Shadow != nil && r.Status.Shadow.Active {
		return e.reconcileShadow(ctx, r, ver, snap, window)
	}
	if r.Status.Gate {
		return e.reconcileGate(ctx, r, ver, seams, window)
	}
	k := r.Status.Step
	final := int64(r.Spec.Steps[k]) < traffic.Total && k+1 < len(r.Spec.Steps) && int64(r.Spec.Steps[k+1]) == traffic.Total
	d := r.Spec.Analysis.Evaluate(r.Status.Evidence, window, final)
	r.stepSamplesStillNeeded(&d, window)

	if d.Verdict == analysis.Fail {
		return e.end(ctx, r, ver, RolledBack, "rolled back: "+r.waveLabel()+d.Reason, &d)
	}
	if r.Status.Phase == Paused {
		return e.noteDecision(ctx, r, ver, d)
	}
	elapsed := now.Sub(r.Status.StepStarted)
	minTime := elapsed >= r.Spec.StepDuration.D()
	minSamples := stepCanaryRequests(window) >= r.Spec.StepSamples
	if d.Verdict == analysis.Pass && minTime && minSamples {
		return e.advance(ctx, r, ver, seams, snap, window, d)
	}
	if !minTime {
		return e.noteDecision(ctx, r, ver, d)
	}
	// The step's time is up but the evidence does not suffice: hold.
	if r.Status.HoldSince.IsZero() {
		r.Status.HoldSince = now
	}
	if held := now.Sub(r.Status.HoldSince); held > r.holdBudget(now) {
		why := d.Reason
		if d.Verdict == analysis.Pass {
			why = fmt.Sprintf("%d of %d canary samples in this step", stepCanaryRequests(window), r.Spec.StepSamples)
		}
		msg := fmt.Sprintf("inconclusive for %s at %sstep %d (%s): %s", held.Round(time.Second), r.waveLabel(), k+1, r.Spec.Steps[k], why)
		if r.Spec.OnHoldTimeout == "fail" {
			return e.end(ctx, r, ver, Failed, msg, &d)
		}
		r.Status.Phase, r.Status.Message = Paused, "paused for a person: "+msg
		r.Status.HoldSince = time.Time{}
		r.Status.Decision, r.Status.DecisionAt = &d, now
		return e.commit(ctx, r, ver, "paused", map[string]any{"reason": r.Status.Message, "decision": d})
	}
	return e.noteDecision(ctx, r, ver, d)
}

// advance folds the step's window into the evidence and moves to the next
// step; after a wave's last step, to the gate before the next wave, or,
// after the last wave, to promotion.
func (e *Engine) advance(ctx context.Context, r *Release, ver *int64, seams map[string]Cluster, snap stats.Snapshot, window analysis.Window, d analysis.Decision) error {
	r.Status.Evidence = r.Spec.Analysis.Extend(r.Status.Evidence, window)
	r.Status.Decision, r.Status.DecisionAt = &d, e.clock.Now().UTC()
	next := r.Status.Step + 1
	switch {
	case int64(r.Spec.Steps[next]) == traffic.Total && r.Status.Wave+1 < r.Status.Waves():
		if err := e.enterGate(ctx, r, seams, next); err != nil {
			return err // nothing stored: the step passes again next time
		}
		if err := e.commit(ctx, r, ver, "gate", map[string]any{"wave": r.Status.Wave + 1, "decision": d}); err != nil {
			return err
		}
	case int64(r.Spec.Steps[next]) == traffic.Total:
		e.promote(r, "promoted: "+d.Reason)
		e.log.Info("release promoted", "release", r.Metadata.Name)
		if err := e.commit(ctx, r, ver, "promoted", map[string]any{"reason": r.Status.Message, "decision": d}); err != nil {
			return err
		}
	default:
		e.enterStep(r, next, snap)
		if err := e.commit(ctx, r, ver, "step", map[string]any{"step": next, "weight": r.Spec.Steps[next], "decision": d}); err != nil {
			return err
		}
	}
	return e.applyWeights(ctx, r, ver)
}

// end retires the release with traffic back on stable: intent stored
// first, then applied.
func (e *Engine) end(ctx context.Context, r *Release, ver *int64, p Phase, msg string, d *analysis.Decision) error {
	e.retire(r, p, msg)
	if d != nil {
		r.Status.Decision, r.Status.DecisionAt = d, e.clock.Now().UTC()
	}
	e.log.Warn("release ended", "release", r.Metadata.Name, "phase", p, "reason", msg)
	if err := e.commit(ctx, r, ver, string(p), map[string]any{"reason": msg, "decision": d}); err != nil {
		return err
	}
	return e.applyWeights(ctx, r, ver)
}

// noteDecision stores the latest decision when the next reconcile, or a
// person, needs it stored:
//
//   - its verdict changed (a timeline entry);
//   - a hold began since the last stored decision (HoldSince after
//     DecisionAt): the hold budget counts from HoldSince, also after a
//     restart, so it is stored at once;
//   - the stored one is older than liveEvery: the live view's refresh.
//
// Anything else (the same verdict, with fresher counts) is recomputed by
// the next reconcile from the stored window, and not written.
func (e *Engine) noteDecision(ctx context.Context, r *Release, ver *int64, d analysis.Decision) error {
	now := e.clock.Now().UTC()
	prev := r.Status.Decision
	changed := prev == nil || prev.Verdict != d.Verdict
	holdBegan := !r.Status.HoldSince.IsZero() && r.Status.HoldSince.After(r.Status.DecisionAt)
	if !changed && !holdBegan && now.Sub(r.Status.DecisionAt) < e.liveEvery() {
		return nil
	}
	r.Status.Decision, r.Status.DecisionAt = &d, now
	evType := ""
	if changed {
		evType = "verdict"
	}
	return e.commit(ctx, r, ver, evType, d)
}

// liveWrites bounds the live view's refreshes a second, over all the
// releases in progress.
const liveWrites = 50

// liveEvery is how old a stored decision may get before an unchanged one
// is stored again for the live view: decisionEvery (5 s) with up to 250
// releases in progress, longer with more, so the refreshes stay under
// liveWrites a second (20 s at 1,000 releases) and leave the state
// store's writes to the changes that matter.
func (e *Engine) liveEvery() time.Duration {
	return max(e.decisionEvery, time.Duration(e.lister.inProgress.Load())*time.Second/liveWrites)
}

func (e *Engine) reconcileEnded(ctx context.Context, r *Release, ver *int64) error {
	if err := e.stopMirror(ctx, r, ver); err != nil {
		return err
	}
	// An ended release applies its final weights until they are confirmed,
	// and never again: a person's later choice (pave traffic set) stands.
	if !r.Status.WeightsApplied {
		if err := e.applyWeights(ctx, r, ver); err != nil {
			return err
		}
	}
	if r.Status.ScaledDown || e.clock.Now().Before(r.Status.ScaleDownAt) {
		return nil
	}
	retired := r.Canary()
	if r.Status.Phase == Promoted {
		retired = r.Status.Stable
	} else if r.Status.Stable == "" && r.Status.Step >= 0 {
		retired = "" // a first release keeps its only version
	}
	if retired != "" {
		seams, err := e.seams(ctx, r)
		if err != nil {
			return err
		}
		var errs []error
		for _, cs := range r.Status.Clusters {
			if err := seams[cs.Name].Target.Remove(ctx, r.Spec.Service, retired); err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: scale down %s@%s: %w", cs.Name, r.Spec.Service, retired, err))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	r.Status.ScaledDown = true
	return e.commit(ctx, r, ver, "scaled-down", map[string]string{"version": retired})
}

func pick(snap stats.Snapshot, versions ...string) stats.Snapshot {
	out := stats.Snapshot{}
	for _, v := range versions {
		if c, ok := snap[v]; ok {
			out[v] = c
		}
	}
	return out
}

// reset reports whether any counter went backwards since the baseline: a
// restarted data plane, or (PromQL) a pod gone with its counters. A window
// over it would wrap around when subtracted.
func reset(now, base stats.Snapshot) bool {
	for v, b := range base {
		n := now[v]
		if countsWentBack(n.Total, b.Total) {
			return true
		}
		for r, bc := range b.Routes {
			if countsWentBack(n.Routes[r], bc) {
				return true
			}
		}
	}
	return false
}

func countsWentBack(now, base stats.Counts) bool {
	if now.Requests < base.Requests || now.Errors < base.Errors {
		return true
	}
	for class, c := range base.ByClass {
		if now.ByClass[class] < c {
			return true
		}
	}
	for i, c := range base.Latency {
		if i >= len(now.Latency) || now.Latency[i] < c {
			if c > 0 {
				return true
			}
		}
	}
	return false
}

func sortByCreation(rs []Release) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i].Metadata.CreationTimestamp, rs[j].Metadata.CreationTimestamp
		if !a.Equal(b) {
			return a.Before(b)
		}
		return rs[i].Metadata.Name < rs[j].Metadata.Name
	})
}
