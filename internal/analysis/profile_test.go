package analysis

import (
	"math"
	"testing"
)

// The no-mirror profile (release.NoMirrorProfile, docs/release.md "Low
// traffic without a mirror"): α = 2% spent on the total's two tests
// alone (maxRoutes 0), errorFloor 1 point, steps 5% (at least 75 canary
// requests: 150 s at 10 req/s) and 50%, a 30m budget. Its guarantees are
// the engine's at that α and β, whatever the tuning: an A/A release is
// rolled back in at most α of the runs, and a canary at the tolerance
// (stable 0.5%, canary 1.5%: both 3× and +1 point) is promoted in at
// most β by either acceptance, 2β by their union (measured: within β).
func TestNoMirrorProfileKeepsItsBounds(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Alpha, cfg.MaxRoutes, cfg.ErrorFloor = 0.02, 0, 0.01
	runs, horizon := 400, 1800
	if raceEnabled {
		runs = 100 // the first 100 of the same streams
	}
	steps := []stepPlan{{0.05, 150}, {0.50, 10}}
	count := func(seed uint64, canaryP float64) (promoted, rolled, paused, byFloor int) {
		v := countVerdicts(eachRun(runs, func(i int) stepOutcome {
			return stepRun(seed+uint64(i), cfg, 10, 0.005, canaryP, steps, horizon)
		}))
		return v.promoted, v.rolled, v.paused, v.byFloor
	}
	promoted, rolled, paused, _ := count(9000, 0.005)
	t.Logf("A/A, the no-mirror profile at 10 req/s: %d promoted, %d rolled back, %d paused of %d (α = %.2f)", promoted, rolled, paused, runs, cfg.Alpha)
	if limit := cfg.Alpha*float64(runs) + 3*math.Sqrt(cfg.Alpha*(1-cfg.Alpha)*float64(runs)); float64(rolled) > limit {
		t.Errorf("A/A false rollbacks %d of %d exceed α=%.2f (limit %.1f)", rolled, runs, cfg.Alpha, limit)
	}
	if !raceEnabled && float64(rolled) > cfg.Alpha*float64(runs) {
		t.Errorf("A/A false-rollback rate %d/%d above α=%.2f", rolled, runs, cfg.Alpha)
	}
	promoted, rolled, paused, byFloor := count(11000, 0.015)
	t.Logf("at the tolerance: %d promoted (%d with the floor acceptance holding), %d rolled back, %d paused of %d (β = %.2f)",
		promoted, byFloor, rolled, paused, runs, cfg.Beta)
	if limit := 2 * cfg.Beta * float64(runs); float64(promoted) > limit {
		t.Errorf("promoted %d of %d canaries at the tolerance, above the union bound 2β·runs = %.0f", promoted, runs, limit)
	}
	// Measured: 12 of 400, the ratio test's acceptance nearly always.
	if !raceEnabled && float64(promoted) > cfg.Beta*float64(runs) {
		t.Errorf("promoted %d of %d canaries at the tolerance, above β·runs = %.0f", promoted, runs, cfg.Beta*float64(runs))
	}
}
