package release

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

var ctx = context.Background()

func (r *rig) create(rel Release) Release {
	r.t.Helper()
	out, err := r.eng.Create(ctx, rel)
	if err != nil {
		r.t.Fatalf("create: %v", err)
	}
	return out
}

// runUntil ticks until the release reaches phase or n seconds pass.
func (r *rig) runUntil(name string, rps, n int, done func(Release) bool) Release {
	r.t.Helper()
	for range n {
		r.tick(rps)
		if rel := r.get(name); done(rel) {
			return rel
		}
	}
	rel := r.get(name)
	r.t.Fatalf("after %d s the release is %s at step %d: %s", n, rel.Status.Phase, rel.Status.Step, rel.Status.Message)
	return rel
}

func phaseIs(p Phase) func(Release) bool { return func(r Release) bool { return r.Status.Phase == p } }

func TestHealthyReleaseIsPromotedStepByStep(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.01, 0.01
	rel := r.create(testRelease())
	if rel.Metadata.Name != "shop-v2" || rel.Status.Phase != Pending || rel.Status.Stable != "v1" {
		t.Fatalf("created %+v", rel.Status)
	}
	var weights []int64
	var last int64 = -1
	final := r.runUntil("shop-v2", 1000, 300, func(x Release) bool {
		if w := r.router.get("shop", "v2"); w != last {
			weights = append(weights, w)
			last = w
		}
		return x.Status.Phase.Terminal()
	})
	if final.Status.Phase != Promoted {
		t.Fatalf("ended %s: %s", final.Status.Phase, final.Status.Message)
	}
	want := []int64{10_000, 100_000, 500_000, 1_000_000}
	if len(weights) != len(want) {
		t.Fatalf("canary weights went %v, want %v", weights, want)
	}
	for i := range want {
		if weights[i] != want[i] {
			t.Fatalf("canary weights went %v, want %v", weights, want)
		}
	}
	if final.Status.HeaderRoute != "X-Pave-Version: v2" {
		t.Errorf("header route %q", final.Status.HeaderRoute)
	}
	if final.Status.Decision == nil || final.Status.Decision.Verdict != "pass" || len(final.Status.Decision.Findings) == 0 {
		t.Errorf("no decision with numbers stored: %+v", final.Status.Decision)
	}
	// Stable keeps running until the scale-down delay after promotion.
	if !r.target.deployed["shop@v1"] {
		t.Fatal("stable scaled down at promotion; it must wait for the delay")
	}
	r.runUntil("shop-v2", 10, 30, func(x Release) bool { return x.Status.ScaledDown })
	if r.target.deployed["shop@v1"] {
		t.Fatal("stable still running after the scale-down delay")
	}
	hist, err := r.eng.History(ctx, "shop-v2")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range hist {
		types = append(types, e.Type)
	}
	joined := strings.Join(types, ",")
	for _, want := range []string{"created", "step", "weights", "promoted", "scaled-down"} {
		if !strings.Contains(joined, want) {
			t.Errorf("history %s lacks %s", joined, want)
		}
	}
}

func TestBadCanaryIsRolledBackWeightFirst(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.005, 0.3
	r.create(testRelease())
	final := r.runUntil("shop-v2", 1000, 60, func(x Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != RolledBack {
		t.Fatalf("ended %s", final.Status.Phase)
	}
	if w := r.router.get("shop", "v2"); w != 0 {
		t.Fatalf("canary keeps %d ppm after rollback", w)
	}
	if !strings.Contains(final.Status.Message, "error rate") || final.Status.Decision == nil || final.Status.Decision.Verdict != "fail" {
		t.Fatalf("rollback without its reason: %q %+v", final.Status.Message, final.Status.Decision)
	}
	if !r.target.deployed["shop@v2"] {
		t.Fatal("canary removed at once; it must be scaled down after the delay, weight first")
	}
	r.runUntil("shop-v2", 10, 30, func(x Release) bool { return x.Status.ScaledDown })
	if r.target.deployed["shop@v2"] || !r.target.deployed["shop@v1"] {
		t.Fatalf("after the delay: deployed %v", r.target.deployed)
	}
}

func TestResumesMidStepAfterCrash(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.01, 0.01
	r.create(testRelease())
	mid := r.runUntil("shop-v2", 1000, 60, func(x Release) bool { return x.Status.Step == 1 })
	r.tick(1000) // some evidence inside step 1
	r.crash()
	r.open()
	got := r.get("shop-v2")
	if got.Status.Step != 1 || got.Status.Phase != Progressing || !got.Status.StepStarted.Equal(mid.Status.StepStarted) {
		t.Fatalf("resumed at %s step %d started %v; want progressing step 1 started %v", got.Status.Phase, got.Status.Step, got.Status.StepStarted, mid.Status.StepStarted)
	}
	if len(got.Status.Evidence.LogE) == 0 || !reflect.DeepEqual(got.Status.Evidence, mid.Status.Evidence) {
		t.Fatalf("the evidence of step 0 was lost: %+v, stored before the crash %+v", got.Status.Evidence, mid.Status.Evidence)
	}
	final := r.runUntil("shop-v2", 1000, 300, func(x Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != Promoted {
		t.Fatalf("after the restart it ended %s: %s", final.Status.Phase, final.Status.Message)
	}
}

func TestCanaryThatFailedWhileDownEndsWithoutWeight(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.005, 0.005
	r.create(testRelease())
	r.runUntil("shop-v2", 1000, 60, func(x Release) bool { return x.Status.Step == 1 })
	r.crash()
	// While the control plane is down, the data plane keeps serving and
	// the canary starts failing.
	r.metrics.errors["v2"] = 0.5
	w, _ := r.router.Weights(ctx, "shop")
	for range 20 {
		r.metrics.serve(w, 1000)
		r.clock.Add(time.Second)
	}
	r.open()
	if err := r.eng.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.get("shop-v2")
	if got.Status.Phase != RolledBack || r.router.get("shop", "v2") != 0 || r.router.get("shop", "v1") != traffic.Total {
		t.Fatalf("after restart: %s, weights %v", got.Status.Phase, r.router.w["shop"])
	}
}

func TestIntentIsRecordedBeforeItIsApplied(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.005, 0.5
	r.create(testRelease())
	r.runUntil("shop-v2", 1000, 10, func(x Release) bool { return x.Status.Step == 0 && x.Status.WeightsApplied })
	// The router fails when the rollback is applied, and the process dies.
	r.router.failSet = 1000
	for range 30 {
		w, _ := r.router.Weights(ctx, "shop")
		r.metrics.serve(w, 1000)
		r.clock.Add(time.Second)
		_ = r.eng.Reconcile(ctx)
		if r.get("shop-v2").Status.Phase.Terminal() {
			break
		}
	}
	got := r.get("shop-v2")
	if got.Status.Phase != RolledBack || got.Status.WeightsApplied || got.Status.Weights["v1"] != traffic.Total {
		t.Fatalf("the intent is not recorded: phase %s applied %v weights %v", got.Status.Phase, got.Status.WeightsApplied, got.Status.Weights)
	}
	if r.router.get("shop", "v2") == 0 {
		t.Fatal("test setup: the router should still carry the canary")
	}
	r.crash()
	r.router.failSet = 0
	r.open()
	if err := r.eng.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if r.router.get("shop", "v2") != 0 || !r.get("shop-v2").Status.WeightsApplied {
		t.Fatalf("the recorded intent was not applied after restart: %v", r.router.w["shop"])
	}
}

func TestCountersResetKeepsEvidence(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.01, 0.01
	r.create(testRelease())
	r.runUntil("shop-v2", 1000, 60, func(x Release) bool { return x.Status.Step == 1 })
	before := r.get("shop-v2").Status.Evidence
	r.metrics.reset()
	r.tick(1000)
	got := r.get("shop-v2")
	if got.Status.Phase != Progressing || len(before.LogE) == 0 || !reflect.DeepEqual(got.Status.Evidence, before) {
		t.Fatalf("after a counter reset: %s, evidence %+v (was %+v)", got.Status.Phase, got.Status.Evidence, before)
	}
	final := r.runUntil("shop-v2", 1000, 300, func(x Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != Promoted {
		t.Fatalf("ended %s", final.Status.Phase)
	}
}

func TestActions(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.01, 0.01
	r.create(testRelease())
	if _, err := r.eng.Act(ctx, "shop-v2", Resume, "ana"); !errors.Is(err, ErrState) {
		t.Fatalf("resume of a pending release: %v", err)
	}
	r.runUntil("shop-v2", 1000, 10, phaseIs(Progressing))
	p, err := r.eng.Act(ctx, "shop-v2", Pause, "ana")
	if err != nil || p.Status.Phase != Paused || !strings.Contains(p.Status.Message, "by ana") {
		t.Fatalf("pause: %v %+v", err, p.Status)
	}
	step := p.Status.Step
	for range 30 {
		r.tick(1000)
	}
	if got := r.get("shop-v2"); got.Status.Phase != Paused || got.Status.Step != step {
		t.Fatalf("a paused release moved: %s step %d", got.Status.Phase, got.Status.Step)
	}
	if _, err := r.eng.Act(ctx, "shop-v2", Resume, "ana"); err != nil {
		t.Fatal(err)
	}
	a, err := r.eng.Act(ctx, "shop-v2", Abort, "ben")
	if err != nil || a.Status.Phase != Aborted || r.router.get("shop", "v2") != 0 {
		t.Fatalf("abort: %v %s weights %v", err, a.Status.Phase, r.router.w["shop"])
	}
	if _, err := r.eng.Act(ctx, "shop-v2", Promote, "ben"); !errors.Is(err, ErrState) {
		t.Fatalf("promote after abort: %v", err)
	}
	// Promote by hand skips the remaining steps.
	rel := testRelease()
	rel.Spec.Version = "v3"
	r.create(rel)
	r.runUntil("shop-v3", 1000, 10, phaseIs(Progressing))
	pr, err := r.eng.Act(ctx, "shop-v3", Promote, "ana")
	if err != nil || pr.Status.Phase != Promoted || r.router.get("shop", "v3") != traffic.Total {
		t.Fatalf("promote: %v %s %v", err, pr.Status.Phase, r.router.w["shop"])
	}
	if _, err := r.eng.Act(ctx, "nope", Pause, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown release: %v", err)
	}
}

func TestOneReleasePerServiceAndSupersede(t *testing.T) {
	r := newRig(t)
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.01, 0.01
	r.create(testRelease())
	r.runUntil("shop-v2", 1000, 10, phaseIs(Progressing))
	before, _ := r.store.List(ctx, StateKind)
	weightsBefore, _ := r.router.Weights(ctx, "shop")

	second := testRelease()
	second.Spec.Version = "v3"
	_, err := r.eng.Create(ctx, second)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "spec.service" || !strings.Contains(err.Error(), "shop-v2") {
		t.Fatalf("second release: %v", err)
	}
	after, _ := r.store.List(ctx, StateKind)
	weightsAfter, _ := r.router.Weights(ctx, "shop")
	if len(after) != len(before) || !sameWeights(weightsBefore, weightsAfter) {
		t.Fatal("a refused release changed the store or the weights")
	}

	second.Spec.Supersede = true
	s, err := r.eng.Create(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	old := r.get("shop-v2")
	if old.Status.Phase != Aborted || !strings.Contains(old.Status.Message, "superseded by shop-v3") || r.router.get("shop", "v2") != 0 {
		t.Fatalf("superseded: %s %q %v", old.Status.Phase, old.Status.Message, r.router.w["shop"])
	}
	if s.Status.Stable != "v1" {
		t.Fatalf("the new release replaces %q, want v1", s.Status.Stable)
	}
	r.metrics.errors["v3"] = 0.01
	final := r.runUntil("shop-v3", 1000, 300, func(x Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != Promoted {
		t.Fatalf("ended %s", final.Status.Phase)
	}
	if _, err := r.eng.Create(ctx, func() Release { x := testRelease(); x.Spec.Version = "v3"; return x }()); err == nil ||
		!strings.Contains(err.Error(), "already the stable version") {
		t.Fatalf("releasing the stable version: %v", err)
	}
}

func TestLowTrafficHoldsThenPauses(t *testing.T) {
	r := newRig(t)
	rel := testRelease()
	rel.Spec.MaxHold = Duration(30 * time.Second)
	r.create(rel)
	got := r.runUntil("shop-v2", 100, 120, func(x Release) bool { return x.Status.Phase == Paused })
	if got.Status.Step != 0 || !strings.Contains(got.Status.Message, "inconclusive") {
		t.Fatalf("paused at step %d: %q", got.Status.Step, got.Status.Message)
	}
	if r.router.get("shop", "v2") != 10_000 {
		t.Fatalf("a held step must keep its weight: %v", r.router.w["shop"])
	}
	rel2 := testRelease()
	rel2.Spec.Version = "v3"
	rel2.Spec.MaxHold = Duration(30 * time.Second)
	rel2.Spec.OnHoldTimeout = "fail"
	rel2.Spec.Supersede = true
	r.create(rel2)
	got = r.runUntil("shop-v3", 100, 120, func(x Release) bool { return x.Status.Phase.Terminal() })
	if got.Status.Phase != Failed || r.router.get("shop", "v3") != 0 {
		t.Fatalf("onHoldTimeout fail: %s %v", got.Status.Phase, r.router.w["shop"])
	}
}

func TestNotReadyInTimeFails(t *testing.T) {
	r := newRig(t)
	r.target.notReady["shop@v2"] = true
	rel := testRelease()
	rel.Spec.ReadyTimeout = Duration(5 * time.Second)
	r.create(rel)
	got := r.runUntil("shop-v2", 100, 20, func(x Release) bool { return x.Status.Phase.Terminal() })
	if got.Status.Phase != Failed || !strings.Contains(got.Status.Message, "not ready") || r.router.get("shop", "v2") != 0 {
		t.Fatalf("%s %q %v", got.Status.Phase, got.Status.Message, r.router.w["shop"])
	}
	if r.router.sets != 0 {
		t.Fatalf("weights changed %d times for a version that was never ready", r.router.sets)
	}
}

func TestFirstReleaseTakesAllTraffic(t *testing.T) {
	r := newRig(t)
	r.router.missing = "cart" // the router answers not-found, as the gateway router does
	rel := New("cart", "v1")
	rel.Spec.Image = "registry.local/cart:v1"
	r.create(rel)
	if err := r.eng.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.get("cart-v1")
	if got.Status.Phase != Promoted || r.router.get("cart", "v1") != traffic.Total {
		t.Fatalf("%s %v", got.Status.Phase, r.router.w["cart"])
	}
}

func TestStoredAsKubernetesShapedObject(t *testing.T) {
	r := newRig(t)
	r.create(testRelease())
	o, err := r.store.Get(ctx, StateKind, "shop-v2")
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(o.Data)
	if err != nil {
		t.Fatalf("the stored object does not parse as a spec: %v", err)
	}
	if back.Spec.Version != "v2" || back.Status.Phase != "" {
		t.Fatalf("round trip: %+v", back)
	}
	var _ state.Store = r.store
}

// spec.env reaches the target with the new version, so per-version settings
// (feature flags, the demo's injected fault) travel with the release.
func TestEnvReachesTheTarget(t *testing.T) {
	r := newRig(t)
	rel := testRelease()
	rel.Spec.Env = map[string]string{"FEATURE_X": "on"}
	r.create(rel)
	r.runUntil("shop-v2", 10, 10, func(Release) bool {
		r.target.mu.Lock()
		defer r.target.mu.Unlock()
		return r.target.deployed["shop@v2"]
	})
	r.target.mu.Lock()
	defer r.target.mu.Unlock()
	if got := r.target.env["shop@v2"]["FEATURE_X"]; got != "on" {
		t.Fatalf("env at the target: %v", r.target.env["shop@v2"])
	}
}
