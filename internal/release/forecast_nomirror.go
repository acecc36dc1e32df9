package release

import (
	"slices"
	"time"

	"github.com/pave-platform/pave/internal/traffic"
)

// A service at a few requests per second whose traffic cannot be
// mirrored (only POST routes, a router without a mirror, or
// spec.autoShadow: false) decides on the canary's own share alone. The
// default steps then cannot both catch a bad canary within a few failed
// user requests and promote a good one within minutes
// (docs/release.md, "Low traffic without a mirror"). The no-mirror
// profile is the tuning that does, measured by bench/release:
//
//   - steps 5, 50, 100: at 5% each failed canary request weighs most
//     (log 9/1.4 ≈ 1.9 nats against the judges' 9× alternative), and 50%
//     is the fastest split to accept a good canary;
//   - stepSamples 75: the first step lasts at least 75 canary requests,
//     in which a canary failing 5 points more than a 0.5% stable fails
//     about 4 times, enough to roll it back there (the judges hold a
//     suspect step past that);
//   - analysis.maxRoutes 0 and alpha 0.02: at this traffic a route's own
//     tests could not decide anyway, so the whole α goes to the total's
//     two tests, α/2 = 1% each: the rollback threshold drops from
//     log e-value 6.0 (+ the mixture's log 2) to 4.6;
//   - analysis.errorFloor 0.01: the tolerance, an error rate at most 1
//     point above stable's, accepted by confidence sequences at β;
//   - maxDuration 30m: the slowest tenth of good canaries needs more than
//     15 minutes at 10 requests/s.
//
// What the numbers depend on are canary requests, not seconds: at any
// rate the first step's 75 requests bound the blast radius the same way,
// and the time scales with 1/rate.
const (
	noMirrorStepSamples = 75
	noMirrorAlpha       = 0.02
	noMirrorErrorFloor  = 0.01
	// NoMirrorMaxDuration is the profile's time budget at the benchmark's
	// 10 requests/s; a slower service needs proportionally more.
	NoMirrorMaxDuration = 30 * time.Minute
)

var noMirrorSteps = []Percent{Percent(traffic.Total / 20), Percent(traffic.Total / 2), Percent(traffic.Total)}

// NoMirrorProfile tunes a spec for a low-traffic service that cannot
// mirror: the steps, the first step's samples, the α split and the
// tolerance above. A time budget shorter than NoMirrorMaxDuration is
// raised to it; the rest of the spec is kept.
func NoMirrorProfile(s *Spec) {
	s.Steps = append([]Percent(nil), noMirrorSteps...)
	s.StepSamples = noMirrorStepSamples
	s.Analysis.Alpha = noMirrorAlpha
	s.Analysis.MaxRoutes = 0
	s.Analysis.ErrorFloor = noMirrorErrorFloor
	if s.MaxDuration.D() < NoMirrorMaxDuration {
		s.MaxDuration = Duration(NoMirrorMaxDuration)
	}
}

// noMirrorSummary lists the profile's settings as a spec would say them.
const noMirrorSummary = "steps 5,50,100, stepSamples 75, maxDuration 30m, analysis.alpha 0.02, analysis.maxRoutes 0, analysis.errorFloor 0.01"

// isNoMirrorProfile reports whether the spec already has the profile's
// settings (the forecast then does not suggest it).
func (s Spec) isNoMirrorProfile() bool {
	p := s
	NoMirrorProfile(&p)
	return slices.Equal(s.Steps, p.Steps) && s.StepSamples == p.StepSamples && s.MaxDuration == p.MaxDuration &&
		s.Analysis.Alpha == p.Analysis.Alpha && s.Analysis.MaxRoutes == p.Analysis.MaxRoutes && s.Analysis.ErrorFloor == p.Analysis.ErrorFloor
}

// NoMirrorProfileSpec is the profile as fields of a Release document's
// spec (what `pave release --profile no-mirror` adds): steps,
// stepSamples, maxDuration and analysis.alpha, maxRoutes and errorFloor.
func NoMirrorProfileSpec() map[string]any {
	var s Spec
	NoMirrorProfile(&s)
	return map[string]any{
		"steps": s.Steps, "stepSamples": s.StepSamples, "maxDuration": s.MaxDuration.D().String(),
		"analysis": map[string]any{"alpha": s.Analysis.Alpha, "maxRoutes": s.Analysis.MaxRoutes, "errorFloor": s.Analysis.ErrorFloor},
	}
}
