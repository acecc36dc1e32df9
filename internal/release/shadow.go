package release

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// The shadow step: before the canary gets any user, the routers mirror
// stable's idempotent requests (and the routes marked safe) to it; the
// judges run on the mirrored pairs as on live traffic (errors, latency,
// and the response comparison, see analysis/compare.go). A failed shadow
// step ends the release with no user having been served by the canary.
// The mirror stays on through the steps that follow, so at low traffic
// every judge also sees the mirrored pairs, not only the canary's share.

// ShadowSpec asks for a shadow step.
type ShadowSpec struct {
	// Duration is the shadow step's minimum length (default 1m when no
	// sample count is given).
	Duration Duration `json:"duration,omitempty"`
	// Samples is the minimum number of mirrored canary requests.
	Samples uint64 `json:"samples,omitempty"`
	// Percent of stable's mirrorable requests copied (default 100).
	Percent Percent `json:"percent,omitempty"`
	// SafeRoutes, IgnoreHeaders and ExpectedChanges add to the shadow
	// section of the service's .pave.yaml (package shadow).
	SafeRoutes      []string                `json:"safeRoutes,omitempty"`
	IgnoreHeaders   []string                `json:"ignoreHeaders,omitempty"`
	ExpectedChanges []shadow.ExpectedChange `json:"expectedChanges,omitempty"`
	// IgnoreAnswers judges the mirrored pairs on their errors and latency
	// only, without comparing the answers field by field. A shadow step
	// the release adds of its own at low traffic (spec.autoShadow) sets
	// it: nobody declared which changes of the answers are intended (a
	// version or build field would roll back every release).
	IgnoreAnswers bool `json:"ignoreAnswers,omitempty"`
}

// DefaultShadowDuration is the shadow step's length when the spec gives
// neither a duration nor a sample count.
const DefaultShadowDuration = time.Minute

func (s *ShadowSpec) settings() shadow.Settings {
	return shadow.Settings{SafeRoutes: s.SafeRoutes, IgnoreHeaders: s.IgnoreHeaders, ExpectedChanges: s.ExpectedChanges}
}

func (s *ShadowSpec) defaults() {
	if s.Duration == 0 && s.Samples == 0 {
		s.Duration = Duration(DefaultShadowDuration)
	}
	if s.Percent == 0 {
		s.Percent = Percent(traffic.Total)
	}
}

func (s *ShadowSpec) validate() error {
	if s.Percent < 0 || int64(s.Percent) > traffic.Total {
		return invalid("spec.shadow.percent", "must be in (0, 100], got %s", s.Percent)
	}
	if err := s.settings().Validate(); err != nil {
		var fe *shadow.FieldError
		if errors.As(err, &fe) {
			return &FieldError{Path: "spec.shadow." + fe.Field, Err: fmt.Errorf("%w: %w", ErrInvalid, fe.Err)}
		}
		return &FieldError{Path: "spec.shadow", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
	}
	return nil
}

// ShadowStatus is the shadow step's state.
type ShadowStatus struct {
	// Active while the shadow step runs (Status.Step is -1 then).
	Active  bool      `json:"active"`
	Started time.Time `json:"started,omitzero"`
	// Passed records that the shadow step passed.
	Passed bool `json:"passed,omitempty"`
	// Mirroring is on in the routers (intent, set again at every pass
	// while the release runs; cleared once it ended).
	Mirroring bool `json:"mirroring"`
	// WindowKey names the step whose window Baseline starts (a new step
	// starts a new window); Baseline holds each cluster's mirror counts
	// then.
	WindowKey string                     `json:"windowKey,omitempty"`
	Baseline  map[string]shadow.Snapshot `json:"baseline,omitempty"`
	// Window is the current window's mirrored pairs, for the views.
	Window *analysis.Mirrored `json:"window,omitempty"`
}

// PairSource reads a cluster's mirrored pairs of a service (the embedded
// gateway's shadow recorder); a cluster without one (Istio) judges the
// shadow step on its metrics, where the mirrored requests are the
// canary's only traffic.
type PairSource interface {
	Pairs(ctx context.Context, service string) (shadow.Snapshot, error)
}

// PairsFunc adapts a function to PairSource.
type PairsFunc func(ctx context.Context, service string) (shadow.Snapshot, error)

// Pairs calls f.
func (f PairsFunc) Pairs(ctx context.Context, service string) (shadow.Snapshot, error) {
	return f(ctx, service)
}

// enterShadow starts the shadow step: stable keeps all traffic, the
// routers mirror.
func (e *Engine) enterShadow(r *Release, snap stats.Snapshot) {
	r.setWeights(traffic.Weights{r.Status.Stable: traffic.Total})
	r.Status.Step = -1
	r.Status.StepStarted = e.clock.Now().UTC()
	r.Status.StepBaseline = pick(snap, r.Canary(), r.Status.Stable)
	r.Status.Shadow = &ShadowStatus{Active: true, Started: r.Status.StepStarted, Mirroring: true}
	r.Status.Evidence = r.Status.Evidence.WithFields(r.Spec.Analysis.MaxFields)
	r.Status.Message = fmt.Sprintf("shadow step: %s gets a copy of %s's idempotent requests; users get %s's answers only", r.Canary(), r.Status.Stable, r.Status.Stable)
}

// syncMirror makes every cluster's router mirror while the release wants
// it (level-triggered: a restarted gateway mirrors again).
func (e *Engine) syncMirror(ctx context.Context, r *Release, seams map[string]Cluster) error {
	sh := r.Status.Shadow
	if sh == nil || !sh.Mirroring {
		return nil
	}
	m := &traffic.Mirror{Stable: r.Status.Stable, Canary: r.Canary(), Share: int64(r.Spec.Shadow.Percent), Settings: r.Spec.Shadow.settings()}
	var errs []error
	for _, cs := range r.Status.Clusters {
		mr, ok := seams[cs.Name].Router.(traffic.Mirrorer)
		if !ok {
			errs = append(errs, fmt.Errorf("cluster %s: its router cannot mirror requests: a shadow step needs the embedded gateway or Istio", cs.Name))
			continue
		}
		if err := mr.SetMirror(ctx, r.Spec.Service, m); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: mirror %s to %s: %w", cs.Name, r.Status.Stable, r.Canary(), err))
		}
	}
	return errors.Join(errs...)
}

// stopMirror turns the mirror off once the release ended.
func (e *Engine) stopMirror(ctx context.Context, r *Release, ver *int64) error {
	sh := r.Status.Shadow
	if sh == nil || !sh.Mirroring {
		return nil
	}
	seams, err := e.seams(ctx, r)
	if err != nil {
		return err
	}
	var errs []error
	for _, cs := range r.Status.Clusters {
		if mr, ok := seams[cs.Name].Router.(traffic.Mirrorer); ok {
			if err := mr.SetMirror(ctx, r.Spec.Service, nil); err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: stop the mirror: %w", cs.Name, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	sh.Mirroring, sh.Active = false, false
	return e.commit(ctx, r, ver, "mirror-off", nil)
}

// mirroredWindow reads the mirrored pairs of the current step's window
// from every cluster that records them (nil when none does). A new step
// starts a new window; counters that went back (a restarted gateway)
// start it again.
func (e *Engine) mirroredWindow(ctx context.Context, r *Release, seams map[string]Cluster) (w *analysis.Mirrored, restarted bool, err error) {
	sh := r.Status.Shadow
	if sh == nil || !sh.Mirroring {
		return nil, false, nil
	}
	key := fmt.Sprintf("wave %d step %d gate %v", r.Status.Wave, r.Status.Step, r.Status.Gate)
	now := map[string]shadow.Snapshot{}
	for _, cs := range r.Status.Clusters {
		src := seams[cs.Name].Pairs
		if src == nil {
			continue
		}
		s, err := src.Pairs(ctx, r.Spec.Service)
		if err != nil {
			return nil, false, fmt.Errorf("cluster %s: read the mirrored pairs of %s: %w", cs.Name, r.Spec.Service, err)
		}
		now[cs.Name] = s
	}
	if len(now) == 0 {
		return nil, false, nil
	}
	restart := sh.WindowKey != key
	for c, s := range now {
		if b, ok := sh.Baseline[c]; !ok || s.Reset(b) {
			restart = true
		}
	}
	if restart {
		sh.WindowKey, sh.Baseline = key, now
		sh.Window = nil
		return nil, true, nil // stored before anything is judged on it
	}
	var out *analysis.Mirrored
	for c, s := range now {
		w := analysis.MirroredWindow(s.Sub(sh.Baseline[c]))
		out = mergeMirrored(out, w)
	}
	if out != nil && r.Spec.Shadow != nil && r.Spec.Shadow.IgnoreAnswers {
		out.Fields = nil // judged on errors and latency only
	}
	sh.Window = out
	return out, false, nil
}

func mergeMirrored(a, b *analysis.Mirrored) *analysis.Mirrored {
	if a == nil {
		return b
	}
	out := &analysis.Mirrored{Canary: a.Canary.Add(b.Canary), Stable: a.Stable.Add(b.Stable), Secondary: a.Secondary.Add(b.Secondary), Exchanges: a.Exchanges + b.Exchanges,
		Dropped: a.Dropped + b.Dropped, TooLarge: a.TooLarge + b.TooLarge, NotSafe: a.NotSafe + b.NotSafe, Fields: map[string]shadow.FieldCounts{}}
	for _, m := range []map[string]shadow.FieldCounts{a.Fields, b.Fields} {
		for k, f := range m {
			o, ok := out.Fields[k]
			if !ok {
				out.Fields[k] = f
				continue
			}
			o.CanaryOnly += f.CanaryOnly
			o.StableOnly += f.StableOnly
			o.Both += f.Both
			o.Expected += f.Expected
			if f.Example != nil {
				o.Example = f.Example
			}
			out.Fields[k] = o
		}
	}
	return out
}

// reconcileShadow judges the shadow step: a failure ends the release
// before any user saw the canary; a pass after the step's minimums moves
// to the first step with the shadow window's evidence.
func (e *Engine) reconcileShadow(ctx context.Context, r *Release, ver *int64, snap stats.Snapshot, window analysis.Window) error {
	now := e.clock.Now().UTC()
	d := r.Spec.Analysis.Evaluate(r.Status.Evidence, window, false)
	if d.Verdict == analysis.Fail {
		return e.end(ctx, r, ver, RolledBack, fmt.Sprintf("shadow step failed, no user was served by %s: %s", r.Canary(), d.Reason), &d)
	}
	if r.Status.Phase == Paused {
		return e.noteDecision(ctx, r, ver, d)
	}
	spec := r.Spec.Shadow
	mirrored := d.CanaryRequests
	minTime := now.Sub(r.Status.StepStarted) >= spec.Duration.D()
	minSamples := mirrored >= spec.Samples
	if !minSamples && d.Verdict != analysis.Fail {
		d.MoreCanaryRequests = max(d.MoreCanaryRequests, spec.Samples-mirrored)
	}
	if d.Verdict == analysis.Pass && minTime && minSamples {
		r.Status.Evidence = r.Spec.Analysis.Extend(r.Status.Evidence, window)
		r.Status.Decision, r.Status.DecisionAt = &d, now
		r.Status.Shadow.Active, r.Status.Shadow.Passed = false, true
		e.enterStep(r, 0, snap)
		if err := e.commit(ctx, r, ver, "step", map[string]any{"step": 0, "weight": r.Spec.Steps[0], "shadow": "passed", "decision": d}); err != nil {
			return err
		}
		return e.applyWeights(ctx, r, ver)
	}
	if !minTime {
		return e.noteDecision(ctx, r, ver, d)
	}
	return e.holdTimedOut(ctx, r, ver, d, "the shadow step")
}

// holdTimedOut holds an undecided step; past its hold budget the release
// pauses for a person (or fails with onHoldTimeout: fail).
func (e *Engine) holdTimedOut(ctx context.Context, r *Release, ver *int64, d analysis.Decision, where string) error {
	now := e.clock.Now().UTC()
	if r.Status.HoldSince.IsZero() {
		r.Status.HoldSince = now
	}
	held := now.Sub(r.Status.HoldSince)
	if held <= r.holdBudget(now) {
		return e.noteDecision(ctx, r, ver, d)
	}
	msg := fmt.Sprintf("inconclusive for %s at %s: %s", held.Round(time.Second), where, d.Reason)
	if r.Spec.OnHoldTimeout == "fail" {
		return e.end(ctx, r, ver, Failed, msg, &d)
	}
	r.Status.Phase, r.Status.Message = Paused, "paused for a person: "+msg
	r.Status.HoldSince = time.Time{}
	r.Status.Decision, r.Status.DecisionAt = &d, now
	return e.commit(ctx, r, ver, "paused", map[string]any{"reason": r.Status.Message, "decision": d})
}

// holdBudget is how long an undecided step may hold: maxHold, or, with
// spec.maxDuration, whatever is left of the release's time budget (a low
// traffic service's steps extend their windows until the evidence
// decides, and a person is asked only when the budget ends undecided).
func (r *Release) holdBudget(now time.Time) time.Duration {
	if r.Spec.MaxDuration == 0 || r.Status.Started.IsZero() {
		return r.Spec.MaxHold.D()
	}
	// Past the budget the result is below the time held (left < 0),
	// so the caller's held > budget pauses: max(0, left) here would hold
	// for ever.
	left := r.Spec.MaxDuration.D() - now.Sub(r.Status.Started)
	return now.Sub(r.Status.HoldSince) + left
}

// stepCanaryRequests counts the canary's requests of a step's window:
// its users' and, while the mirror is on, the mirrored copies it
// answered. spec.stepSamples asks for that many samples of evidence, and
// at low traffic most of them are mirrored (the judges count both too).
func stepCanaryRequests(w analysis.Window) uint64 {
	n := w.Canary.Total.Requests
	if w.Mirrored != nil {
		n += w.Mirrored.Canary.Total.Requests
	}
	return n
}

// withServiceShadowRules adds the shadow section of the .pave.yaml beside
// the release's source or binary to spec.shadow's rules, so a team writes
// its safe routes, ignored headers and expected changes once:
//
//	shadow:
//	  safeRoutes: ["POST /v1/quote"]
//	  ignoreHeaders: [X-Request-Id]
//	  expectedChanges: [{route: /v1/pay, path: $.fee}]
func withServiceShadowRules(s *Spec) error {
	if s.Shadow == nil {
		return nil
	}
	dir := s.Source
	if dir == "" && s.Binary != "" {
		dir = filepath.Dir(s.Binary)
	}
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, ".pave.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &FieldError{Path: "spec.shadow", Err: fmt.Errorf("%w: read %s: %w", ErrInvalid, path, err)}
	}
	var doc struct {
		Shadow shadow.Settings `json:"shadow"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &FieldError{Path: "spec.shadow", Err: fmt.Errorf("%w: %s: shadow: %w", ErrInvalid, path, err)}
	}
	if err := doc.Shadow.Validate(); err != nil {
		return &FieldError{Path: "spec.shadow", Err: fmt.Errorf("%w: %s: shadow.%w", ErrInvalid, path, err)}
	}
	m := doc.Shadow.Merge(s.Shadow.settings())
	s.Shadow.SafeRoutes, s.Shadow.IgnoreHeaders, s.Shadow.ExpectedChanges = m.SafeRoutes, m.IgnoreHeaders, m.ExpectedChanges
	return nil
}
