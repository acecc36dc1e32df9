package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

// shared returns the path of the first map, slice or pointer that a and b
// share (both non-empty), or "".
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Map:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for it := a.MapRange(); it.Next(); {
			if bv := b.MapIndex(it.Key()); bv.IsValid() {
				if p := shared(it.Value(), bv, fmt.Sprintf("%s[%v]", path, it.Key())); p != "" {
					return p
				}
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	case reflect.Interface:
		if !a.IsNil() && !b.IsNil() {
			return shared(a.Elem(), b.Elem(), path)
		}
	}
	return ""
}

// A copy equals its original, shares none of its maps, slices or
// pointers, and changing it leaves the original as it was.
func TestDeepCopyOfARunningRelease(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	if _, err := rg.eng.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	for range 8 { // into its steps, with evidence, a decision and a baseline
		rg.tick(200)
	}
	orig := rg.get("shop-v2")
	if orig.Status.Decision == nil || len(orig.Status.StepBaseline) == 0 || len(orig.Status.Weights) == 0 {
		t.Fatalf("the release is not far enough along to test a copy: %+v", orig.Status)
	}
	before, _ := json.Marshal(orig)
	cp := deepCopy(&orig)
	if !reflect.DeepEqual(*cp, orig) {
		t.Fatal("the copy differs from the original")
	}
	if p := shared(reflect.ValueOf(*cp), reflect.ValueOf(orig), "Release"); p != "" {
		t.Fatalf("the copy shares %s with the original", p)
	}
	cp.Status.Weights["v2"] = 7
	cp.Status.Clusters[0].Weights = traffic.Weights{"x": 1}
	cp.Status.Decision.Reason = "changed"
	for v, s := range cp.Status.StepBaseline {
		s.Total.Requests = 12345
		if len(s.Total.Latency) > 0 {
			s.Total.Latency[0] = 12345
		}
		cp.Status.StepBaseline[v] = s
	}
	cp.Spec.Steps[0] = 1
	if after, _ := json.Marshal(orig); string(after) != string(before) {
		t.Fatal("changing the copy changed the original")
	}
}

// A release written by someone else (a person on another replica, with
// an engine of its own) is read again at once: the engine that cached it
// never acts on the old copy.
func TestCacheSeesAnotherWriter(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	if _, err := rg.eng.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rg.tick(200)
	}
	r := rg.get("shop-v2")
	if r.Status.Phase != Progressing || rg.router.get("shop", "v2") == 0 {
		t.Fatalf("want the canary progressing with traffic, got %s, weights %v", r.Status.Phase, r.Status.Weights)
	}
	// Warm the cache: a reconcile that stores nothing.
	if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rg.eng.cache.m["shop-v2"]; !ok {
		t.Fatal("the release is not cached after a reconcile that stored nothing")
	}
	other := NewEngine(rg.store, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	if _, err := other.Act(ctx, "shop-v2", Abort, "alice"); err != nil {
		t.Fatal(err)
	}
	// A router change by hand after the abort (pave traffic set): an
	// ended release leaves it alone, where a stale copy (progressing at
	// its step) would put its step's weights back.
	_ = rg.router.SetWeights(ctx, "shop", traffic.Weights{"v1": traffic.Total - 20_000, "v2": 20_000})
	if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
		t.Fatal(err)
	}
	if got := rg.eng.mustGet(t, "shop-v2"); got.Status.Phase != Aborted {
		t.Fatalf("phase %s after another engine aborted it", got.Status.Phase)
	}
	if w := rg.router.get("shop", "v2"); w != 20_000 {
		t.Fatalf("the router gives v2 %d after the reconcile, want the 20000 set by hand: the engine acted on a stale copy", w)
	}
	hist, err := rg.eng.History(ctx, "shop-v2")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist[len(hist)-1:] {
		if ev.Type == "step" || ev.Type == "verdict" {
			t.Fatalf("the engine recorded %s after the abort: it acted on a stale copy", ev.Type)
		}
	}
}

func (e *Engine) mustGet(t *testing.T, name string) Release {
	t.Helper()
	r, err := e.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// With many releases in progress, an unchanged decision is stored again
// only every liveEvery (20 s at 1,000), while a hold's start is stored at
// once: the hold budget counts from it after a restart too.
func TestLiveViewWritesBoundedHoldStored(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	if _, err := rg.eng.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	rg.tick(200) // deployed, step 1
	if got := rg.get("shop-v2"); got.Status.Phase != Progressing {
		t.Fatalf("phase %s, want progressing", got.Status.Phase)
	}
	rg.eng.lister.inProgress.Store(1000) // as if 1,000 releases ran
	if every := rg.eng.liveEvery(); every != 20*time.Second {
		t.Fatalf("liveEvery %s at 1,000 releases, want 20s", every)
	}
	// No traffic: the step's time runs out without its samples, a hold.
	var hold time.Time
	for i := range 12 {
		w, _ := rg.router.Weights(ctx, "shop")
		rg.metrics.serve(w, 0)
		rg.clock.Add(time.Second)
		if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
			t.Fatal(err)
		}
		rg.eng.lister.inProgress.Store(1000)
		got := rg.get("shop-v2")
		if hold.IsZero() && !got.Status.HoldSince.IsZero() {
			hold = got.Status.HoldSince
			if want := rg.clock.Now(); !hold.Equal(want) {
				t.Fatalf("the hold stored as beginning at %s, in the reconcile at %s", hold, want)
			}
		}
		if !hold.IsZero() && !got.Status.HoldSince.Equal(hold) {
			t.Fatalf("tick %d: the stored hold moved from %s to %s", i, hold, got.Status.HoldSince)
		}
	}
	if hold.IsZero() {
		t.Fatal("no hold was stored within 12 s of a 5 s step without traffic")
	}
	st := rg.get("shop-v2").Status
	if late := hold.Sub(st.StepStarted); late > 7*time.Second {
		t.Fatalf("the hold stored as beginning %s into a 5 s step: it was not stored when it began", late)
	}
	// After the hold began, the same verdict is not stored again for 20 s.
	stored := rg.get("shop-v2").Status.DecisionAt
	var refreshed time.Time
	for range 25 {
		w, _ := rg.router.Weights(ctx, "shop")
		rg.metrics.serve(w, 0)
		rg.clock.Add(time.Second)
		if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
			t.Fatal(err)
		}
		rg.eng.lister.inProgress.Store(1000)
		if at := rg.get("shop-v2").Status.DecisionAt; !at.Equal(stored) && refreshed.IsZero() {
			refreshed = at
		}
	}
	if refreshed.IsZero() {
		t.Fatal("the live view was never refreshed in 25 s")
	}
	if gap := refreshed.Sub(stored); gap < 20*time.Second {
		t.Fatalf("an unchanged decision stored again after %s, want 20s at 1,000 releases", gap)
	}
}

// The lister reads only what changed, yet sees every change: a release
// created through another engine (another replica's API) is listed at
// the next look, and one that ended (scaled down, weights applied) is not.
func TestListerFollowsOtherWriters(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	if names, err := rg.eng.pendingWork(ctx); err != nil || len(names) != 0 {
		t.Fatalf("pending on an empty store: %v, %v", names, err)
	}
	other := NewEngine(rg.store, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	if _, err := other.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	if names, err := rg.eng.pendingWork(ctx); err != nil || fmt.Sprint(names) != "[shop-v2]" {
		t.Fatalf("pending after another engine's create: %v, %v; want [shop-v2]", names, err)
	}
	rg.tick(200)
	if _, err := other.Act(ctx, "shop-v2", Abort, "alice"); err != nil {
		t.Fatal(err)
	}
	for range 15 { // past the scale-down delay
		rg.tick(200)
	}
	if got := rg.get("shop-v2"); !got.Status.ScaledDown {
		t.Fatalf("not scaled down: %+v", got.Status)
	}
	if names, err := rg.eng.pendingWork(ctx); err != nil || len(names) != 0 {
		t.Fatalf("pending after the release ended: %v, %v; want none", names, err)
	}
	if got := rg.eng.lister.inProgress.Load(); got != 0 {
		t.Fatalf("inProgress %d, want 0", got)
	}
}

// getCounter counts the reads of releases that reach the store.
type getCounter struct {
	*state.SQLite
	gets, lists atomic.Int64
}

func (g *getCounter) List(ctx context.Context, kind string) ([]state.Object, error) {
	if kind == StateKind {
		g.lists.Add(1)
	}
	return g.SQLite.List(ctx, kind)
}

func (g *getCounter) Get(ctx context.Context, kind, key string) (state.Object, error) {
	if kind == StateKind {
		g.gets.Add(1)
	}
	return g.SQLite.Get(ctx, kind, key)
}

// After the engine's own commit the cache holds what was stored, at its
// new version, so the release's next reconcile reads nothing but the
// version; a write by another engine is still seen at once.
func TestCacheServesCommittedState(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	gc := &getCounter{SQLite: rg.store}
	rg.eng = NewEngine(gc, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	if _, err := rg.eng.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	step := func() (committed bool, reads int64) {
		t.Helper()
		w, _ := rg.router.Weights(ctx, "shop")
		rg.metrics.serve(w, 200)
		rg.clock.Add(time.Second)
		before, _ := rg.store.Version(ctx, StateKind, "shop-v2")
		g0 := gc.gets.Load()
		if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
			t.Fatal(err)
		}
		reads = gc.gets.Load() - g0
		after, _ := rg.store.Version(ctx, StateKind, "shop-v2")
		if after == before {
			return false, reads
		}
		// What the cache serves is what a read of the store decodes.
		var stored Release
		if _, err := state.GetJSON(ctx, rg.store, StateKind, "shop-v2", &stored); err != nil {
			t.Fatal(err)
		}
		hit, ok := rg.eng.cache.m["shop-v2"]
		if !ok || hit.version != after {
			t.Fatalf("after a commit at version %d the cache holds %v (version %d)", after, ok, hit.version)
		}
		if !reflect.DeepEqual(*hit.r, stored) {
			a, _ := json.Marshal(hit.r)
			b, _ := json.Marshal(stored)
			t.Fatalf("the cache after a commit differs from the store:\ncache %s\nstore %s", a, b)
		}
		return true, reads
	}
	commits, readsAfterCommit := 0, int64(0)
	prevCommitted := false
	for range 12 {
		committed, reads := step()
		if prevCommitted {
			readsAfterCommit += reads
		}
		if committed {
			commits++
		}
		prevCommitted = committed
	}
	if commits < 3 {
		t.Fatalf("only %d commits in 12 reconciles: the test does not exercise the commit path", commits)
	}
	if readsAfterCommit != 0 {
		t.Fatalf("%d reads of the release in reconciles that followed the engine's own commit, want 0", readsAfterCommit)
	}
	if r := rg.get("shop-v2"); r.Status.Phase != Progressing || rg.router.get("shop", "v2") == 0 {
		t.Fatalf("want the canary progressing with traffic, got %s, weights %v", r.Status.Phase, r.Status.Weights)
	}
	// The cache holds the engine's last commit; another engine aborts.
	for committed := false; !committed; {
		committed, _ = step()
	}
	other := NewEngine(rg.store, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	if _, err := other.Act(ctx, "shop-v2", Abort, "alice"); err != nil {
		t.Fatal(err)
	}
	_ = rg.router.SetWeights(ctx, "shop", traffic.Weights{"v1": traffic.Total - 20_000, "v2": 20_000})
	g0 := gc.gets.Load()
	if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
		t.Fatalf("reconcile after another engine's abort: %v", err)
	}
	if gc.gets.Load() == g0 {
		t.Fatal("the reconcile after another engine's write did not read the release again")
	}
	if w := rg.router.get("shop", "v2"); w != 20_000 {
		t.Fatalf("the router gives v2 %d after the reconcile, want the 20000 set by hand: the engine acted on its own committed copy", w)
	}
	if got := rg.get("shop-v2"); got.Status.Phase != Aborted {
		t.Fatalf("phase %s after another engine aborted it", got.Status.Phase)
	}
}

// Create finds the names taken and a service's running release in the
// lister's index, not by reading every release: what another engine
// (another replica) created or ended since is in it, and a create reads
// only the running release of its own service.
func TestCreateUsesTheIndex(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	gc := &getCounter{SQLite: rg.store}
	rg.eng = NewEngine(gc, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	other := NewEngine(rg.store, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	// A release on another engine, after this one has built its index.
	if _, err := rg.eng.pendingWork(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	// Other services' releases, many of them.
	for i := range 30 {
		r := New(fmt.Sprint("svc", i), "v2")
		r.Spec.Binary = "/srv/x"
		if _, err := other.CreateWith(ctx, r, CreateOptions{NewService: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Same version while running: refused, naming the running release.
	if _, err := rg.eng.Create(ctx, testRelease()); err == nil || !strings.Contains(err.Error(), "release shop-v2 is already releasing shop@v2") {
		t.Fatalf("create of a running version: %v", err)
	}
	// Another version: refused while shop-v2 runs, unless superseding.
	v3 := testRelease()
	v3.Spec.Version = "v3"
	if _, err := rg.eng.Create(ctx, v3); err == nil || !strings.Contains(err.Error(), "release shop-v2 of shop@v2 is") {
		t.Fatalf("create while another release runs: %v", err)
	}
	// A name taken on the other engine.
	named := testRelease()
	named.Spec.Version = "v4"
	named.Metadata.Name = "svc7-v2"
	if _, err := rg.eng.Create(ctx, named); err == nil || !strings.Contains(err.Error(), "a release named svc7-v2 exists already") {
		t.Fatalf("create under a taken name: %v", err)
	}
	// A service known only by its releases (on the other engine).
	r := New("svc3", "v3")
	r.Spec.Binary = "/srv/x"
	r.Spec.Supersede = true
	before := gc.gets.Load()
	if _, err := rg.eng.CreateWith(ctx, r, CreateOptions{}); err != nil {
		t.Fatalf("create of a release of a service with releases: %v", err)
	}
	// It read the other engine's 31 new releases once for the index and
	// svc3-v2 (running, then superseded): nothing near a read of all.
	if reads := gc.gets.Load() - before; reads > 31+3 {
		t.Fatalf("a create read %d releases", reads)
	}
	if got, _ := rg.eng.Get(ctx, "svc3-v2"); got.Status.Phase != Aborted {
		t.Fatalf("svc3-v2 not superseded: %s", got.Status.Phase)
	}
	before = gc.gets.Load()
	r = New("svc4", "v3")
	r.Spec.Binary = "/srv/x"
	r.Spec.Supersede = true
	if _, err := rg.eng.CreateWith(ctx, r, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if reads := gc.gets.Load() - before; reads > 2 {
		t.Fatalf("a second create read %d releases, want the running one's (≤ 2)", reads)
	}
	// The other engine ends shop-v2: then v3 may start, named by the index.
	if _, err := other.Act(ctx, "shop-v2", Abort, "alice"); err != nil {
		t.Fatal(err)
	}
	got, err := rg.eng.Create(ctx, v3)
	if err != nil || got.Metadata.Name != "shop-v3" {
		t.Fatalf("create after the running release ended: %v %+v", err, got.Metadata)
	}
	if n := gc.lists.Load(); n != 0 {
		t.Fatalf("creates listed every release %d times", n)
	}
	// An unknown service is refused with the known ones named.
	u := New("svc33", "v1")
	u.Spec.Binary = "/srv/x"
	if _, err := rg.eng.CreateWith(ctx, u, CreateOptions{}); !errors.Is(err, ErrUnknownService) || !strings.Contains(err.Error(), "did you mean svc") || !strings.Contains(err.Error(), "known services: shop, svc0") {
		t.Fatalf("create of an unknown service: %v", err)
	}
}

// A release's first reconcile after its create reads nothing from the
// store but its version: the engine knows its service (for the lock) and
// holds what it stored. 1,000 releases created at once otherwise cost
// 1,000 reads and decodes in the loop's first pass (bench/scale).
func TestFirstReconcileAfterCreateReadsNothing(t *testing.T) {
	rg := newRig(t)
	ctx := context.Background()
	gc := &getCounter{SQLite: rg.store}
	rg.eng = NewEngine(gc, rg.router, rg.target, rg.metrics, WithClock(rg.clock))
	if _, err := rg.eng.Create(ctx, testRelease()); err != nil {
		t.Fatal(err)
	}
	g0 := gc.gets.Load()
	if err := rg.eng.ReconcileOne(ctx, "shop-v2"); err != nil {
		t.Fatal(err)
	}
	if reads := gc.gets.Load() - g0; reads != 0 {
		t.Fatalf("the first reconcile after the create read the release %d times, want 0", reads)
	}
}
