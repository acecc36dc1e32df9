// Package release is Pave's release engine: the Release object (shaped like
// a Kubernetes custom resource so the same spec serves the Kubernetes
// mode), its state machine, its persistence in the state store and the
// level-triggered reconcile loop that moves traffic step by step from the
// stable version to the new one, or back at once when a judge objects.
//
//	pending → progressing(step k) ⇄ paused → promoted | rolled_back | aborted | failed
//
// Every change of traffic is recorded in the state store before it is
// applied to the router (the intent), then confirmed; after a crash the
// loop re-reads the stored state and re-applies what it finds, so traffic
// never stays on a version that failed.
package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// APIVersion and Kind identify a Release document.
const (
	APIVersion = "pave.dev/v1alpha1"
	Kind       = "Release"
)

// Phase is where a release is in its state machine.
type Phase string

// The phases.
const (
	Pending     Phase = "pending"
	Progressing Phase = "progressing"
	Paused      Phase = "paused"
	Promoted    Phase = "promoted"
	RolledBack  Phase = "rolled_back"
	Aborted     Phase = "aborted"
	Failed      Phase = "failed"
)

// Terminal reports whether the phase is an end state.
func (p Phase) Terminal() bool {
	return p == Promoted || p == RolledBack || p == Aborted || p == Failed
}

// Words is the phase as a person says it.
func (p Phase) Words() string { return strings.ReplaceAll(string(p), "_", " ") }

// Release is one attempt to move a service to a new version.
type Release struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	Status     Status   `json:"status"`
}

// Metadata names a release.
type Metadata struct {
	// Name is unique among releases; by default SERVICE-VERSION, with a
	// numeric suffix when that is taken.
	Name              string            `json:"name,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	CreationTimestamp time.Time         `json:"creationTimestamp,omitzero"`
}

// Spec is what the user asks for.
type Spec struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// Exactly one of Source (a directory), Binary (a path) and Image (an
	// OCI reference) says what to run; the runtime target interprets it.
	Source string `json:"source,omitempty"`
	Binary string `json:"binary,omitempty"`
	Image  string `json:"image,omitempty"`
	// Replicas of the new version; unset (0), as many as the stable
	// version has, or DefaultReplicas for a first release.
	Replicas int `json:"replicas,omitempty"`
	// Env is added to the new version's environment, e.g. feature flags.
	Env map[string]string `json:"env,omitempty"`
	// Steps are the canary's traffic percentages, increasing, ending at
	// 100; the resolution is 0.0001% (0.01 is allowed).
	Steps []Percent `json:"steps,omitempty"`
	// StepDuration is the minimum time a step lasts.
	StepDuration Duration `json:"stepDuration,omitempty"`
	// StepSamples is the minimum number of canary requests in a step.
	StepSamples uint64 `json:"stepSamples,omitempty"`
	// MaxHold bounds how long a step may stay inconclusive once its
	// minimum duration has passed; then OnHoldTimeout applies.
	MaxHold Duration `json:"maxHold,omitempty"`
	// OnHoldTimeout is "pause" (wait for a human) or "fail".
	OnHoldTimeout string `json:"onHoldTimeout,omitempty"`
	// ReadyTimeout bounds the wait for the new version's readiness.
	ReadyTimeout Duration `json:"readyTimeout,omitempty"`
	// ScaleDownDelay is how long the retired version keeps running after
	// its weight went to 0, so requests in flight finish.
	ScaleDownDelay Duration `json:"scaleDownDelay,omitempty"`
	// Supersede aborts a release of the same service that is still
	// running instead of refusing this one.
	Supersede bool            `json:"supersede,omitempty"`
	Analysis  analysis.Config `json:"analysis"`
	// Clusters names the clusters to release to (default: all of them).
	// Waves orders them: each wave runs the canary through every step in
	// its clusters, a health gate follows, then the next wave starts; a
	// failure anywhere rolls back everywhere. By default each cluster is a
	// wave of its own, in the order given; Lockstep puts them all in one
	// wave that moves together.
	Clusters []string   `json:"clusters,omitempty"`
	Waves    [][]string `json:"waves,omitempty"`
	Lockstep bool       `json:"lockstep,omitempty"`
	// WaveGate is how long a finished wave serves the canary alone, judged
	// against the stable version in the clusters still to come, before
	// the next wave starts (default: stepDuration).
	WaveGate Duration `json:"waveGate,omitempty"`
	// Shadow asks for a shadow step before the first step (shadow.go).
	Shadow *ShadowSpec `json:"shadow,omitempty"`
	// MaxDuration bounds the whole release's time: an undecided step
	// holds until it runs out (instead of maxHold), then a person decides.
	MaxDuration Duration `json:"maxDuration,omitempty"`
	// AutoShadow: false keeps a release with a time budget from adding a
	// shadow step when its traffic is too low to decide without one
	// (forecast.go); unset or true lets it.
	AutoShadow *bool `json:"autoShadow,omitempty"`
}

// ClusterStatus is one cluster's part of a release.
type ClusterStatus struct {
	Name string `json:"name"`
	// Wave indexes the wave the cluster belongs to.
	Wave int `json:"wave"`
	// Weights are the weights last confirmed in this cluster.
	Weights traffic.Weights `json:"weights,omitempty"`
	// Error is the cluster's latest problem (unreachable, refused...),
	// empty when it answers; ErrorSince is when the trouble began.
	Error      string    `json:"error,omitempty"`
	ErrorSince time.Time `json:"errorSince,omitzero"`
}

// Status is what the engine observed and decided; only the engine writes it.
type Status struct {
	Phase   Phase  `json:"phase"`
	Message string `json:"message,omitempty"`
	// Stable is the version the release replaces ("" for a first release).
	Stable string `json:"stable,omitempty"`
	// Step indexes Spec.Steps; -1 before the canary got any weight.
	Step int `json:"step"`
	// Weights are the desired weights, recorded before they are applied;
	// WeightsApplied confirms the router took them.
	Weights        traffic.Weights `json:"weights,omitempty"`
	WeightsApplied bool            `json:"weightsApplied"`
	// HeaderRoute tells testers how to reach the new version before it
	// has any weight.
	HeaderRoute string    `json:"headerRoute,omitempty"`
	StepStarted time.Time `json:"stepStarted,omitzero"`
	// StepBaseline holds the cumulative counters of the canary and stable
	// at the start of the step: the current window is now minus this.
	StepBaseline stats.Snapshot     `json:"stepBaseline,omitempty"`
	Evidence     analysis.Evidence  `json:"evidence"`
	Decision     *analysis.Decision `json:"decision,omitempty"`
	DecisionAt   time.Time          `json:"decisionAt,omitzero"`
	HoldSince    time.Time          `json:"holdSince,omitzero"`
	Started      time.Time          `json:"started,omitzero"`
	Finished     time.Time          `json:"finished,omitzero"`
	ScaleDownAt  time.Time          `json:"scaleDownAt,omitzero"`
	ScaledDown   bool               `json:"scaledDown"`
	// Wave indexes the wave whose clusters run the canary's steps; Gate
	// is true while the finished wave Wave is judged before the next.
	Wave     int             `json:"wave"`
	Gate     bool            `json:"gate,omitempty"`
	Clusters []ClusterStatus `json:"clusters,omitempty"`

	// CrossBaseline holds, during a gate, the counters the cross-cluster
	// report starts from: the canary in the finished wave, stable in the
	// waves to come (reported, never judged; see gate.go).
	CrossBaseline stats.Snapshot `json:"crossBaseline,omitempty"`
	// StableArtifact is what the stable version ran when it came from no
	// release (pave run), so pave release undo can bring it back.
	StableArtifact *RunningVersion `json:"stableArtifact,omitempty"`
	// Failure is why the new version did not run (failure.go).
	Failure *Failure `json:"failure,omitempty"`
	// ManualTraffic is set while a person's traffic choice holds the
	// paused release: the engine applies no weights of its own until it is
	// resumed (manual.go).
	ManualTraffic bool `json:"manualTraffic,omitempty"`
	// Shadow is the shadow step's state and the mirror's (shadow.go).
	Shadow *ShadowStatus `json:"shadow,omitempty"`
	// Forecast is the expected course of the release at the service's
	// traffic, and whether it will likely pause for a person (forecast.go).
	Forecast *Forecast `json:"forecast,omitempty"`
}

// Waves returns the number of waves.
func (s Status) Waves() int {
	n := 0
	for _, c := range s.Clusters {
		n = max(n, c.Wave+1)
	}
	return n
}

// WaveClusters names the clusters of wave k.
func (s Status) WaveClusters(k int) []string {
	var out []string
	for _, c := range s.Clusters {
		if c.Wave == k {
			out = append(out, c.Name)
		}
	}
	return out
}

// Settled reports whether the release has ended and the router carries its
// final weights: the moment a waiting caller may act on the outcome.
func (r Release) Settled() bool {
	return r.Status.Phase.Terminal() && (r.Status.WeightsApplied || len(r.Status.Weights) == 0)
}

// Canary is the version under release.
func (r Release) Canary() string { return r.Spec.Version }

// Percent is a traffic share in parts per million that reads and writes as
// a JSON/YAML number or string of percent ("1", "0.01", 25.5).
type Percent int64

// UnmarshalJSON accepts 1, 0.01, "25" and "25%".
func (p *Percent) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	v, err := traffic.ParsePercent(s)
	if err != nil {
		return err
	}
	*p = Percent(v)
	return nil
}

// MarshalJSON writes a number of percent.
func (p Percent) MarshalJSON() ([]byte, error) {
	return []byte(traffic.FormatPercent(int64(p))), nil
}

func (p Percent) String() string { return traffic.FormatPercent(int64(p)) + "%" }

// Duration is a time.Duration that reads and writes as "10s", "1m30s".
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\" or \"2m\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"2m\": %w", err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DefaultSteps are used when a spec gives none.
var DefaultSteps = []Percent{10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000}

// Defaults for the unset fields of a spec.
const (
	DefaultReplicas       = 1
	DefaultStepDuration   = 10 * time.Second
	DefaultStepSamples    = 100
	DefaultMaxHold        = 10 * time.Minute
	DefaultReadyTimeout   = 2 * time.Minute
	DefaultScaleDownDelay = 30 * time.Second
)

// FieldError is a refused input, with the path of the field at fault
// ("spec.steps[2]").
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrInvalid marks a refused release spec.
var ErrInvalid = errors.New("invalid release")

func invalid(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}

// New returns a release of service at version with the defaults.
func New(service, version string) Release {
	r := Release{APIVersion: APIVersion, Kind: Kind, Spec: Spec{Service: service, Version: version, Analysis: analysis.DefaultConfig()}}
	r.Default()
	return r
}

// Default fills the unset fields of the spec.
func (r *Release) Default() {
	if r.APIVersion == "" {
		r.APIVersion = APIVersion
	}
	if r.Kind == "" {
		r.Kind = Kind
	}
	s := &r.Spec
	// Replicas stay 0 here: Create gives the new version the stable
	// version's size, or DefaultReplicas for a first release.
	if len(s.Steps) == 0 {
		s.Steps = append([]Percent(nil), DefaultSteps...)
	}
	if s.StepDuration == 0 {
		s.StepDuration = Duration(DefaultStepDuration)
	}
	if s.StepSamples == 0 {
		s.StepSamples = DefaultStepSamples
	}
	if s.MaxHold == 0 {
		s.MaxHold = Duration(DefaultMaxHold)
	}
	if s.OnHoldTimeout == "" {
		s.OnHoldTimeout = "pause"
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = Duration(DefaultReadyTimeout)
	}
	if s.ScaleDownDelay == 0 {
		s.ScaleDownDelay = Duration(DefaultScaleDownDelay)
	}
	if s.WaveGate == 0 {
		s.WaveGate = s.StepDuration
	}
	if s.Shadow != nil {
		s.Shadow.defaults()
	}
}

// Validate checks a defaulted spec and names the first field at fault.
func (r Release) Validate() error {
	if r.APIVersion != APIVersion {
		return invalid("apiVersion", "must be %q, got %q", APIVersion, r.APIVersion)
	}
	if r.Kind != Kind {
		return invalid("kind", "must be %q, got %q", Kind, r.Kind)
	}
	if r.Metadata.Name != "" {
		if err := traffic.ValidName("release", r.Metadata.Name); err != nil {
			return &FieldError{Path: "metadata.name", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
	}
	s := r.Spec
	if s.Service == "" {
		return invalid("spec.service", "missing: name the service to release, e.g. service: checkout")
	}
	if err := traffic.ValidName("service", s.Service); err != nil {
		return &FieldError{Path: "spec.service", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
	}
	if s.Version == "" {
		return invalid("spec.version", "missing: name the new version, e.g. version: v2")
	}
	if err := traffic.ValidName("version", s.Version); err != nil {
		return &FieldError{Path: "spec.version", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
	}
	n := 0
	for _, a := range []string{s.Source, s.Binary, s.Image} {
		if a != "" {
			n++
		}
	}
	if n != 1 {
		return invalid("spec.source", "give exactly one of spec.source (a directory), spec.binary (a path) or spec.image (an image reference); %d given", n)
	}
	if s.Replicas < 0 || s.Replicas > 1000 {
		return invalid("spec.replicas", "must be between 1 and 1000 (or unset: as many as the stable version), got %d", s.Replicas)
	}
	for i, p := range s.Steps {
		path := fmt.Sprintf("spec.steps[%d]", i)
		switch {
		case p <= 0:
			return invalid(path, "step %s must be above 0%% (the smallest step is 0.0001%%)", p)
		case int64(p) > traffic.Total:
			return invalid(path, "step %s is above 100%%", p)
		case i > 0 && p <= s.Steps[i-1]:
			return invalid(path, "steps must increase: %s follows %s", p, s.Steps[i-1])
		}
	}
	if last := s.Steps[len(s.Steps)-1]; int64(last) != traffic.Total {
		return invalid(fmt.Sprintf("spec.steps[%d]", len(s.Steps)-1), "the last step must be 100%% (promotion), got %s", last)
	}
	if s.OnHoldTimeout != "pause" && s.OnHoldTimeout != "fail" {
		return invalid("spec.onHoldTimeout", "must be \"pause\" or \"fail\", got %q", s.OnHoldTimeout)
	}
	if err := validateClusters(s); err != nil {
		return err
	}
	if err := validateAbortOnAlerts(s.Analysis.AbortOnAlerts); err != nil {
		return err
	}
	if s.Shadow != nil {
		if err := s.Shadow.validate(); err != nil {
			return err
		}
	}
	if err := s.Analysis.Validate(); err != nil {
		var ce *analysis.ConfigError
		if errors.As(err, &ce) {
			return &FieldError{Path: "spec.analysis." + ce.Field, Err: fmt.Errorf("%w: %w", ErrInvalid, ce.Err)}
		}
		return &FieldError{Path: "spec.analysis", Err: err}
	}
	return nil
}

func validateClusters(s Spec) error {
	seen := map[string]string{}
	check := func(path, name string) error {
		if err := traffic.ValidName("cluster", name); err != nil {
			return &FieldError{Path: path, Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
		if prev, dup := seen[name]; dup {
			return invalid(path, "cluster %s is named twice (also at %s)", name, prev)
		}
		seen[name] = path
		return nil
	}
	for i, c := range s.Clusters {
		if err := check(fmt.Sprintf("spec.clusters[%d]", i), c); err != nil {
			return err
		}
	}
	if len(s.Waves) == 0 {
		return nil
	}
	if s.Lockstep {
		return invalid("spec.lockstep", "lockstep runs every cluster in one wave; give either spec.waves or spec.lockstep, not both")
	}
	listed := seen
	seen = map[string]string{}
	for i, w := range s.Waves {
		if len(w) == 0 {
			return invalid(fmt.Sprintf("spec.waves[%d]", i), "a wave needs at least one cluster")
		}
		for j, c := range w {
			path := fmt.Sprintf("spec.waves[%d][%d]", i, j)
			if err := check(path, c); err != nil {
				return err
			}
			if len(listed) > 0 && listed[c] == "" {
				return invalid(path, "cluster %s is not in spec.clusters", c)
			}
		}
	}
	for c, path := range listed {
		if seen[c] == "" {
			return invalid(path, "cluster %s is in no wave of spec.waves", c)
		}
	}
	return nil
}
