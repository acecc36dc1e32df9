package release

import (
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/stats"
)

// With spec.maxDuration an undecided step holds past maxHold, and the
// release pauses for a person once the budget ends (not before, and not
// never).
func TestMaxDurationHoldsThenPausesWhenTheBudgetEnds(t *testing.T) {
	r := newRig(t)
	rel := testRelease()
	rel.Spec.MaxHold = Duration(20 * time.Second)
	rel.Spec.MaxDuration = Duration(90 * time.Second)
	r.create(rel)
	// 100 requests/s: the 1% step sees 1 canary request/s, too few to decide
	// within maxHold; the budget lets it hold longer.
	got := r.runUntil("shop-v2", 100, 200, func(x Release) bool { return x.Status.Phase == Paused })
	held := r.clock.Now().Sub(got.Status.Started)
	if held < 90*time.Second {
		t.Fatalf("paused after %s, before the 90 s budget ended (maxHold 20 s must not apply): %s", held, got.Status.Message)
	}
	if !strings.Contains(got.Status.Message, "paused for a person: inconclusive") {
		t.Fatalf("message %q", got.Status.Message)
	}
}

// spec.stepSamples counts the canary's mirrored requests with its users'.
func TestStepSamplesCountMirroredRequests(t *testing.T) {
	w := analysis.Window{Canary: stats.Version{Total: stats.Counts{Requests: 3}}}
	if got := stepCanaryRequests(w); got != 3 {
		t.Fatalf("live only: %d", got)
	}
	w.Mirrored = &analysis.Mirrored{Canary: stats.Version{Total: stats.Counts{Requests: 97}}}
	if got := stepCanaryRequests(w); got != 100 {
		t.Fatalf("live and mirrored: %d, want 100", got)
	}
}
