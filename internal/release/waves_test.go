package release

import (
	"context"
	"errors"
	"github.com/pave-platform/pave/internal/analysis"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// fleetRig is two clusters, each with its own router, target and metrics,
// behind one engine: the shape of active-active production.
type fleetRig struct {
	t       *testing.T
	store   *state.SQLite
	clock   *fakeClock
	names   []string
	routers map[string]*fakeRouter
	targets map[string]*fakeTarget
	metrics map[string]*fakeMetrics
	down    map[string]bool
	mu      sync.Mutex
	eng     *Engine
}

// downRouter and downMetrics answer like an unreachable API server.
type downRouter struct {
	*fakeRouter
	down func() bool
}

var errUnreachable = errors.New("connection refused")

func (d downRouter) SetWeights(ctx context.Context, s string, w traffic.Weights) error {
	if d.down() {
		return errUnreachable
	}
	return d.fakeRouter.SetWeights(ctx, s, w)
}

func (d downRouter) Weights(ctx context.Context, s string) (traffic.Weights, error) {
	if d.down() {
		return nil, errUnreachable
	}
	return d.fakeRouter.Weights(ctx, s)
}

type downMetrics struct {
	*fakeMetrics
	down func() bool
}

func (d downMetrics) Snapshot(ctx context.Context, s string) (stats.Snapshot, error) {
	if d.down() {
		return nil, errUnreachable
	}
	return d.fakeMetrics.Snapshot(ctx, s)
}

func newFleetRig(t *testing.T, names ...string) *fleetRig {
	t.Helper()
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fleetRig{t: t, store: st, clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, names: names,
		routers: map[string]*fakeRouter{}, targets: map[string]*fakeTarget{}, metrics: map[string]*fakeMetrics{}, down: map[string]bool{}}
	var cs Clusters
	for _, n := range names {
		f.routers[n] = newRouter("shop", traffic.Weights{"v1": traffic.Total})
		f.targets[n] = newTarget()
		f.targets[n].deployed["shop@v1"] = true
		f.metrics[n] = newMetrics()
		isDown := func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.down[n] }
		cs = append(cs, Cluster{Name: n, Router: downRouter{f.routers[n], isDown}, Target: f.targets[n], Metrics: downMetrics{f.metrics[n], isDown}})
	}
	f.eng = NewFleetEngine(st, cs, WithClock(f.clock))
	return f
}

func (f *fleetRig) setDown(name string, down bool) {
	f.mu.Lock()
	f.down[name] = down
	f.mu.Unlock()
}

// tick serves one second of traffic in every reachable cluster through its
// router's weights, and reconciles once; reconcile errors are expected
// while a cluster is down.
func (f *fleetRig) tick(rps int) error {
	for _, n := range f.names {
		w, _ := f.routers[n].Weights(ctx, "shop")
		f.metrics[n].serve(w, rps)
	}
	f.clock.Add(time.Second)
	return f.eng.Reconcile(ctx)
}

func (f *fleetRig) get(name string) Release {
	f.t.Helper()
	r, err := f.eng.Get(ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// weightsNow is the canary weight in each cluster.
func (f *fleetRig) weightsNow() map[string]int64 {
	out := map[string]int64{}
	for _, n := range f.names {
		out[n] = f.routers[n].get("shop", "v2")
	}
	return out
}

func TestWavesRunEachClusterThroughTheStepsInTurn(t *testing.T) {
	f := newFleetRig(t, "seoul", "busan")
	for _, n := range f.names {
		f.metrics[n].errors["v1"], f.metrics[n].errors["v2"] = 0.01, 0.01
	}
	rel, err := f.eng.Create(ctx, testRelease())
	if err != nil {
		t.Fatal(err)
	}
	if got := rel.Status.Waves(); got != 2 {
		t.Fatalf("waves %d, want one per cluster", got)
	}
	// Record, per cluster, the sequence of canary weights it carried.
	seq := map[string][]int64{}
	sawGate := false
	for i := 0; i < 600; i++ {
		if err := f.tick(1000); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		for n, w := range f.weightsNow() {
			if s := seq[n]; len(s) == 0 || s[len(s)-1] != w {
				seq[n] = append(seq[n], w)
			}
		}
		r := f.get(rel.Metadata.Name)
		if r.Status.Gate {
			sawGate = true
			// seoul keeps 1% (the first step) on stable as the
			// control the gate compares the canary with.
			if w := f.weightsNow(); w["seoul"] != traffic.Total-10_000 || w["busan"] != 0 {
				t.Fatalf("during the gate the weights are %v, want seoul the canary but a 1%% control, busan all stable", w)
			}
		}
		if r.Settled() {
			break
		}
	}
	r := f.get(rel.Metadata.Name)
	if r.Status.Phase != Promoted {
		t.Fatalf("ended %s: %s", r.Status.Phase, r.Status.Message)
	}
	if !sawGate {
		t.Error("no health gate between the waves")
	}
	// seoul starts at step 1 on the first pass; busan stays on stable
	// until seoul's wave and the gate are done, then runs every step.
	steps := []int64{0, 10_000, 100_000, 500_000, 1_000_000}
	if want := []int64{10_000, 100_000, 500_000, 990_000, 1_000_000}; !equalInts(seq["seoul"], want) {
		t.Errorf("seoul carried canary weights %v, want %v", seq["seoul"], want)
	}
	if !equalInts(seq["busan"], steps) {
		t.Errorf("busan carried canary weights %v, want %v", seq["busan"], steps)
	}
	for _, cs := range r.Status.Clusters {
		if cs.Weights["v2"] != traffic.Total || cs.Error != "" {
			t.Errorf("cluster status %+v", cs)
		}
	}
}

func TestFailureInTheSecondWaveRollsBackTheFirst(t *testing.T) {
	f := newFleetRig(t, "seoul", "busan")
	// v2 is healthy in seoul, broken in busan (a cluster-specific fault:
	// a config, a dependency that only busan reaches).
	f.metrics["busan"].errors["v2"] = 0.3
	rel, err := f.eng.Create(ctx, testRelease())
	if err != nil {
		t.Fatal(err)
	}
	var r Release
	for i := 0; i < 600; i++ {
		if err := f.tick(1000); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if r = f.get(rel.Metadata.Name); r.Settled() {
			break
		}
	}
	if r.Status.Phase != RolledBack || r.Status.Wave != 1 {
		t.Fatalf("ended %s in wave %d: %s", r.Status.Phase, r.Status.Wave+1, r.Status.Message)
	}
	if !strings.Contains(r.Status.Message, "wave 2 of 2 (busan)") {
		t.Errorf("message does not say where it failed: %q", r.Status.Message)
	}
	if w := f.weightsNow(); w["seoul"] != 0 || w["busan"] != 0 {
		t.Fatalf("after rollback the canary still has %v; seoul had finished its wave and must go back too", w)
	}
}

func TestLockstepMovesAllClustersTogether(t *testing.T) {
	f := newFleetRig(t, "seoul", "busan")
	rel := testRelease()
	rel.Spec.Lockstep = true
	created, err := f.eng.Create(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		if err := f.tick(1000); err != nil {
			t.Fatal(err)
		}
		if w := f.weightsNow(); w["seoul"] != w["busan"] {
			t.Fatalf("lockstep clusters diverged: %v", w)
		}
		if f.get(created.Metadata.Name).Settled() {
			break
		}
	}
	if p := f.get(created.Metadata.Name).Status.Phase; p != Promoted {
		t.Fatalf("ended %s", p)
	}
}

func TestUnreachableClusterHoldsThenRollsBackEverywhere(t *testing.T) {
	f := newFleetRig(t, "seoul", "busan")
	rel := testRelease()
	rel.Spec.MaxHold = Duration(time.Minute)
	created, err := f.eng.Create(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // pending → step 1 in seoul
		_ = f.tick(1000)
	}
	if w := f.weightsNow(); w["seoul"] != 10_000 {
		t.Fatalf("setup: seoul canary weight %d", w["seoul"])
	}
	f.setDown("busan", true)
	r := f.get(created.Metadata.Name)
	step := r.Status.Step
	for i := 0; i < 50; i++ {
		if err := f.tick(1000); err == nil || !strings.Contains(err.Error(), "cluster busan") {
			t.Fatalf("reconcile with busan down: %v, want an error naming busan", err)
		}
	}
	r = f.get(created.Metadata.Name)
	if r.Status.Phase != Progressing || r.Status.Step != step {
		t.Fatalf("with busan unreachable the release moved: %s step %d", r.Status.Phase, r.Status.Step)
	}
	var busan ClusterStatus
	for _, cs := range r.Status.Clusters {
		if cs.Name == "busan" {
			busan = cs
		}
	}
	if !strings.Contains(busan.Error, "connection refused") || busan.ErrorSince.IsZero() {
		t.Fatalf("busan's trouble not recorded: %+v", busan)
	}
	for i := 0; i < 30; i++ {
		_ = f.tick(1000)
	}
	r = f.get(created.Metadata.Name)
	if r.Status.Phase != RolledBack || !strings.Contains(r.Status.Message, "cluster busan") {
		t.Fatalf("after maxHold: %s: %s", r.Status.Phase, r.Status.Message)
	}
	if w := f.weightsNow(); w["seoul"] != 0 {
		t.Fatalf("seoul still sends %d ppm to the canary", w["seoul"])
	}
	// busan comes back: the level-triggered loop confirms stable there too.
	f.setDown("busan", false)
	if err := f.tick(10); err != nil {
		t.Fatal(err)
	}
	if r = f.get(created.Metadata.Name); !r.Settled() {
		t.Fatalf("not settled after busan returned: %+v", r.Status.Clusters)
	}
}

func TestWavesSpecValidation(t *testing.T) {
	f := newFleetRig(t, "seoul", "busan")
	for _, c := range []struct {
		mut  func(*Release)
		want string
	}{
		{func(r *Release) { r.Spec.Clusters = []string{"jeju"} }, "spec.clusters[0]: invalid release: no cluster named jeju"},
		{func(r *Release) { r.Spec.Waves = [][]string{{"seoul"}, {}} }, "spec.waves[1]"},
		{func(r *Release) { r.Spec.Waves = [][]string{{"seoul"}, {"seoul"}} }, "named twice"},
		{func(r *Release) { r.Spec.Waves = [][]string{{"seoul", "busan"}}; r.Spec.Lockstep = true }, "spec.lockstep"},
		{func(r *Release) { r.Spec.Clusters = []string{"seoul", "busan"}; r.Spec.Waves = [][]string{{"seoul"}} }, "in no wave"},
	} {
		rel := testRelease()
		c.mut(&rel)
		_, err := f.eng.Create(ctx, rel)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("spec %+v: error %v, want %q", rel.Spec.Waves, err, c.want)
		}
	}
	if all, _ := f.eng.List(ctx); len(all) != 0 {
		t.Fatalf("a refused spec left %d releases", len(all))
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A counter of any kind going back (a pod gone with its counters, under
// PromQL) restarts the window instead of wrapping around.
func TestResetSeesAnyCounterGoBack(t *testing.T) {
	var base stats.Counts
	base.Observe(200, 10)
	base.Observe(500, 900)
	now := base
	now.Latency = append([]uint64(nil), base.Latency...)
	now.ByClass = map[string]uint64{"2xx": 2, "5xx": 1}
	now.Requests, now.Errors = 3, 1
	if reset(stats.Snapshot{"v2": {Total: now}}, stats.Snapshot{"v2": {Total: base}}) {
		t.Fatal("growing counters taken for a reset")
	}
	now.Latency[stats.Bucket(900)] = 0 // one bucket shrank, totals did not
	if !reset(stats.Snapshot{"v2": {Total: now}}, stats.Snapshot{"v2": {Total: base}}) {
		t.Fatal("a shrinking latency bucket not taken for a reset")
	}
	now.Latency = append([]uint64(nil), base.Latency...)
	now.ByClass["5xx"] = 0
	if !reset(stats.Snapshot{"v2": {Total: now}}, stats.Snapshot{"v2": {Total: base}}) {
		t.Fatal("a shrinking status class not taken for a reset")
	}
}

// Two clusters in different datacenters: busan fails twice as often and
// answers 10 ms slower than seoul, for both versions. The gate compares
// canary and stable within seoul; the datacenter difference is reported in
// the gate's decision, never held against v2, and v2 is promoted.
func TestGateJudgesWithinClustersAndReportsCrossClusterDifferences(t *testing.T) {
	f := newFleetRig(t, "seoul", "busan")
	f.metrics["seoul"].errors["v1"], f.metrics["seoul"].errors["v2"] = 0.005, 0.005
	f.metrics["busan"].errors["v1"], f.metrics["busan"].errors["v2"] = 0.01, 0.01
	f.metrics["busan"].extraMs["v1"], f.metrics["busan"].extraMs["v2"] = 10, 10
	rel := testRelease()
	rel.Spec.WaveGate = Duration(20 * time.Second)
	rel, err := f.eng.Create(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	var cross *analysis.Finding
	var r Release
	for i := 0; i < 900; i++ {
		if err := f.tick(1000); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		r = f.get(rel.Metadata.Name)
		if d := r.Status.Decision; r.Status.Gate && d != nil {
			for _, fd := range d.Findings {
				if fd.Judge == JudgeCrossCluster {
					cross = &fd
				}
			}
		}
		if r.Settled() {
			break
		}
	}
	if r.Status.Phase != Promoted {
		t.Fatalf("ended %s: %s", r.Status.Phase, r.Status.Message)
	}
	if cross == nil {
		t.Fatal("the gate's decision does not report the cross-cluster difference")
	}
	if cross.Verdict != analysis.Pass || !strings.Contains(cross.Reason, "not judged") ||
		!(cross.Numbers["stableP50Ms"] > cross.Numbers["canaryP50Ms"]+5) {
		t.Fatalf("cross-cluster finding %+v", *cross)
	}
}
